//! JSON shapes of the storefront API (camelCase, as `api.md` names them). Money is integer cents
//! inside and a number with at most two decimals outside.

use emporium_engine::catalog::{Product, ProductDraft};
use emporium_engine::order::{Order, OrderItem};
use emporium_engine::payment::Card;
use emporium_engine::CartLineView;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

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

/// A signed session token (HS256 JWT with `email`, `username`, `sub`, `role`, `exp`).
#[derive(Serialize, ToSchema)]
pub struct Token {
    pub token: String,
}

/// A new account. The email is stored in lower case; unknown fields are ignored.
#[derive(Deserialize, ToSchema)]
pub struct RegisterBody {
    /// 1 to 64 characters once surrounding whitespace is trimmed.
    #[schema(min_length = 1, max_length = 64)]
    pub username: String,
    /// An address with a local part, one `@` and a dotted domain; at most 254 bytes.
    #[schema(min_length = 3, max_length = 254, format = Email)]
    pub email: String,
    /// 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    #[schema(min_length = 1)]
    pub email: String,
    #[schema(min_length = 1)]
    pub password: String,
}

/// A product as the storefront shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Product)]
pub struct ProductDto {
    pub id: String,
    pub name: String,
    pub description: String,
    /// In the store's currency, at most two decimals.
    #[schema(exclusive_minimum = 0)]
    pub price: f64,
    pub sku: String,
    pub brand: String,
    pub category: String,
    /// Quantity on hand; `null` when the product's stock is not tracked.
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

/// One page of a product search, sorted by name.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ProductPage)]
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
#[derive(Deserialize, ToSchema)]
#[schema(
    as = ProductInput,
    description = "A product as an admin sends it: `name`, `sku` and `price` are required."
)]
pub struct ProductBody {
    /// 1 to 200 bytes (UTF-8), not blank.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// At most 10000 bytes (UTF-8).
    pub description: Option<String>,
    /// Greater than 0, at most 100000000, at most two decimals.
    #[schema(value_type = f64, required = true, exclusive_minimum = 0, maximum = 100000000)]
    pub price: Option<f64>,
    /// 1 to 64 letters, digits, `-`, `_` or `.` (surrounding whitespace is trimmed).
    #[schema(value_type = String, required = true, min_length = 1)]
    pub sku: Option<String>,
    /// At most 100 bytes (UTF-8).
    pub brand: Option<String>,
    /// At most 100 bytes (UTF-8).
    pub category: Option<String>,
    /// Quantity on hand, 0 to 1000000000; `null` stops tracking stock; absent leaves it as it is
    /// (on create: untracked). A product with tracked stock changes its SKU only with `stock`
    /// in the same body.
    #[serde(default, deserialize_with = "explicit_null")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 1000000000)]
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

#[derive(Deserialize, ToSchema)]
pub struct BatchGetBody {
    /// At most 1000; unknown SKUs are skipped, the order is kept.
    #[schema(max_items = 1000)]
    pub skus: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddItemBody {
    #[schema(min_length = 1)]
    pub product_sku: String,
    /// Added to the line's quantity; the line may hold at most 10000.
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 10000)]
    pub quantity: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct QuantityBody {
    /// The line's new quantity, at most 10000; 0 or less removes the line.
    #[serde(deserialize_with = "whole_number")]
    #[schema(maximum = 10000)]
    pub quantity: i64,
}

/// A whole number, also when written with a zero fraction (`2.0`): JSON does not tell the two
/// apart, JSON Schema's `integer` admits both, and some clients serialise every number as a
/// float.
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        // Within ±2^53 every whole float is exact; beyond, no quantity is valid anyway.
        Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => Ok(f as i64),
        _ => Err(serde::de::Error::custom(format!(
            "expected a whole number, got {n}"
        ))),
    }
}

/// A cart line, or an order line (with the price paid).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Line)]
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

/// A card for the built-in test provider: Luhn-valid numbers are accepted, `4000000000000002`
/// and expired dates are declined (402). Each field is a string or a number.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Payment)]
pub struct PaymentBody {
    #[serde(deserialize_with = "number_or_string")]
    #[schema(schema_with = string_or_number)]
    pub card_number: String,
    /// 1 to 12.
    #[serde(deserialize_with = "number_or_string")]
    #[schema(schema_with = string_or_number)]
    pub exp_month: String,
    #[serde(deserialize_with = "number_or_string")]
    #[schema(schema_with = string_or_number)]
    pub exp_year: String,
    #[serde(deserialize_with = "number_or_string")]
    #[schema(schema_with = string_or_number)]
    pub cvc: String,
}

/// A field storefront forms send either as a string or as a number.
fn string_or_number() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::String, Type::Number]))
        .build()
}

/// Without a body (or without `payment`), checkout charges a default test card.
#[derive(Deserialize, ToSchema)]
#[schema(as = Checkout)]
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

#[derive(Deserialize, ToSchema)]
pub struct StatusBody {
    /// `Created`, `Paid`, `Shipped`, `Delivered` or `Cancelled` (any case).
    pub status: String,
}

/// One status an order went through, and when (RFC 3339).
#[derive(Serialize, ToSchema)]
#[schema(as = OrderHistory)]
pub struct HistoryDto {
    #[schema(value_type = OrderStatus)]
    pub status: &'static str,
    #[schema(format = DateTime)]
    pub at: String,
}

/// An order with its lines, total and status history.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Order)]
pub struct OrderDto {
    pub id: String,
    pub user_email: String,
    pub items: Vec<LineDto>,
    pub total: f64,
    /// ISO 4217 code of every price in the order.
    pub currency: String,
    #[schema(value_type = OrderStatus)]
    pub status: &'static str,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
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

/// An order's status: `Created` → `Paid` → `Shipped` → `Delivered`, and `Cancelled` from
/// `Created` or `Paid`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum OrderStatus {
    Created,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
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
