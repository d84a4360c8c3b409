//! The built-in demo catalog loaded on first start of an empty store.

use crate::catalog::ProductDraft;

const BRANDS: [&str; 6] = [
    "Acme",
    "Globex",
    "Initech",
    "Northwind",
    "Stark",
    "Umbrella",
];
const CATEGORIES: [(&str, [&str; 4]); 6] = [
    (
        "Electronics",
        ["Headphones", "Smart Speaker", "USB-C Charger", "E-Reader"],
    ),
    (
        "Kitchen",
        ["Chef Knife", "Espresso Maker", "Cast Iron Pan", "Kettle"],
    ),
    (
        "Outdoors",
        ["Trail Backpack", "Camping Lantern", "Water Bottle", "Tent"],
    ),
    (
        "Apparel",
        ["Rain Jacket", "Wool Socks", "Running Shoes", "Beanie"],
    ),
    (
        "Books",
        ["Cookbook", "Field Guide", "Sci-Fi Novel", "Atlas"],
    ),
    ("Toys", ["Building Blocks", "Puzzle", "Kite", "Board Game"]),
];

/// 144 products over 6 brands and 6 categories; about six in seven have tracked stock.
pub fn demo_catalog() -> Vec<(ProductDraft, Option<u64>)> {
    let mut out = Vec::new();
    let mut n: u64 = 0;
    for (category, items) in CATEGORIES {
        for item in items {
            for brand in BRANDS {
                n += 1;
                let price_cents = 499 + (n * 1_733) % 25_000;
                let stock = (n % 7 != 0).then_some(5 + (n * 37) % 195);
                let draft = ProductDraft {
                    name: format!("{brand} {item}"),
                    description: format!("The {item} from {brand}: a demo product in {category}."),
                    price_cents,
                    sku: format!(
                        "{}-{}-{n:03}",
                        &category[..3].to_uppercase(),
                        &brand[..3].to_uppercase()
                    ),
                    brand: brand.to_owned(),
                    category: category.to_owned(),
                };
                out.push((draft, stock));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_catalog_is_valid_and_unique() {
        let catalog = super::demo_catalog();
        assert!(catalog.len() >= 100);
        let skus: std::collections::HashSet<_> =
            catalog.iter().map(|(d, _)| d.sku.clone()).collect();
        assert_eq!(skus.len(), catalog.len());
        assert!(catalog.iter().all(|(d, _)| d.validate().is_ok()));
        let tracked = catalog.iter().filter(|(_, s)| s.is_some()).count();
        assert!(tracked * 2 > catalog.len());
    }
}
