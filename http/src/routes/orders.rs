use actix_web::{web, HttpRequest, HttpResponse};
use emporium_engine::order::OrderStatus;
use emporium_engine::user::Role;
use emporium_engine::CheckoutRequest;

use crate::auth::AuthUser;
use crate::dto::{CheckoutBody, OrderDto, StatusBody};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::{body, AppState};

const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Reserves stock for every line, charges the card, stores the order with its `order.created`
/// event and empties the cart, or does none of it. The same `Idempotency-Key` from the same user
/// answers with the same order (201 again), never a second one.
#[utoipa::path(post, path = "/api/checkout", operation_id = "checkout", tag = "orders", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
        description = "Printable ASCII, 1 to 255 characters once trimmed")),
    request_body(content = Option<CheckoutBody>, description = "Optional; no body or `null` charges the default test card"),
    responses(
        (status = 201, description = "The order", body = OrderDto),
        (status = 400, description = "`cart_empty`; `invalid_payment`: card fields malformed; `invalid_idempotency_key`", body = ErrorBody),
        (status = 402, description = "`payment_declined`", body = ErrorBody),
        (status = 409, description = "`out_of_stock`: names the SKUs", body = ErrorBody),
    ))]
pub async fn checkout(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // No body and a JSON `null` both mean "the default test card".
    let b: Option<Option<CheckoutBody>> = body::optional_json(&req, payload, state.body).await?;
    let card = match b.flatten().and_then(|b| b.payment) {
        Some(p) => Some(p.into_card()?),
        None => None,
    };
    let idempotency_key = match req.headers().get("Idempotency-Key") {
        None => None,
        Some(v) => {
            let key = v.to_str().map(str::trim).map_err(|_| {
                ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be printable ASCII",
                )
            })?;
            if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
                return Err(ApiError::bad_request(
                    "invalid_idempotency_key",
                    format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"),
                ));
            }
            Some(key.to_owned())
        }
    };
    let (order, _created) = state
        .engine
        .checkout(
            &user.email,
            CheckoutRequest {
                idempotency_key,
                card,
            },
        )
        .await?;
    // A replay of the same Idempotency-Key answers exactly like the first call.
    Ok(HttpResponse::Created().json(OrderDto::from(&order)))
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/api/orders", operation_id = "listOrders", tag = "orders", security(("bearer" = [])),
    responses((status = 200, description = "Orders", body = [OrderDto])))]
pub async fn list(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let orders = state.engine.orders_of(&user.email).await?;
    Ok(HttpResponse::Ok().json(orders.iter().map(OrderDto::from).collect::<Vec<_>>()))
}

fn viewer(user: &AuthUser) -> Option<&str> {
    match user.role {
        Role::Admin => None,
        Role::Customer => Some(&user.email),
    }
}

/// One of the caller's orders (admins: any order).
#[utoipa::path(get, path = "/api/orders/{id}", operation_id = "getOrder", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "The order's id (a UUID)")),
    responses(
        (status = 200, description = "The order", body = OrderDto),
        (status = 404, description = "`not_found`: no such order, or not the caller's", body = ErrorBody),
    ))]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let order = state.engine.order(&id, viewer(&user)).await?;
    Ok(HttpResponse::Ok().json(OrderDto::from(&order)))
}

/// Cancels an order that is `Created` or `Paid`; its stock goes back.
#[utoipa::path(post, path = "/api/orders/{id}/cancel", operation_id = "cancelOrder", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "The order's id (a UUID)")),
    responses(
        (status = 200, description = "The cancelled order", body = OrderDto),
        (status = 404, description = "`not_found`: no such order, or not the caller's", body = ErrorBody),
        (status = 409, description = "`illegal_transition`: not cancellable", body = ErrorBody),
    ))]
pub async fn cancel(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let order = state
        .engine
        .transition_order(&id, OrderStatus::Cancelled, viewer(&user))
        .await?;
    Ok(HttpResponse::Ok().json(OrderDto::from(&order)))
}

/// Moves an order along its lifecycle (admins only).
#[utoipa::path(post, path = "/api/admin/orders/{id}/status", operation_id = "setOrderStatus", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "The order's id (a UUID)")),
    request_body = StatusBody,
    responses(
        (status = 200, description = "The order in its new status", body = OrderDto),
        (status = 400, description = "`invalid_status`: not a status", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 404, description = "`not_found`: no such order", body = ErrorBody),
        (status = 409, description = "`illegal_transition`", body = ErrorBody),
    ))]
pub async fn set_status(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    user.require_admin()?;
    let b: StatusBody = body::json(&req, payload, state.body).await?;
    let to = OrderStatus::parse(&b.status).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_status",
            "status must be one of Created, Paid, Shipped, Delivered, Cancelled",
        )
    })?;
    let order = state.engine.transition_order(&id, to, None).await?;
    Ok(HttpResponse::Ok().json(OrderDto::from(&order)))
}
