//! The one mapping from engine errors to HTTP: every error is JSON `{"error","message"}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use emporium_engine::{cart, Error as EngineError};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: sentence(&message.into()),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this needs an admin account",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn to_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.insert_header((header::RETRY_AFTER, "1"));
        }
        res.json(Body {
            error: self.code,
            message: &self.message,
        })
    }
}

/// Engine messages are lowercase fragments; the storefront shows `message` to people.
fn sentence(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => {
            let mut out: String = first.to_uppercase().chain(chars).collect();
            if !out.ends_with(['.', '!', '?']) {
                out.push('.');
            }
            out
        }
        None => String::new(),
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        self.to_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        use StatusCode as S;
        let message = e.to_string();
        let (status, code) = match &e {
            EngineError::Cart(cart::Error::BadQuantity(_)) => (S::BAD_REQUEST, "invalid_quantity"),
            EngineError::Cart(cart::Error::NotEnoughStock { .. }) => {
                (S::CONFLICT, "insufficient_stock")
            }
            EngineError::Cart(cart::Error::NotInCart(_)) => (S::NOT_FOUND, "not_in_cart"),
            EngineError::Cart(cart::Error::TooManyLines) => (S::CONFLICT, "cart_full"),
            EngineError::Order(_) => (S::CONFLICT, "illegal_transition"),
            EngineError::PaymentDeclined(_) => (S::PAYMENT_REQUIRED, "payment_declined"),
            EngineError::InvalidPayment(_) => (S::BAD_REQUEST, "invalid_payment"),
            EngineError::NotFound { .. } => (S::NOT_FOUND, "not_found"),
            EngineError::OutOfStock { .. } => (S::CONFLICT, "out_of_stock"),
            EngineError::EmptyCart => (S::BAD_REQUEST, "cart_empty"),
            EngineError::EmailTaken => (S::CONFLICT, "email_taken"),
            EngineError::BadCredentials => (S::UNAUTHORIZED, "invalid_credentials"),
            EngineError::DuplicateSku(_) => (S::CONFLICT, "duplicate_sku"),
            EngineError::StockTracked { .. } => (S::CONFLICT, "stock_tracked"),
            EngineError::Invalid { .. } => (S::BAD_REQUEST, "invalid_input"),
            EngineError::NotOwner { .. }
            | EngineError::Fenced(_)
            | EngineError::Passivated
            | EngineError::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "unavailable"),
            EngineError::Codec(_) => {
                tracing::error!(error = %e, "stored record cannot be decoded");
                (S::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        if status == S::SERVICE_UNAVAILABLE {
            warn_retryable(&e);
        }
        Self::new(status, code, message)
    }
}

/// Logs a retryable failure at most once a second, with how many were not logged since: during
/// an outage or a flood every request fails the same way, and one line per request would bury
/// the log (the metrics count them all).
fn warn_retryable(e: &EngineError) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_SECOND: AtomicU64 = AtomicU64::new(0);
    static UNLOGGED: AtomicU64 = AtomicU64::new(0);
    let second = emporium_engine::clock::now_ms() / 1000;
    let last = LAST_SECOND.load(Ordering::Relaxed);
    if second != last
        && LAST_SECOND
            .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let unlogged = UNLOGGED.swap(0, Ordering::Relaxed);
        tracing::warn!(error = %e, unlogged, "retryable failure");
    } else {
        UNLOGGED.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_become_sentences_and_statuses_map() {
        let e = ApiError::from(EngineError::OutOfStock {
            skus: vec!["A".into(), "B".into()],
        });
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(e.message, "Out of stock: A, B.");
        let e = ApiError::from(EngineError::Unavailable("store down".into()));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.to_response().headers().contains_key(header::RETRY_AFTER));
        assert_eq!(sentence(""), "");
    }
}
