use actix_web::{web, HttpRequest, HttpResponse};
use emporium_engine::catalog::{Product, ProductQuery, MAX_PAGE_SIZE};
use emporium_engine::Engine;

use crate::auth::AuthUser;
use crate::dto::{BatchGetBody, ProductBody, ProductDto, ProductPageDto};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::{body, AppState};

const MAX_BATCH: usize = 1000;

async fn with_stock(engine: &Engine, products: &[Product]) -> Result<Vec<ProductDto>, ApiError> {
    let mut out = Vec::with_capacity(products.len());
    for p in products {
        out.push(ProductDto::new(p, engine.stock(&p.sku).await?));
    }
    Ok(out)
}

/// The query string's pairs, in order (a key may repeat).
type Params = Vec<(String, String)>;

/// The value given for a single-valued parameter; given twice, it is a 400 (which one was
/// meant?).
fn single<'a>(params: &'a Params, name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    let value = values.next();
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("{name} is given more than once"),
        ));
    }
    Ok(value)
}

/// A paging number from 1 to `max`; absent or empty gives `default`. Anything else is a 400
/// naming the bounds.
fn number(params: &Params, name: &'static str, default: u32, max: u32) -> Result<u32, ApiError> {
    let raw = match single(params, name)? {
        None | Some("") => return Ok(default),
        Some(raw) => raw,
    };
    match raw.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            "invalid_paging",
            format!("{name} must be a whole number from 1 to {max}"),
        )),
    }
}

/// At most this many distinct values per filter: each costs a comparison per product.
const MAX_FILTER_VALUES: usize = 50;

/// Every value of `name`: comma-separated (`brand=a,b`, the contract's form), repeated
/// (`brand=a&brand=b`) or with brackets (`brand[]=a&brand[]=b`, how some clients send arrays);
/// duplicates (in any case) once.
fn list_param(params: &Params, name: &str) -> Result<Vec<String>, ApiError> {
    let bracketed = format!("{name}[]");
    let too_many = || {
        ApiError::bad_request(
            "invalid_query",
            format!("at most {MAX_FILTER_VALUES} values of {name}"),
        )
    };
    let mut values: Vec<String> = Vec::new();
    let given = params
        .iter()
        .filter(|(k, _)| *k == name || *k == bracketed)
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty());
    // Repeats are tolerated, within reason: each is compared with the distinct values so far.
    for (n, value) in given.enumerate() {
        if n == 20 * MAX_FILTER_VALUES {
            return Err(too_many());
        }
        if !values.iter().any(|v| v.eq_ignore_ascii_case(value)) {
            if values.len() == MAX_FILTER_VALUES {
                return Err(too_many());
            }
            values.push(value.to_owned());
        }
    }
    Ok(values)
}

/// Searches the catalog: one page, sorted by name.
#[utoipa::path(get, path = "/api/products", operation_id = "listProducts", tag = "catalog",
    params(
        ("page" = Option<u64>, Query, minimum = 1, maximum = 4294967295.0, description = "1-based page (default 1; empty means the default)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Products per page (default 20, at most 100; empty means the default)"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of the name"),
        ("brand" = Option<String>, Query, description = "Comma-separated brands (any case), or the parameter repeated (also as `brand[]`); at most 50 distinct"),
        ("category" = Option<String>, Query, description = "Comma-separated categories, as `brand`"),
    ),
    responses(
        (status = 200, description = "The page", body = ProductPageDto),
        (status = 400, description = "`invalid_paging`: page or limit out of bounds; `invalid_query`: unparsable query, `page`, `limit` or `search` given twice, or more than 50 values of a filter", body = ErrorBody),
    ))]
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let params = web::Query::<Params>::from_query(req.query_string())
        .map_err(|_| ApiError::bad_request("invalid_query", "the query string cannot be parsed"))?
        .into_inner();
    let query = ProductQuery {
        page: number(&params, "page", 1, u32::MAX)?,
        limit: number(&params, "limit", 20, MAX_PAGE_SIZE)?,
        search: single(&params, "search")?.map(|s| s.trim().to_owned()),
        brands: list_param(&params, "brand")?,
        categories: list_param(&params, "category")?,
    };
    let page = state
        .engine
        .catalog()
        .snapshot()
        .query(&query)
        .map_err(|e| {
            let mut e = ApiError::from(e);
            e.code = "invalid_paging";
            e
        })?;
    Ok(HttpResponse::Ok().json(ProductPageDto {
        products: with_stock(&state.engine, &page.products).await?,
        total_pages: page.total_pages,
        current_page: page.current_page,
        total_products: page.total_products,
    }))
}

/// Every product, sorted by name.
#[utoipa::path(get, path = "/api/products/all", operation_id = "allProducts", tag = "catalog",
    responses((status = 200, description = "Every product", body = [ProductDto])))]
pub async fn all(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let catalog = state.engine.catalog().snapshot();
    Ok(HttpResponse::Ok().json(with_stock(&state.engine, catalog.all()).await?))
}

