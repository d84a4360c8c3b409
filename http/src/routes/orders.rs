use actix_web::{web, HttpRequest, HttpResponse};
use emporium_engine::order::OrderStatus;
use emporium_engine::user::Role;
use emporium_engine::CheckoutRequest;

use crate::auth::AuthUser;
use crate::dto::{CheckoutBody, OrderDto, StatusBody};
use crate::error::ApiError;
use crate::{body, AppState};

const MAX_IDEMPOTENCY_KEY: usize = 255;

pub async fn checkout(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let b: Option<CheckoutBody> = body::optional_json(&req, payload, state.body).await?;
    let card = match b.and_then(|b| b.payment) {
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

pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let order = state.engine.order(&id, viewer(&user)).await?;
    Ok(HttpResponse::Ok().json(OrderDto::from(&order)))
}

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
