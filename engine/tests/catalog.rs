//! The catalog publishes its index from its own writes; it must always equal what a fresh load
//! from the store gives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use emporium_engine::catalog::{Catalog, ProductDraft};
use emporium_engine::Error;
use emporium_persistence::{CatalogStore, MemoryStore};

fn draft(name: &str, sku: &str) -> ProductDraft {
    ProductDraft {
        name: name.into(),
        description: String::new(),
        price_cents: 100,
        sku: sku.into(),
        brand: "B".into(),
        category: "C".into(),
    }
}

async fn assert_matches_store(catalog: &Catalog, store: Arc<dyn CatalogStore>) {
    let reloaded = Catalog::load(store).await.unwrap();
    assert_eq!(catalog.snapshot().all(), reloaded.snapshot().all());
}

#[actix_rt::test]
async fn published_index_follows_every_write() {
    let store: Arc<dyn CatalogStore> = Arc::new(MemoryStore::new());
    let catalog = Catalog::load(store.clone()).await.unwrap();
    let lamp = catalog.create(draft("Lamp", "L-1")).await.unwrap();
    catalog.create(draft("Rug", "R-1")).await.unwrap();
    assert!(matches!(
        catalog.create(draft("Dup", "L-1")).await,
        Err(Error::DuplicateSku(_))
    ));
    assert_matches_store(&catalog, store.clone()).await;

    // A renamed SKU: the old one is gone from the index, the new one found.
    catalog
        .update(&lamp.id, draft("Lamp 2", "L-2"))
        .await
        .unwrap();
    let index = catalog.snapshot();
    assert!(index.get_by_sku("L-1").is_none());
    assert_eq!(
        index.get_by_sku("L-2").map(|p| p.name.as_str()),
        Some("Lamp 2")
    );
    assert_matches_store(&catalog, store.clone()).await;

    let written = catalog
        .upsert_many(vec![
            draft("Rug v2", "R-1"),
            draft("Vase", "V-1"),
            draft("Vase v2", "V-1"),
        ])
        .await
        .unwrap();
    let created: Vec<bool> = written.iter().map(|(_, c)| *c).collect();
    assert_eq!(created, vec![false, true, false]);
    assert_eq!(catalog.snapshot().all().len(), 3);
    assert_matches_store(&catalog, store.clone()).await;

    catalog.delete(&lamp.id).await.unwrap();
    assert!(matches!(
        catalog.delete(&lamp.id).await,
        Err(Error::NotFound { .. })
    ));
    assert_matches_store(&catalog, store).await;
    let names: Vec<String> = catalog
        .snapshot()
        .all()
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(names, vec!["Rug v2", "Vase v2"]);
}
