use actix_web::{web, HttpRequest, HttpResponse};

use crate::dto::{LoginBody, RegisterBody, Token};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::{body, AppState};

/// Creates an account and signs it in.
#[utoipa::path(post, path = "/api/users/register", operation_id = "register", tag = "users",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "The account exists; its token", body = Token),
        (status = 400, description = "`invalid_input`: username, email or password out of bounds", body = ErrorBody),
        (status = 409, description = "`email_taken`", body = ErrorBody),
    ))]
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

/// Signs in. A wrong email and a wrong password get the same answer.
#[utoipa::path(post, path = "/api/users/login", operation_id = "login", tag = "users",
    request_body = LoginBody,
    responses(
        (status = 200, description = "A token", body = Token),
        (status = 400, description = "`invalid_input`: email or password empty", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
    ))]
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
