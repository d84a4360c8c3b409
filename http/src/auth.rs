//! JWT (HS256) issue and verification, and the `AuthUser` extractor.

use std::future::{ready, Ready};

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

    pub fn verify(&self, header_value: Option<&str>) -> Result<Claims, ApiError> {
        let value = header_value.ok_or_else(|| {
            ApiError::unauthorized("missing_token", "sign in first: no bearer token")
        })?;
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
        let header_value = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        ready(state.auth.verify(header_value).map(|claims| AuthUser {
            role: state.engine.role_of(&claims.email),
            email: claims.email,
        }))
    }
}
