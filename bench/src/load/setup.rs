//! Before the load: the catalog read, the shoppers signed in (registered, or tokens minted with
//! the server's secret), and, where a scenario buys, products with stock created by an admin.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_rt::time::sleep;
use serde_json::{json, Value};

use super::client::{Client, Request};
use super::opts::Options;

pub struct Shopper {
    pub token: String,
}

#[derive(Clone, Debug)]
pub struct Product {
    pub sku: String,
    /// The stock it started with, when this run created it (only then is its stock verified).
    pub initial_stock: Option<u64>,
}

pub struct Setup {
    /// Names this run's accounts and products apart from any other run's.
    pub run_id: String,
    pub shoppers: Vec<Shopper>,
    /// Ids of the catalog's products (product pages).
    pub catalog_ids: Vec<String>,
    /// Words from product names (searches).
    pub search_words: Vec<String>,
    /// What the shoppers put in their carts.
    pub buy: Vec<Product>,
}

/// Sends `req` until it gets an answer other than 503 (at most `tries` times, 300 ms apart):
/// (status, JSON body or Null).
pub async fn call(client: &Client, req: &Request<'_>, tries: u32) -> Result<(u16, Value), String> {
    let mut last = String::new();
    for _ in 0..tries.max(1) {
        match client.send(req).await {
            Ok(r) if r.status != 503 => {
                return Ok((
                    r.status,
                    serde_json::from_slice(&r.body).unwrap_or(Value::Null),
                ))
            }
            Ok(r) => last = format!("503 {}", String::from_utf8_lossy(&r.body)),
            Err(f) => last = format!("{f:?}"),
        }
        sleep(Duration::from_millis(300)).await;
    }
    Err(format!("{} {}: {last}", req.method, req.path))
}

pub fn get<'a>(path: String, token: Option<&'a str>) -> Request<'a> {
    Request {
        method: "GET",
        path,
        token,
        headers: Vec::new(),
        json: None,
        retry_safe: true,
    }
}

