//! Route table. Fixed paths come before `{id}` so `/api/products/all` is never read as an id.

mod cart;
mod catalog;
mod ops;
mod orders;
mod users;

use actix_web::{web, HttpResponse};

use crate::error::ApiError;

/// One resource per path, so a wrong method gets a JSON 405 instead of falling through.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(ops::healthz)))
        .service(resource("/readyz").route(web::get().to(ops::readyz)))
        .service(resource("/metrics").route(web::get().to(ops::metrics)))
        .service(
            web::scope("/api")
                .service(resource("/users/register").route(web::post().to(users::register)))
                .service(resource("/users/login").route(web::post().to(users::login)))
                .service(
                    resource("/products")
                        .route(web::get().to(catalog::list))
                        .route(web::post().to(catalog::create)),
                )
                .service(resource("/products/all").route(web::get().to(catalog::all)))
                .service(resource("/products/brands").route(web::get().to(catalog::brands)))
                .service(resource("/products/categories").route(web::get().to(catalog::categories)))
                .service(resource("/products/batch-get").route(web::post().to(catalog::batch_get)))
                .service(resource("/products/sku/{sku}").route(web::get().to(catalog::by_sku)))
                .service(
                    resource("/products/{id}")
                        .route(web::get().to(catalog::by_id))
                        .route(web::put().to(catalog::update))
                        .route(web::delete().to(catalog::delete)),
                )
                .service(
                    resource("/cart")
                        .route(web::get().to(cart::get))
                        .route(web::delete().to(cart::clear)),
                )
                .service(resource("/cart/items").route(web::post().to(cart::add)))
                .service(
                    resource("/cart/items/{sku}")
                        .route(web::put().to(cart::set))
                        .route(web::delete().to(cart::remove)),
                )
                .service(resource("/checkout").route(web::post().to(orders::checkout)))
                .service(resource("/orders").route(web::get().to(orders::list)))
                .service(resource("/orders/{id}").route(web::get().to(orders::get)))
                .service(resource("/orders/{id}/cancel").route(web::post().to(orders::cancel)))
                .service(
                    resource("/admin/orders/{id}/status").route(web::post().to(orders::set_status)),
                )
                .default_service(web::to(not_found)),
        )
        .default_service(web::to(not_found));
}

async fn method_not_allowed() -> HttpResponse {
    ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
    .to_response()
}

async fn not_found() -> HttpResponse {
    ApiError::not_found("no such route").to_response()
}
