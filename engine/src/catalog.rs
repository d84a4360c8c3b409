//! The product catalog: products with a unique SKU, held in memory as an index over the catalog
//! store and queried with search, brand/category filters and pagination. Stock is not here: it
//! belongs to the per-SKU inventory actors.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use emporium_persistence::CatalogStore;
use serde::{Deserialize, Serialize};

use crate::{codec, Error};

pub const MAX_PAGE_SIZE: u32 = 100;
/// 100,000,000.00 in the currency.
const MAX_PRICE_CENTS: u64 = 10_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub description: String,
    pub price_cents: u64,
    pub sku: String,
    pub brand: String,
    pub category: String,
}

/// A product as an admin submits it, before it has an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductDraft {
    pub name: String,
    pub description: String,
    pub price_cents: u64,
    pub sku: String,
    pub brand: String,
    pub category: String,
}

impl ProductDraft {
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field, reason: &str| {
            Err(Error::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return invalid("name", "must be 1 to 200 characters");
        }
        let sku_ok = !self.sku.is_empty()
            && self.sku.len() <= 64
            && self
                .sku
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !sku_ok {
            return invalid("sku", "must be 1 to 64 letters, digits, '-', '_' or '.'");
        }
        if self.price_cents == 0 || self.price_cents > MAX_PRICE_CENTS {
            return invalid("price", "must be greater than 0 and at most 100000000");
        }
        if self.description.len() > 10_000 || self.brand.len() > 100 || self.category.len() > 100 {
            return invalid("product", "description, brand or category too long");
        }
        Ok(())
    }