/// One product with its stock, or 404 naming what was looked up.
async fn one_product(
    state: &AppState,
    found: Option<Product>,
    what: String,
) -> Result<HttpResponse, ApiError> {
    let product = found.ok_or_else(|| ApiError::not_found(format!("no product with {what}")))?;
    let stock = state.engine.stock(&product.sku).await?;
    Ok(HttpResponse::Ok().json(ProductDto::new(&product, stock)))
}

#[utoipa::path(get, path = "/api/products/{id}", operation_id = "getProduct", tag = "catalog",
    params(("id" = String, Path, description = "The product's id")),
    responses(
        (status = 200, description = "The product", body = ProductDto),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
pub async fn by_id(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let found = state.engine.catalog().snapshot().get(&id).cloned();
    one_product(&state, found, format!("id {id}")).await
}

#[utoipa::path(get, path = "/api/products/sku/{sku}", operation_id = "getProductBySku", tag = "catalog",
    params(("sku" = String, Path, description = "The product's SKU")),
    responses(
        (status = 200, description = "The product", body = ProductDto),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
pub async fn by_sku(
    state: web::Data<AppState>,
    sku: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let found = state.engine.catalog().snapshot().get_by_sku(&sku).cloned();
    one_product(&state, found, format!("sku {sku}")).await
}

/// Distinct brands, sorted.
#[utoipa::path(get, path = "/api/products/brands", operation_id = "listBrands", tag = "catalog",
    responses((status = 200, description = "Brands", body = [String])))]
pub async fn brands(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.engine.catalog().snapshot().brands())
}

/// Distinct categories, sorted.
#[utoipa::path(get, path = "/api/products/categories", operation_id = "listCategories", tag = "catalog",
    responses((status = 200, description = "Categories", body = [String])))]
pub async fn categories(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.engine.catalog().snapshot().categories())
}

/// The products of the given SKUs, in the request's order; unknown SKUs are skipped.
#[utoipa::path(post, path = "/api/products/batch-get", operation_id = "batchGetProducts", tag = "catalog",
    request_body = BatchGetBody,
    responses(
        (status = 200, description = "The products found", body = [ProductDto]),
        (status = 400, description = "`invalid_input`: more than 1000 SKUs", body = ErrorBody),
    ))]
pub async fn batch_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let b: BatchGetBody = body::json(&req, payload, state.body).await?;
    if b.skus.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            "invalid_input",
            format!("at most {MAX_BATCH} skus per request"),
        ));
    }
    let catalog = state.engine.catalog().snapshot();
    // Unknown SKUs are skipped; the order of the request is kept.
    let found: Vec<Product> = b
        .skus
        .iter()
        .filter_map(|s| catalog.get_by_sku(s).cloned())
        .collect();
    Ok(HttpResponse::Ok().json(with_stock(&state.engine, &found).await?))
}

/// Creates a product (admins only).
#[utoipa::path(post, path = "/api/products", operation_id = "createProduct", tag = "catalog", security(("bearer" = [])),
    request_body = ProductBody,
    responses(
        (status = 201, description = "The product", body = ProductDto),
        (status = 400, description = "`invalid_input`: a field missing or out of bounds", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 409, description = "`duplicate_sku`", body = ErrorBody),
    ))]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    user.require_admin()?;
    let b: ProductBody = body::json(&req, payload, state.body).await?;
    let (draft, stock) = b.into_draft()?;
    let (product, stock) = state.engine.create_product(draft, stock.flatten()).await?;
    Ok(HttpResponse::Created().json(ProductDto::new(&product, stock)))
}

/// Replaces a product (admins only).
#[utoipa::path(put, path = "/api/products/{id}", operation_id = "updateProduct", tag = "catalog", security(("bearer" = [])),
    params(("id" = String, Path, description = "The product's id")),
    request_body = ProductBody,
    responses(
        (status = 200, description = "The product", body = ProductDto),
        (status = 400, description = "`invalid_input`: a field missing or out of bounds", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`duplicate_sku`; `stock_tracked`: a SKU change without `stock`", body = ErrorBody),
    ))]
pub async fn update(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    user.require_admin()?;
    let b: ProductBody = body::json(&req, payload, state.body).await?;
    let (draft, stock) = b.into_draft()?;
    let (product, stock) = state.engine.update_product(&id, draft, stock).await?;
    Ok(HttpResponse::Ok().json(ProductDto::new(&product, stock)))
}

/// Deletes a product (admins only); cart lines of it are no longer shown or bought.
#[utoipa::path(delete, path = "/api/products/{id}", operation_id = "deleteProduct", tag = "catalog", security(("bearer" = [])),
    params(("id" = String, Path, description = "The product's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
pub async fn delete(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    user.require_admin()?;
    state.engine.delete_product(&id).await?;
    Ok(HttpResponse::NoContent().finish())
}
