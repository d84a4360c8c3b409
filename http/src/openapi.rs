//! The OpenAPI 3.1 document of the API, generated from the DTOs and the handlers' annotations.
//! Served at `GET /api/openapi.json`, written to `docs/openapi.json` by `emporium openapi`.
//!
//! Each handler's annotation names the answers particular to it. The answers every route of a
//! kind can give are added here, in one place, so no route forgets one: 401 where a token is
//! needed, 400/408/413 where a body is read, 414 where a path carries a parameter, and 503 with
//! `Retry-After` wherever the store or an actor is consulted.

use std::collections::btree_map::Entry;

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{HeaderBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes;

/// Every error: a machine code and a sentence the storefront shows.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// A machine code such as `invalid_input`, `not_found`, `insufficient_stock`.
    pub error: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// Readiness and the state of the backing services.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ready {
    pub status: String,
    /// `sled` or `mongodb`.
    pub store: String,
    /// `in-process`, `up` or `down`.
    pub broker: String,
    /// Order events not yet relayed; `null` when the store did not say in time.
    pub outbox_depth: Option<u64>,
    /// `up`, `down` or `off`.
    pub cart_cache: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Emporium storefront API",
        description = "The storefront REST API. Every error is `{\"error\",\"message\"}`; \
            bodies are JSON; unknown routes answer 404 and wrong methods 405.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        routes::users::register,
        routes::users::login,
        routes::catalog::list,
        routes::catalog::create,
        routes::catalog::all,
        routes::catalog::brands,
        routes::catalog::categories,
        routes::catalog::batch_get,
        routes::catalog::by_sku,
        routes::catalog::by_id,
        routes::catalog::update,
        routes::catalog::delete,
        routes::cart::get,
        routes::cart::clear,
        routes::cart::add,
        routes::cart::set,
        routes::cart::remove,
        routes::orders::checkout,
        routes::orders::list,
        routes::orders::get,
        routes::orders::cancel,
        routes::orders::set_status,
        openapi_json,
        routes::ops::healthz,
        routes::ops::readyz,
        routes::ops::metrics,
        routes::cluster::status,
    ),
    components(schemas(ErrorBody, crate::dto::OrderStatus)),
    modifiers(&CommonAnswers),
    tags(
        (name = "users", description = "Accounts and tokens"),
        (name = "catalog", description = "Products; writes need an admin token"),
        (name = "cart", description = "The caller's own cart"),
        (name = "orders", description = "Checkout and orders"),
        (name = "operations", description = "Probes, metrics, the cluster, this document"),
    )
)]
struct ApiDoc;

/// The document, as a value.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty JSON with a final newline: the bytes of `docs/openapi.json`.
pub fn to_json() -> String {
    // The document is built from plain structs with string keys: serializing it cannot fail.
    let mut text = document().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", operation_id = "openapi", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json() -> HttpResponse {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOC.get_or_init(to_json).as_str())
}

/// Paths that consult neither the store nor an actor (they cannot answer 503), or that document
/// their own 503 (`/readyz`).
const NO_COMMON_503: &[&str] = &[
    "/readyz",
    "/api/products/brands",
    "/api/products/categories",
    "/api/openapi.json",
    "/healthz",
    "/metrics",
    "/admin/cluster",
];

struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "HS256 token from register or login; admins are the accounts listed in \
                         EMPORIUM_ADMIN_EMAILS",
                    ))
                    .build(),
            ),
        );
        if let Some(list) = doc
            .paths
            .paths
            .get_mut("/api/products")
            .and_then(|item| item.get.as_mut())
        {
            lenient_query(list);
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            let has_param = path.contains('{');
            let may_be_unavailable = !NO_COMMON_503.contains(&path.as_str());
            for op in operations(item) {
                add_common(op, has_param, may_be_unavailable);
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn error(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Error")))
                .build(),
        )
        .build()
}

/// What the product search takes beyond the derive's types: `page` and `limit` may be empty
/// (the default), and a filter may be repeated (`brand=a&brand=b`).
fn lenient_query(op: &mut Operation) {
    for param in op.parameters.iter_mut().flatten() {
        let max: u64 = match param.name.as_str() {
            "page" => u32::MAX.into(),
            "limit" => emporium_engine::catalog::MAX_PAGE_SIZE.into(),
            "brand" | "category" => {
                let one = || ObjectBuilder::new().schema_type(Type::String);
                param.schema = Some(
                    AnyOfBuilder::new()
                        .item(one())
                        .item(ArrayBuilder::new().items(one()))
                        .into(),
                );
                continue;
            }
            _ => continue,
        };
        param.schema = Some(
            AnyOfBuilder::new()
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1))
                        .maximum(Some(max)),
                )
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .max_length(Some(0)),
                )
                .into(),
        );
    }
}

/// A parameter is absent or has a value: it is never `null` (the derive makes every optional
/// one nullable).
fn not_nullable(op: &mut Operation) {
    for param in op.parameters.iter_mut().flatten() {
        if let Some(RefOr::T(Schema::Object(o))) = &mut param.schema {
            if let SchemaType::Array(types) = &o.schema_type {
                let types: Vec<Type> = types
                    .iter()
                    .filter(|t| **t != Type::Null)
                    .cloned()
                    .collect();
                o.schema_type = match types.as_slice() {
                    [one] => SchemaType::Type(one.clone()),
                    _ => SchemaType::Array(types),
                };
            }
        }
    }
}

fn add_common(op: &mut Operation, has_param: bool, may_be_unavailable: bool) {
    not_nullable(op);
    let answers = &mut op.responses.responses;
    // A status the handler documents already gets the common causes added to its description.
    let mut add = |status: &str, response: Response| match answers.entry(status.to_owned()) {
        Entry::Vacant(v) => {
            v.insert(RefOr::T(response));
        }
        Entry::Occupied(mut o) => {
            if let RefOr::T(existing) = o.get_mut() {
                existing.description =
                    format!("{}; {}", existing.description, response.description);
            }
        }
    };
    if op.security.is_some() {
        add(
            "401",
            error("`missing_token`, `invalid_token` or `token_expired`: no valid bearer token"),
        );
    }
    if op.request_body.is_some() {
        add(
            "400",
            error("`malformed_json`, `missing_body` or `invalid_body`: the body is not the JSON expected"),
        );
        add(
            "408",
            error("`request_timeout`: the body did not arrive in time"),
        );
        add(
            "413",
            error("`payload_too_large`: the body is over the configured limit"),
        );
    }
    if has_param {
        add("414", error("`uri_too_long`: the path is over 2048 bytes"));
    }
    if may_be_unavailable {
        let mut unavailable =
            error("`unavailable`: the owning shard is moving or a backing store is down; retry");
        unavailable.headers.insert(
            "Retry-After".to_owned(),
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer).build())
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
        add("503", unavailable);
    }
}
