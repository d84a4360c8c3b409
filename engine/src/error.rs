use serde::{Deserialize, Deserializer, Serialize};

use crate::{cart, order, payment};

/// Everything an engine call can fail with. `http` maps each variant to one status code. Errors
/// travel between nodes with the replies of forwarded commands (bincode).
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    #[error(transparent)]
    Cart(#[from] cart::Error),
    #[error(transparent)]
    Order(#[from] order::Error),
    #[error("{0}")]
    PaymentDeclined(#[from] payment::Declined),
    #[error("invalid payment details: {0}")]
    InvalidPayment(String),
    #[error("{what} {id} not found")]
    NotFound {
        #[serde(deserialize_with = "known_name")]
        what: Name,
        id: String,
    },
    #[error("out of stock: {}", skus.join(", "))]
    OutOfStock { skus: Vec<String> },
    #[error("the cart is empty")]
    EmptyCart,
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("wrong email or password")]
    BadCredentials,
    #[error("a product with sku {0} already exists")]
    DuplicateSku(String),
    #[error(
        "the stock of this product is tracked under sku {sku}: give \"stock\" with the new sku \
         (a number, or null to stop tracking it)"
    )]
    StockTracked { sku: String },
    #[error("invalid {field}: {reason}")]
    Invalid {
        #[serde(deserialize_with = "known_name")]
        field: Name,
        reason: String,
    },
    #[error("shard {shard} is owned by node {owner}")]
    NotOwner { shard: u32, owner: u32 },
    #[error("{0} changed under this owner; retry")]
    Fenced(String),
    /// Internal: the actor passivated before this message reached it; the engine re-sends.
    #[error("entity passivated; retry")]
    Passivated,
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("stored record cannot be decoded: {0}")]
    Codec(String),
}

impl Error {
    /// Whether the same request may succeed if retried shortly (maps to 503 + Retry-After).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::NotOwner { .. } | Self::Fenced(_) | Self::Unavailable(_) | Self::Passivated
        )
    }
}

/// A fixed name in an error. An alias, because serde's derive would make a field spelled
/// `&'static str` borrow from the input, and replies are decoded from buffers that do not live
/// for ever; [`known_name`] maps the text back onto these constants instead.
pub type Name = &'static str;

/// The names an error may carry (what was not found, which field is invalid). A name from a newer
/// build that this one does not know reads as "record".
const NAMES: [&str; 11] = [
    "product", "order", "user", "cart", "sku", "email", "password", "username", "limit", "page",
    "quantity",
];

fn known_name<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let name = String::deserialize(d)?;
    Ok(NAMES.into_iter().find(|n| *n == name).unwrap_or("record"))
}

impl From<emporium_persistence::Error> for Error {
    fn from(e: emporium_persistence::Error) -> Self {
        use emporium_persistence::Error as P;
        match e {
            P::Conflict { kind, key, .. } => Self::Fenced(format!("{kind} {key}")),
            P::Fenced {
                kind,
                key,
                epoch,
                found_epoch,
            } => Self::Fenced(format!(
                "{kind} {key}: shard epoch {epoch} is older than the stored {found_epoch}"
            )),
            P::Duplicate { value, .. } => Self::DuplicateSku(value),
            P::NotFound { what, value } => Self::NotFound { what, id: value },
            P::Unavailable(m) => Self::Unavailable(m),
            P::Corrupt { key, reason } => Self::Codec(format!("{key}: {reason}")),
        }
    }
}