pub fn post<'a>(path: &str, token: Option<&'a str>, body: &Value) -> Request<'a> {
    Request {
        method: "POST",
        path: path.to_owned(),
        token,
        headers: Vec::new(),
        json: Some(body.to_string().into_bytes()),
        retry_safe: false,
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An HS256 token as the server issues it (claims `sub`, `email`, `username`, `role`, `iat`,
/// `exp`; 24 h). The server takes the role from its own admin list, not from the token.
pub fn mint(secret: &str, email: &str, role: &str) -> Result<String, String> {
    let now = now_secs();
    let username = email.split('@').next().unwrap_or(email);
    let claims = json!({"sub": email, "email": email, "username": username, "role": role,
        "iat": now, "exp": now + 86_400});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| format!("cannot sign a token: {e}"))
}

/// Registers `email` (or logs in when it exists): its token.
async fn sign_in(client: &Client, email: &str, password: &str) -> Result<String, String> {
    let username = email.split('@').next().unwrap_or(email);
    let body = json!({"username": username, "email": email, "password": password});
    let (status, v) = call(client, &post("/api/users/register", None, &body), 20).await?;
    let (status, v) = if status == 409 {
        let login = json!({"email": email, "password": password});
        call(client, &post("/api/users/login", None, &login), 20).await?
    } else {
        (status, v)
    };
    match v["token"].as_str() {
        Some(t) if (200..300).contains(&status) => Ok(t.to_owned()),
        _ => Err(format!("sign-in of {email}: {status} {v}")),
    }
}

async fn admin_token(o: &Options, client: &Client) -> Result<Option<String>, String> {
    if let Some(secret) = &o.jwt_secret {
        return mint(secret, &o.admin_email, "admin").map(Some);
    }
    match &o.admin_password {
        Some(password) => sign_in(client, &o.admin_email, password).await.map(Some),
        None => Ok(None),
    }
}

async fn shoppers(o: &Options, client: &Client, run_id: &str) -> Result<Vec<Shopper>, String> {
    let emails: Vec<String> = (0..o.user_count())
        .map(|i| format!("load-{run_id}-{i}@load.example"))
        .collect();
    if let Some(secret) = &o.jwt_secret {
        return emails
            .into_iter()
            .map(|email| {
                let token = mint(secret, &email, "customer")?;
                Ok(Shopper { token })
            })
            .collect();
    }
    // Registration hashes a password (argon2): a few at a time, so the server's queue for it
    // never overflows into 503s.
    let password = format!("load-password-{run_id}");
    let mut out = Vec::with_capacity(emails.len());
    for chunk in emails.chunks(4) {
        let tokens = futures_util::future::join_all(
            chunk.iter().map(|email| sign_in(client, email, &password)),
        )
        .await;
        for token in tokens {
            out.push(Shopper { token: token? });
        }
    }
    Ok(out)
}

pub async fn prepare(o: &Options, client: &Client) -> Result<Setup, String> {
    let run_id = format!("{:x}{:04x}", now_secs(), std::process::id() & 0xffff);
    let (status, all) = call(client, &get("/api/products/all".into(), None), 40).await?;
    let catalog: Vec<Value> = match all {
        Value::Array(items) if status == 200 => items,
        other => return Err(format!("GET /api/products/all: {status} {other}")),
    };
    let catalog_ids: Vec<String> = catalog
        .iter()
        .filter_map(|p| p["id"].as_str().map(str::to_owned))
        .collect();
    let mut search_words: Vec<String> = catalog
        .iter()
        .filter_map(|p| {
            p["name"]
                .as_str()?
                .split_whitespace()
                .next()
                .map(str::to_lowercase)
        })
        .collect();
    search_words.sort();
    search_words.dedup();
    if search_words.is_empty() {
        search_words.push("a".into());
    }
    if !o.scenario.writes() {
        if catalog_ids.is_empty() {
            return Err("the catalog is empty: nothing to browse".into());
        }
        return Ok(Setup {
            run_id,
            shoppers: Vec::new(),
            catalog_ids,
            search_words,
            buy: Vec::new(),
        });
    }
    let buy = match admin_token(o, client).await? {
        Some(admin) => create_products(o, client, &admin, &run_id).await?,
        None => {
            // No admin: catalog products whose stock is untracked or ample.
            let found: Vec<Product> = catalog
                .iter()
                .filter(|p| p["stock"].as_u64().is_none_or(|s| s >= 10_000))
                .filter_map(|p| {
                    Some(Product {
                        sku: p["sku"].as_str()?.to_owned(),
                        initial_stock: None,
                    })
                })
                .take(o.products)
                .collect();
            if found.is_empty() {
                return Err(
                    "no admin (--jwt-secret or --admin-password) and no catalog product \
                            with untracked or ample stock to buy"
                        .into(),
                );
            }
            found
        }
    };
    let shoppers = shoppers(o, client, &run_id).await?;
    Ok(Setup {
        run_id,
        shoppers,
        catalog_ids,
        search_words,
        buy,
    })
}

async fn create_products(
    o: &Options,
    client: &Client,
    admin: &str,
    run_id: &str,
) -> Result<Vec<Product>, String> {
    let mut out = Vec::with_capacity(o.products);
    for i in 0..o.products {
        let sku = format!("LOAD-{}-{i:03}", run_id.to_uppercase());
        let body = json!({"name": format!("Load product {run_id} {i}"), "sku": sku,
            "price": 1.0 + (i % 100) as f64 / 100.0, "brand": "Load", "category": "Load",
            "description": "created by emporium-load", "stock": o.stock});
        let (status, v) = call(client, &post("/api/products", Some(admin), &body), 20).await?;
        if status != 201 {
            return Err(format!("creating product {sku}: {status} {v}"));
        }
        out.push(Product {
            sku,
            initial_stock: Some(o.stock),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_carry_the_claims_the_server_reads() {
        let token = mint("0123456789abcdef0123", "ann@load.example", "customer")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"0123456789abcdef0123"),
            &validation,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(data.claims["email"], "ann@load.example");
        assert_eq!(data.claims["username"], "ann");
        assert_eq!(data.claims["sub"], "ann@load.example");
    }
}
