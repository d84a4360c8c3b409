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
    /// The entity was last written under a newer shard epoch than the write's: the writer has
    /// lost the shard (another node took it over) and must give the entity up, not retry.
    #[error("write to {kind}/{key} fenced: epoch {epoch} is older than the stored {found_epoch}")]
    Fenced {
        kind: String,
        key: String,
        epoch: u64,
        found_epoch: u64,
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
