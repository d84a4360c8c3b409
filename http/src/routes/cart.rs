use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::AuthUser;
use crate::dto::{AddItemBody, LineDto, QuantityBody};
use crate::error::ApiError;
use crate::{body, AppState};

pub async fn get(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let lines = state.engine.cart_view(&user.email).await?;
    Ok(HttpResponse::Ok().json(lines.iter().map(LineDto::from).collect::<Vec<_>>()))
}

pub async fn add(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let b: AddItemBody = body::json(&req, payload, state.body).await?;
    let sku = b.product_sku.trim();
    if sku.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_input",
            "productSku must not be empty.",
        ));
    }
    state.engine.cart_add(&user.email, sku, b.quantity).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn set(
    state: web::Data<AppState>,
    user: AuthUser,
    sku: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let b: QuantityBody = body::json(&req, payload, state.body).await?;
    state.engine.cart_set(&user.email, &sku, b.quantity).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn remove(
    state: web::Data<AppState>,
    user: AuthUser,
    sku: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.engine.cart_remove(&user.email, &sku).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn clear(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    state.engine.cart_clear(&user.email).await?;
    Ok(HttpResponse::NoContent().finish())
}
