//! JSON shapes of the storefront API (camelCase, as `api.md` names them). Money is integer cents
//! inside and a number with at most two decimals outside.

use emporium_engine::catalog::{Product, ProductDraft};
use emporium_engine::order::{Order, OrderItem};
use emporium_engine::payment::Card;
use emporium_engine::CartLineView;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::ApiError;

pub fn price(cents: u64) -> f64 {
    // Exact for every amount below 2^53 cents.
    cents as f64 / 100.0
}

/// A price from JSON: finite, positive, at most two decimals.
pub fn cents(price: f64) -> Result<u64, ApiError> {
    let scaled = price * 100.0;
    let rounded = scaled.round();
    if !price.is_finite() || price <= 0.0 || price > 1e11 || (scaled - rounded).abs() > 1e-6 {
        return Err(ApiError::bad_request(
            "invalid_input",
            "price must be a positive number with at most two decimals",
        ));
    }
    Ok(rounded as u64)
}

pub fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

#[derive(Serialize)]
pub struct Token {
    pub token: String,
}

#[derive(Deserialize)]
pub struct RegisterBody {
    pub username: String,
    pub email: String,
    pub password: String,
}

#[derive(Deserialize)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

#[derive(Serialize)]
pub struct ProductDto {
    pub id: String,
    pub name: String,
    pub description: String,
    pub price: f64,
    pub sku: String,
    pub brand: String,
    pub category: String,
    pub stock: Option<u64>,
}

impl ProductDto {
    pub fn new(p: &Product, stock: Option<u64>) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            price: price(p.price_cents),
            sku: p.sku.clone(),
            brand: p.brand.clone(),
            category: p.category.clone(),
            stock,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductPageDto {
    pub products: Vec<ProductDto>,
    pub total_pages: u32,
    pub current_page: u32,
    pub total_products: u64,
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
fn explicit_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A product as an admin sends it. Everything is optional here so that a missing field gets a
/// precise message from [`ProductBody::into_draft`].
#[derive(Deserialize)]
pub struct ProductBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<f64>,
    pub sku: Option<String>,
    pub brand: Option<String>,
    pub category: Option<String>,
    #[serde(default, deserialize_with = "explicit_null")]
    pub stock: Option<Option<i64>>,
}

impl ProductBody {
    pub fn into_draft(self) -> Result<(ProductDraft, Option<Option<u64>>), ApiError> {
        let required = |v: Option<String>, field: &str| {
            v.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                ApiError::bad_request("invalid_input", format!("{field} is required"))
            })
        };
        let price = self
            .price
            .ok_or_else(|| ApiError::bad_request("invalid_input", "price is required"))?;
        let stock = match self.stock {
            Some(Some(n)) if !(0..=1_000_000_000).contains(&n) => {
                return Err(ApiError::bad_request(
                    "invalid_input",
                    "stock must be between 0 and 1000000000",
                ));
            }
            Some(Some(n)) => Some(Some(n.unsigned_abs())),
            Some(None) => Some(None),
            None => None,
        };
        let draft = ProductDraft {
            name: required(self.name, "name")?,
            description: self.description.unwrap_or_default(),
            price_cents: cents(price)?,
            sku: required(self.sku, "sku")?.trim().to_owned(),
            brand: self.brand.unwrap_or_default(),
            category: self.category.unwrap_or_default(),
        };
        Ok((draft, stock))
    }
}

#[derive(Deserialize)]
pub struct BatchGetBody {
    pub skus: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddItemBody {
    pub product_sku: String,
    pub quantity: i64,
}

#[derive(Deserialize)]
pub struct QuantityBody {
    pub quantity: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineDto {
    pub product_id: String,
    pub quantity: u32,
    pub name: String,
    pub sku: String,
    pub price: f64,
    pub line_total: f64,
}

impl From<&CartLineView> for LineDto {
    fn from(l: &CartLineView) -> Self {
        Self {
            product_id: l.product.id.clone(),
            quantity: l.quantity,
            name: l.product.name.clone(),
            sku: l.product.sku.clone(),
            price: price(l.product.price_cents),
            line_total: price(l.line_total_cents()),
        }
    }
}

impl From<&OrderItem> for LineDto {
    fn from(i: &OrderItem) -> Self {
        Self {
            product_id: i.product_id.clone(),
            quantity: i.quantity,
            name: i.name.clone(),
            sku: i.sku.clone(),
            price: price(i.unit_price_cents),
            line_total: price(i.line_total_cents()),
        }
    }
}

/// Accepts `12` or `"12"`, as storefront forms send either.
fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s.trim().to_owned()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a number or a string, got {other}"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentBody {
    #[serde(deserialize_with = "number_or_string")]
    pub card_number: String,
    #[serde(deserialize_with = "number_or_string")]
    pub exp_month: String,
    #[serde(deserialize_with = "number_or_string")]
    pub exp_year: String,
    #[serde(deserialize_with = "number_or_string")]
    pub cvc: String,
}

#[derive(Deserialize)]
pub struct CheckoutBody {
    pub payment: Option<PaymentBody>,
}

impl PaymentBody {
    pub fn into_card(self) -> Result<Card, ApiError> {
        let number = |s: &str, field: &str| {
            s.parse::<u32>().map_err(|_| {
                ApiError::bad_request("invalid_payment", format!("{field} must be a number"))
            })
        };
        Ok(Card {
            exp_month: number(&self.exp_month, "expMonth")?,
            exp_year: number(&self.exp_year, "expYear")?,
            number: self.card_number,
            cvc: self.cvc,
        })
    }
}

#[derive(Deserialize)]
pub struct StatusBody {
    pub status: String,
}

#[derive(Serialize)]
pub struct HistoryDto {
    pub status: &'static str,
    pub at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderDto {
    pub id: String,
    pub user_email: String,
    pub items: Vec<LineDto>,
    pub total: f64,
    pub currency: String,
    pub status: &'static str,
    pub created_at: String,
    pub updated_at: String,
    pub history: Vec<HistoryDto>,
}

impl From<&Order> for OrderDto {
    fn from(o: &Order) -> Self {
        Self {
            id: o.id.clone(),
            user_email: o.user_email.clone(),
            items: o.items.iter().map(LineDto::from).collect(),
            total: price(o.total_cents),
            currency: o.currency.clone(),
            status: o.status.as_str(),
            created_at: rfc3339(o.created_at_ms),
            updated_at: rfc3339(o.history.last().map_or(o.created_at_ms, |h| h.at_ms)),
            history: o
                .history
                .iter()
                .map(|h| HistoryDto {
                    status: h.status.as_str(),
                    at: rfc3339(h.at_ms),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_convert_exactly() {
        assert_eq!(cents(19.99).ok(), Some(1999));
        assert_eq!(cents(0.1 + 0.2).ok(), Some(30));
        assert_eq!(price(1999), 19.99);
        for bad in [0.0, -1.0, 1.234, f64::NAN, f64::INFINITY, 1e12] {
            assert!(cents(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
