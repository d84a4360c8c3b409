use crate::{cart, order, payment};

/// Everything an engine call can fail with. `http` maps each variant to one status code.
#[derive(Debug, Clone, thiserror::Error)]
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
    NotFound { what: &'static str, id: String },
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
    Invalid { field: &'static str, reason: String },
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
