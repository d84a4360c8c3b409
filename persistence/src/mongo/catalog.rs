//! [`CatalogStore`] on the `products` collection: `_id` = product id, `sku` under a unique index
//! (so the server, not a read-then-write, refuses a taken SKU), `data` the encoded product.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::doc;

use super::errors::{binary, get_bytes, is_duplicate, map};
use super::MongoStore;
use crate::{CatalogStore, Error};

fn duplicate_sku(sku: &str) -> Error {
    Error::Duplicate {
        what: "sku",
        value: sku.to_owned(),
    }
}

#[async_trait]
impl CatalogStore for MongoStore {
    async fn list_products(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.bounded("list_products", async move {
            let mut cursor = self
                .products
                .find(doc! {})
                .projection(doc! { "_id": 1, "data": 1 })
                .await
                .map_err(map)?;
            let mut out = Vec::new();
            while let Some(d) = cursor.try_next().await.map_err(map)? {
                let id = d.get_str("_id").unwrap_or("?").to_owned();
                out.push(get_bytes(&d, "data", &id)?);
            }
            Ok(out)
        })
        .await
    }

    async fn insert_product(&self, id: &str, sku: &str, data: Vec<u8>) -> Result<(), Error> {
        self.bounded("insert_product", async move {
            let product = doc! { "_id": id, "sku": sku, "data": binary(data) };
            match self.products.insert_one(product).await {
                Ok(_) => Ok(()),
                Err(e) if is_duplicate(&e) => {
                    // Either the SKU or the id is taken; the SKU is what callers can act on.
                    let sku_taken = self
                        .products
                        .find_one(doc! { "sku": sku })
                        .projection(doc! { "_id": 1 })
                        .await
                        .map_err(map)?
                        .is_some();
                    if sku_taken {
                        Err(duplicate_sku(sku))
                    } else {
                        Err(Error::Duplicate {
                            what: "product",
                            value: id.to_owned(),
                        })
                    }
                }
                Err(e) => Err(map(e)),
            }
        })
        .await
    }

    async fn update_product(&self, id: &str, sku: &str, data: Vec<u8>) -> Result<(), Error> {
        self.bounded("update_product", async move {
            let update = doc! { "$set": { "sku": sku, "data": binary(data) } };
            match self.products.update_one(doc! { "_id": id }, update).await {
                Ok(r) if r.matched_count == 0 => Err(Error::NotFound {
                    what: "product",
                    value: id.to_owned(),
                }),
                Ok(_) => Ok(()),
                Err(e) if is_duplicate(&e) => Err(duplicate_sku(sku)),
                Err(e) => Err(map(e)),
            }
        })
        .await
    }

    async fn delete_product(&self, id: &str) -> Result<bool, Error> {
        self.bounded("delete_product", async move {
            self.products
                .delete_one(doc! { "_id": id })
                .await
                .map(|r| r.deleted_count > 0)
                .map_err(map)
        })
        .await
    }
}
