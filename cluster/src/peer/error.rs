//! What can go wrong on a peer call, and whether it is safe to try again.
//!
//! The caller of a forwarded command has to decide between retrying (possibly on another owner)
//! and answering "outcome unknown". That decision rests on one fact: could the request have reached
//! the peer's handler? Each variant answers it, in [`PeerError::is_safe_to_retry`], in one place
//! (after Restate's `is_safe_to_retry`).

/// A failed peer call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// Nothing was sent: the peer is unknown, could not be connected to, or the connection died
    /// before the request was written.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// Nothing was run: too many calls in flight to that peer (here or at the peer).
    #[error("peer overloaded")]
    Overloaded,
    /// Sent, and no answer within the bound: the command may or may not have run.
    #[error("peer call timed out")]
    Timeout,
    /// Sent, and the connection closed before the answer: the command may or may not have run.
    #[error("peer connection closed with the call in flight")]
    Closed,
    /// The peer refused this node's credentials (wrong cluster secret, or an incompatible protocol).
    #[error("peer refused the connection: {0}")]
    Refused(String),
    /// The peer's handler ran and answered with an error.
    #[error("peer answered with an error: {0}")]
    Remote(String),
    /// A message could not be encoded or decoded (here or at the peer).
    #[error("peer message codec: {0}")]
    Codec(String),
}

impl PeerError {
    /// Whether the request certainly did not run at the peer, so sending it again (to the same or
    /// another owner) cannot run it twice.
    ///
    /// `Codec` counts as unsafe: it covers both a request that could not be encoded (not sent)
    /// and a reply that could not be decoded (run), and a retry would fail the same way anyway.
    pub fn is_safe_to_retry(&self) -> bool {
        match self {
            PeerError::Unreachable(_) | PeerError::Overloaded | PeerError::Refused(_) => true,
            PeerError::Timeout | PeerError::Closed | PeerError::Remote(_) | PeerError::Codec(_) => {
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PeerError;

    #[test]
    fn only_errors_before_the_handler_ran_are_safe_to_retry() {
        assert!(PeerError::Unreachable("x".into()).is_safe_to_retry());
        assert!(PeerError::Overloaded.is_safe_to_retry());
        assert!(PeerError::Refused("x".into()).is_safe_to_retry());
        assert!(!PeerError::Timeout.is_safe_to_retry());
        assert!(!PeerError::Closed.is_safe_to_retry());
        assert!(!PeerError::Remote("x".into()).is_safe_to_retry());
        assert!(!PeerError::Codec("x".into()).is_safe_to_retry());
    }
}
