use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::AuthUser;
use crate::dto::{AddItemBody, LineDto, QuantityBody};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::{body, AppState};

/// The caller's cart, sorted by SKU; lines of deleted products are left out.
#[utoipa::path(get, path = "/api/cart", operation_id = "getCart", tag = "cart", security(("bearer" = [])),
    responses((status = 200, description = "The cart's lines (`[]` when empty)", body = [LineDto])))]
pub async fn get(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let lines = state.engine.cart_view(&user.email).await?;
    Ok(HttpResponse::Ok().json(lines.iter().map(LineDto::from).collect::<Vec<_>>()))
}

/// Adds to a line (creating it).
#[utoipa::path(post, path = "/api/cart/items", operation_id = "addCartItem", tag = "cart", security(("bearer" = [])),
    request_body = AddItemBody,
    responses(
        (status = 204, description = "Added"),
        (status = 400, description = "`invalid_quantity`: below 1, or the line would exceed 10000; `invalid_input`: empty SKU", body = ErrorBody),
        (status = 404, description = "`not_found`: no product with that SKU", body = ErrorBody),
        (status = 409, description = "`insufficient_stock`: more than the tracked stock; `cart_full`: 500 lines already", body = ErrorBody),
    ))]
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

/// Sets a line's quantity; 0 or less removes the line (also when it is absent).
#[utoipa::path(put, path = "/api/cart/items/{sku}", operation_id = "setCartItem", tag = "cart", security(("bearer" = [])),
    params(("sku" = String, Path, description = "The product's SKU")),
    request_body = QuantityBody,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "`invalid_quantity`: above 10000", body = ErrorBody),
        (status = 404, description = "`not_found`: no product with that SKU; `not_in_cart`: the cart has no such line", body = ErrorBody),
        (status = 409, description = "`insufficient_stock`: more than the tracked stock", body = ErrorBody),
    ))]
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

/// Removes a line (204 also when it is absent).
#[utoipa::path(delete, path = "/api/cart/items/{sku}", operation_id = "removeCartItem", tag = "cart", security(("bearer" = [])),
    params(("sku" = String, Path, description = "The product's SKU")),
    responses((status = 204, description = "Removed")))]
pub async fn remove(
    state: web::Data<AppState>,
    user: AuthUser,
    sku: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.engine.cart_remove(&user.email, &sku).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Empties the cart.
#[utoipa::path(delete, path = "/api/cart", operation_id = "clearCart", tag = "cart", security(("bearer" = [])),
    responses((status = 204, description = "Emptied")))]
pub async fn clear(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    state.engine.cart_clear(&user.email).await?;
    Ok(HttpResponse::NoContent().finish())
}
