//! Route table. Fixed paths come before `{id}` so `/api/products/all` is never read as an id.
//! Hot areas come first.

pub(crate) mod cart;
pub(crate) mod catalog;
pub(crate) mod cluster;
pub(crate) mod ops;
pub(crate) mod orders;
pub(crate) mod users;

use actix_web::{web, HttpResponse};

use crate::error::ApiError;

/// One resource per path, so a wrong method gets a JSON 405 naming the methods it takes
/// (`Allow`, as RFC 9110 requires) instead of falling through; each keeps its own metric
/// handles. `allow` lists the methods of the routes added to it.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path)
        .app_data(crate::metrics::RouteMetrics::default())
        .default_service(web::to(move || method_not_allowed(allow)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // One scope per area: a request is matched against its own area's patterns only, so cart
    // writes never evaluate the catalog's `{id}` patterns.
    let users = web::scope("/users")
        .service(resource("/register", "POST").route(web::post().to(users::register)))
        .service(resource("/login", "POST").route(web::post().to(users::login)))
        .default_service(web::to(not_found));
    let products = web::scope("/products")
        .service(
            resource("", "GET, POST")
                .route(web::get().to(catalog::list))
                .route(web::post().to(catalog::create)),
        )
        .service(resource("/all", "GET").route(web::get().to(catalog::all)))
        .service(resource("/brands", "GET").route(web::get().to(catalog::brands)))
        .service(resource("/categories", "GET").route(web::get().to(catalog::categories)))
        .service(resource("/batch-get", "POST").route(web::post().to(catalog::batch_get)))
        .service(resource("/sku/{sku}", "GET").route(web::get().to(catalog::by_sku)))
        .service(
            resource("/{id}", "GET, PUT, DELETE")
                .route(web::get().to(catalog::by_id))
                .route(web::put().to(catalog::update))
                .route(web::delete().to(catalog::delete)),
        )
        .default_service(web::to(not_found));
    let cart = web::scope("/cart")
        .service(
            resource("", "GET, DELETE")
                .route(web::get().to(cart::get))
                .route(web::delete().to(cart::clear)),
        )
        .service(resource("/items", "POST").route(web::post().to(cart::add)))
        .service(
            resource("/items/{sku}", "PUT, DELETE")
                .route(web::put().to(cart::set))
                .route(web::delete().to(cart::remove)),
        )
        .default_service(web::to(not_found));
    let orders = web::scope("/orders")
        .service(resource("", "GET").route(web::get().to(orders::list)))
        .service(resource("/{id}", "GET").route(web::get().to(orders::get)))
        .service(resource("/{id}/cancel", "POST").route(web::post().to(orders::cancel)))
        .default_service(web::to(not_found));
    cfg.service(resource("/healthz", "GET").route(web::get().to(ops::healthz)))
        .service(resource("/readyz", "GET").route(web::get().to(ops::readyz)))
        .service(resource("/metrics", "GET").route(web::get().to(ops::metrics)))
        .service(resource("/admin/cluster", "GET").route(web::get().to(cluster::status)))
        .service(
            web::scope("/api")
                .service(cart)
                .service(products)
                .service(orders)
                .service(users)
                .service(resource("/checkout", "POST").route(web::post().to(orders::checkout)))
                .service(
                    resource("/openapi.json", "GET")
                        .route(web::get().to(crate::openapi::openapi_json)),
                )
                .service(
                    resource("/admin/orders/{id}/status", "POST")
                        .route(web::post().to(orders::set_status)),
                )
                .default_service(web::to(not_found)),
        )
        .default_service(web::to(not_found));
}

async fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut res = ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route takes {allow} only"),
    )
    .to_response();
    res.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static(allow),
    );
    res
}

async fn not_found() -> HttpResponse {
    ApiError::not_found("no such route").to_response()
}
