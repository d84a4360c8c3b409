/// Errors of the storage layer. `Unavailable` is the retryable one.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("version conflict on {kind}/{key}: expected {expected}, found {found}")]
    Conflict {
        kind: String,
        key: String,
        expected: u64,
        found: u64,
    },
    #[error("duplicate {what} {value}")]
    Duplicate { what: &'static str, value: String },
    #[error("{what} {value} not found")]
    NotFound { what: &'static str, value: String },
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}