    fn into_product(self, id: String) -> Product {
        Product {
            id,
            name: self.name.trim().to_owned(),
            description: self.description,
            price_cents: self.price_cents,
            sku: self.sku,
            brand: self.brand.trim().to_owned(),
            category: self.category.trim().to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductQuery {
    pub page: u32,
    pub limit: u32,
    pub search: Option<String>,
    pub brands: Vec<String>,
    pub categories: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductPage {
    pub products: Vec<Product>,
    pub total_pages: u32,
    pub current_page: u32,
    pub total_products: u64,
}

/// An immutable view of the catalog, sorted by name (then SKU).
#[derive(Debug, Default)]
pub struct CatalogIndex {
    sorted: Vec<Product>,
    by_id: HashMap<String, usize>,
    by_sku: HashMap<String, usize>,
}

impl CatalogIndex {
    pub fn new(mut products: Vec<Product>) -> Self {
        products.sort_by(|a, b| {
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then_with(|| a.sku.cmp(&b.sku))
        });
        let by_id = products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        let by_sku = products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.sku.clone(), i))
            .collect();
        Self {
            sorted: products,
            by_id,
            by_sku,
        }
    }

    pub fn all(&self) -> &[Product] {
        &self.sorted
    }

    pub fn get(&self, id: &str) -> Option<&Product> {
        self.by_id.get(id).and_then(|i| self.sorted.get(*i))
    }

    pub fn get_by_sku(&self, sku: &str) -> Option<&Product> {
        self.by_sku.get(sku).and_then(|i| self.sorted.get(*i))
    }

    pub fn brands(&self) -> Vec<String> {
        distinct(self.sorted.iter().map(|p| p.brand.as_str()))
    }

    pub fn categories(&self) -> Vec<String> {
        distinct(self.sorted.iter().map(|p| p.category.as_str()))
    }

    pub fn query(&self, q: &ProductQuery) -> Result<ProductPage, Error> {
        if q.page == 0 {
            return Err(Error::Invalid {
                field: "page",
                reason: "must be 1 or more".into(),
            });
        }
        if q.limit == 0 || q.limit > MAX_PAGE_SIZE {
            return Err(Error::Invalid {
                field: "limit",
                reason: format!("must be between 1 and {MAX_PAGE_SIZE}"),
            });
        }
        let needle = q
            .search
            .as_deref()
            .map(str::to_lowercase)
            .filter(|s| !s.is_empty());
        let matches_any = |wanted: &[String], value: &str| {
            wanted.is_empty() || wanted.iter().any(|w| w.eq_ignore_ascii_case(value))
        };
        let hits: Vec<&Product> = self
            .sorted
            .iter()
            .filter(|p| {
                needle
                    .as_ref()
                    .is_none_or(|n| p.name.to_lowercase().contains(n))
            })
            .filter(|p| matches_any(&q.brands, &p.brand))
            .filter(|p| matches_any(&q.categories, &p.category))
            .collect();
        let total = hits.len() as u64;
        let limit = u64::from(q.limit);
        let start = u64::from(q.page - 1).saturating_mul(limit);
        let products = hits
            .into_iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(q.limit as usize)
            .cloned()
            .collect();
        Ok(ProductPage {
            products,
            total_pages: u32::try_from(total.div_ceil(limit)).unwrap_or(u32::MAX),
            current_page: q.page,
            total_products: total,
        })
    }
}

/// Distinct non-empty values, ASCII-case-insensitively as the filters match them (`Zed` and `zed`
/// are one choice, spelled as it first appears), sorted the same way.
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = BTreeMap::new();
    for v in values.filter(|v| !v.is_empty()) {
        seen.entry(v.to_ascii_lowercase()).or_insert(v);
    }
    seen.into_values().map(str::to_owned).collect()
}

/// The catalog service: one writer at a time, readers get a consistent snapshot without locking.
pub struct Catalog {
    store: Arc<dyn CatalogStore>,
    index: RwLock<Arc<CatalogIndex>>,
    writer: tokio::sync::Mutex<()>,
}

impl Catalog {
    pub async fn load(store: Arc<dyn CatalogStore>) -> Result<Self, Error> {
        let index = Self::read_index(store.as_ref()).await?;
        Ok(Self {
            store,
            index: RwLock::new(Arc::new(index)),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    async fn read_index(store: &dyn CatalogStore) -> Result<CatalogIndex, Error> {
        let products = store
            .list_products()
            .await?
            .iter()
            .map(|bytes| codec::decode::<Product>(bytes))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CatalogIndex::new(products))
    }

    /// Re-reads the whole catalog from the store and publishes it: how a node sharing its store
    /// sees products other nodes wrote.
    pub async fn refresh(&self) -> Result<(), Error> {
        let _writer = self.writer.lock().await;
        let index = Arc::new(Self::read_index(self.store.as_ref()).await?);
        match self.index.write() {
            Ok(mut guard) => *guard = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
        Ok(())
    }

    pub fn snapshot(&self) -> Arc<CatalogIndex> {
        match self.index.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Publishes the next index: the current products with `change` applied. Callers hold the
    /// writer lock and have stored the change already, so readers never see an unstored product;
    /// the store itself is read only at start and by `refresh`.
    fn publish(&self, change: impl FnOnce(&mut Vec<Product>)) {
        let mut products = self.snapshot().all().to_vec();
        change(&mut products);
        let index = Arc::new(CatalogIndex::new(products));
        match self.index.write() {
            Ok(mut guard) => *guard = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
    }

    /// Replaces (by id) or adds `written` in the published index; of several writes to one id,
    /// the last wins.
    fn publish_written(&self, written: &[Product]) {
        if written.is_empty() {
            return;
        }
        let latest: HashMap<&str, &Product> = written.iter().map(|p| (p.id.as_str(), p)).collect();
        self.publish(|products| {
            products.retain(|p| !latest.contains_key(p.id.as_str()));
            products.extend(latest.into_values().cloned());
        });
    }

    pub async fn create(&self, draft: ProductDraft) -> Result<Product, Error> {
        draft.validate()?;
        let _writer = self.writer.lock().await;
        let product = draft.into_product(uuid::Uuid::new_v4().to_string());
        self.store
            .insert_product(&product.id, &product.sku, codec::encode(&product)?)
            .await?;
        self.publish_written(std::slice::from_ref(&product));
        Ok(product)
    }

    pub async fn update(&self, id: &str, draft: ProductDraft) -> Result<Product, Error> {
        draft.validate()?;
        let _writer = self.writer.lock().await;
        let product = draft.into_product(id.to_owned());
        self.store
            .update_product(id, &product.sku, codec::encode(&product)?)
            .await?;
        self.publish_written(std::slice::from_ref(&product));
        Ok(product)
    }

    /// Creates or updates (by SKU) many products, publishing the index once at the end. Returns
    /// the products with whether each was created.
    pub async fn upsert_many(
        &self,
        drafts: Vec<ProductDraft>,
    ) -> Result<Vec<(Product, bool)>, Error> {
        for draft in &drafts {
            draft.validate()?;
        }
        let _writer = self.writer.lock().await;
        let mut by_sku: HashMap<String, String> = self
            .snapshot()
            .all()
            .iter()
            .map(|p| (p.sku.clone(), p.id.clone()))
            .collect();
        let mut out: Vec<(Product, bool)> = Vec::with_capacity(drafts.len());
        let mut result = Ok(());
        for draft in drafts {
            let existing = by_sku.get(&draft.sku).cloned();
            let created = existing.is_none();
            let product =
                draft.into_product(existing.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()));
            let stored = match codec::encode(&product) {
                Ok(data) if created => {
                    self.store
                        .insert_product(&product.id, &product.sku, data)
                        .await
                }
                Ok(data) => {
                    self.store
                        .update_product(&product.id, &product.sku, data)
                        .await
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if let Err(e) = stored {
                result = Err(e.into());
                break;
            }
            by_sku.insert(product.sku.clone(), product.id.clone());
            out.push((product, created));
        }
        // What was stored is published even when a later product failed.
        let written: Vec<Product> = out.iter().map(|(p, _)| p.clone()).collect();
        self.publish_written(&written);
        result.map(|()| out)
    }

    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        let _writer = self.writer.lock().await;
        if !self.store.delete_product(id).await? {
            return Err(Error::NotFound {
                what: "product",
                id: id.to_owned(),
            });
        }
        self.publish(|products| products.retain(|p| p.id != id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, sku: &str, brand: &str, category: &str) -> Product {
        Product {
            id: format!("id-{sku}"),
            name: name.into(),
            description: String::new(),
            price_cents: 100,
            sku: sku.into(),
            brand: brand.into(),
            category: category.into(),
        }
    }

    fn index() -> CatalogIndex {
        CatalogIndex::new(vec![
            p("Zeta Phone", "S1", "Acme", "Phones"),
            p("alpha lamp", "S2", "Globex", "Home"),
            p("Beta Phone", "S3", "Globex", "Phones"),
            p("Gamma Chair", "S4", "Initech", "Home"),
        ])
    }

    fn query(page: u32, limit: u32) -> ProductQuery {
        ProductQuery {
            page,
            limit,
            search: None,
            brands: vec![],
            categories: vec![],
        }
    }

    #[test]
    fn sorted_by_name_case_insensitively_and_paged() {
        let page = index().query(&query(2, 3)).unwrap();
        assert_eq!(page.total_products, 4);
        assert_eq!(page.total_pages, 2);
        assert_eq!(page.current_page, 2);
        let names: Vec<_> = page.products.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["Zeta Phone"]);
        let first = index().query(&query(1, 3)).unwrap();
        assert_eq!(first.products[0].name, "alpha lamp");
    }

    #[test]
    fn search_brand_category_filters() {
        let mut q = query(1, 20);
        q.search = Some("PHONE".into());
        q.brands = vec!["globex".into(), "Initech".into()];
        let page = index().query(&q).unwrap();
        let skus: Vec<_> = page.products.iter().map(|p| p.sku.as_str()).collect();
        assert_eq!(skus, vec!["S3"]);
        let mut q = query(1, 20);
        q.categories = vec!["Home".into()];
        assert_eq!(index().query(&q).unwrap().total_products, 2);
    }

    #[test]
    fn bad_paging_is_rejected() {
        assert!(index().query(&query(0, 20)).is_err());
        assert!(index().query(&query(1, 0)).is_err());
        assert!(index().query(&query(1, MAX_PAGE_SIZE + 1)).is_err());
        assert_eq!(index().query(&query(99, 20)).unwrap().products, vec![]);
    }

    #[test]
    fn distinct_brands_and_categories() {
        assert_eq!(index().brands(), vec!["Acme", "Globex", "Initech"]);
        assert_eq!(index().categories(), vec!["Home", "Phones"]);
        let mixed = CatalogIndex::new(vec![
            p("One", "M1", "zed", "b"),
            p("Two", "M2", "Zed", "A"),
            p("Three", "M3", "Acme", "a"),
        ]);
        assert_eq!(
            mixed.brands(),
            vec!["Acme", "zed"],
            "case variants are one brand"
        );
        assert_eq!(mixed.categories(), vec!["a", "b"]);
    }

    #[test]
    fn drafts_validate() {
        let draft = ProductDraft {
            name: "n".into(),
            description: String::new(),
            price_cents: 1,
            sku: "A-1".into(),
            brand: String::new(),
            category: String::new(),
        };
        assert!(draft.validate().is_ok());
        assert!(ProductDraft {
            price_cents: 0,
            ..draft.clone()
        }
        .validate()
        .is_err());
        assert!(ProductDraft {
            sku: "a b".into(),
            ..draft.clone()
        }
        .validate()
        .is_err());
        assert!(ProductDraft {
            name: " ".into(),
            ..draft
        }
        .validate()
        .is_err());
    }
}
