use actix_web::{web, HttpRequest, HttpResponse};

use crate::dto::{LoginBody, RegisterBody, Token};
use crate::error::ApiError;
use crate::{body, AppState};

pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let b: RegisterBody = body::json(&req, payload, state.body).await?;
    let account = state
        .engine
        .register(&b.username, &b.email, &b.password)
        .await?;
    let token = state
        .auth
        .issue(&account, state.engine.role_of(&account.email))?;
    Ok(HttpResponse::Created().json(Token { token }))
}

pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let b: LoginBody = body::json(&req, payload, state.body).await?;
    if b.email.trim().is_empty() || b.password.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_input",
            "Email and password are required.",
        ));
    }
    let account = state.engine.login(&b.email, &b.password).await?;
    let token = state
        .auth
        .issue(&account, state.engine.role_of(&account.email))?;
    Ok(HttpResponse::Ok().json(Token { token }))
}
