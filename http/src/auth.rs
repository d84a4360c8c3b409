//! JWT (HS256) issue and verification, and the `AuthUser` extractor.

use std::future::{ready, Ready};
use std::sync::Mutex;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use emporium_engine::user::{Role, UserAccount};
use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::AppState;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub email: String,
    pub username: String,
    pub role: String,
    pub iat: u64,
    pub exp: u64,
}

pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
    /// Tokens already verified, by their full text: (email, expiry in seconds). A storefront sends
    /// the same token on every request, so this skips base64, HMAC and JSON on all but the first.
    verified: Mutex<foldhash::HashMap<String, (String, u64)>>,
}

/// Above this many cached tokens the cache starts over (a bound, not an LRU).
const VERIFIED_CACHE: usize = 100_000;
/// Longer tokens are refused unread (ours are ~250 bytes), so the cache holds at most
/// `VERIFIED_CACHE` × this many bytes of keys.
const MAX_TOKEN: usize = 2048;

/// The token of an `Authorization: Bearer <token>` header, trimmed: the same text, however
/// padded, is the same cache key.
fn bearer(header_value: Option<&str>) -> Result<&str, ApiError> {
    let value = header_value
        .ok_or_else(|| ApiError::unauthorized("missing_token", "sign in first: no bearer token"))?;
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            ApiError::unauthorized(
                "invalid_token",
                "the Authorization header must be 'Bearer <token>'",
            )
        })?;
    if token.len() > MAX_TOKEN {
        return Err(ApiError::unauthorized(
            "invalid_token",
            "the token is not valid",
        ));
    }
    Ok(token)
}

impl Auth {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
            verified: Mutex::default(),
        }
    }

    pub fn issue(&self, account: &UserAccount, role: Role) -> Result<String, ApiError> {
        let now = emporium_engine::clock::now_ms() / 1000;
        let claims = Claims {
            sub: account.email.clone(),
            email: account.email.clone(),
            username: account.username.clone(),
            role: role.as_str().to_owned(),
            iat: now,
            exp: now + self.ttl_secs,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| {
            tracing::error!(error = %e, "cannot sign token");
            ApiError::new(
                actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "cannot issue a token",
            )
        })
    }

    /// The email of a valid bearer token, from the cache when it was verified before.
    pub fn verified_email(&self, header_value: Option<&str>) -> Result<String, ApiError> {
        let token = bearer(header_value)?;
        let now = emporium_engine::clock::now_ms() / 1000;
        let cached = self
            .verified
            .lock()
            .ok()
            .and_then(|c| c.get(token).cloned());
        // The same leeway as the full check, so a cached token expires exactly when it would.
        if let Some((email, _)) = cached.filter(|(_, exp)| now <= exp + self.validation.leeway) {
            return Ok(email);
        }
        let claims = self.decode(token)?;
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= VERIFIED_CACHE {
                cache.clear();
            }
            cache.insert(token.to_owned(), (claims.email.clone(), claims.exp));
        }
        Ok(claims.email)
    }

    pub fn verify(&self, header_value: Option<&str>) -> Result<Claims, ApiError> {
        self.decode(bearer(header_value)?)
    }

    fn decode(&self, token: &str) -> Result<Claims, ApiError> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::unauthorized(
                    "token_expired",
                    "the session has expired; sign in again",
                ),
                _ => ApiError::unauthorized("invalid_token", "the token is not valid"),
            })
    }
}

/// The signed-in caller. The role comes from the current configuration, not from the token, so
/// revoking an admin takes effect at once.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub email: String,
    pub role: Role,
}

impl AuthUser {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Customer => Err(ApiError::forbidden()),
        }
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::unauthorized(
                "invalid_token",
                "authentication is not configured",
            )));
        };
        // UTF-8 rather than `to_str`'s visible-ASCII check: faster on a 200-byte header, and any
        // byte a token cannot hold fails verification just the same.
        let header_value = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok());
        ready(
            state
                .auth
                .verified_email(header_value)
                .map(|email| AuthUser {
                    role: state.engine.role_of(&email),
                    email,
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> UserAccount {
        UserAccount {
            email: "ann@example.com".into(),
            username: "ann".into(),
            password_hash: String::new(),
            created_at_ms: 0,
        }
    }

    fn signed(secret: &[u8], exp: u64) -> String {
        let claims = Claims {
            sub: "ann@example.com".into(),
            email: "ann@example.com".into(),
            username: "ann".into(),
            role: "customer".into(),
            iat: 0,
            exp,
        };
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn the_cache_accepts_only_what_verification_accepts() {
        let auth = Auth::new(b"0123456789abcdef-secret", 3600);
        let token = auth.issue(&account(), Role::Customer).unwrap();
        let header = format!("Bearer {token}");
        assert_eq!(
            auth.verified_email(Some(&header)).unwrap(),
            "ann@example.com"
        );
        assert_eq!(
            auth.verified_email(Some(&header)).unwrap(),
            "ann@example.com",
            "cached"
        );
        // A token signed with another secret is never served from the cache.
        let forged = format!(
            "Bearer {}",
            signed(b"another-secret-0123456789", u64::MAX / 2)
        );
        assert_eq!(
            auth.verified_email(Some(&forged)).unwrap_err().code,
            "invalid_token"
        );
        // An expired token is refused, and so is a cached one once its expiry passed.
        let now = emporium_engine::clock::now_ms() / 1000;
        let expired = format!("Bearer {}", signed(b"0123456789abcdef-secret", now - 60));
        assert_eq!(
            auth.verified_email(Some(&expired)).unwrap_err().code,
            "token_expired"
        );
        let stale = signed(b"0123456789abcdef-secret", now - 60);
        auth.verified
            .lock()
            .unwrap()
            .insert(stale.clone(), ("ann@example.com".into(), now - 60));
        assert!(auth
            .verified_email(Some(&format!("Bearer {stale}")))
            .is_err());
        assert!(auth.verified_email(None).is_err());
    }
}
