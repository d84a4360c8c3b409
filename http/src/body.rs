//! Reading JSON bodies with a size limit, a time limit and clear 400/408/413 errors. Handlers always read the body
//! (an unread POST body makes actix-web drop the keep-alive connection).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest};
use futures_util::{FutureExt as _, StreamExt};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// How large a request body may be, and how long it may take to arrive once its headers are in.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub bytes: usize,
    pub timeout: std::time::Duration,
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than {limit} bytes"),
    )
}

/// Reads the whole body, refusing more than `limits.bytes` bytes (413), and a body still
/// incomplete `limits.timeout` after its headers (408).
pub async fn read_bytes(
    req: &HttpRequest,
    mut payload: web::Payload,
    limits: Limits,
) -> Result<web::BytesMut, ApiError> {
    let limit = limits.bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(256).min(limit));
    // What already arrived is read without a timer (a storefront body comes with its headers);
    // the rest must arrive within the timeout, so a body never finished cannot hold its
    // connection (and a file descriptor) open for good.
    loop {
        match payload.next().now_or_never() {
            Some(Some(chunk)) => append(&mut body, chunk, limit)?,
            Some(None) => return Ok(body),
            None => break,
        }
    }
    let rest = async {
        while let Some(chunk) = payload.next().await {
            append(&mut body, chunk, limit)?;
        }
        Ok(())
    };
    match actix_web::rt::time::timeout(limits.timeout, rest).await {
        Ok(Ok(())) => Ok(body),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} seconds",
                limits.timeout.as_secs()
            ),
        )),
    }
}

fn append(
    body: &mut web::BytesMut,
    chunk: Result<web::Bytes, actix_web::error::PayloadError>,
    limit: usize,
) -> Result<(), ApiError> {
    let chunk = chunk.map_err(|e| {
        ApiError::bad_request("bad_body", format!("cannot read the request body: {e}"))
    })?;
    if body.len() + chunk.len() > limit {
        return Err(too_large(limit));
    }
    body.extend_from_slice(&chunk);
    Ok(())
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
                "malformed_json",
                format!("the request body is not valid JSON: {e}"),
            ),
            Category::Data => ApiError::bad_request(
                "invalid_body",
                format!("the request body is not as expected: {}", data_error(&e)),
            ),
        }
    })
}

/// serde's account of a well-formed body of the wrong shape, in the client's terms: without the
/// position (the bodies are small) and without the names of this crate's types.
fn data_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let text = match text.rsplit_once(" at line ") {
        Some((head, _)) => head,
        None => &text,
    };
    match text.find("expected struct") {
        // "expected struct LoginBody with 2 elements": the type's name, said plainly.
        Some(at) => format!("{}expected a JSON object", &text[..at]),
        None => text.to_owned(),
    }
}

/// A required JSON body.
pub async fn json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limits: Limits,
) -> Result<T, ApiError> {
    let bytes = read_bytes(req, payload, limits).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "missing_body",
            "a JSON request body is required",
        ));
    }
    parse_json(&bytes)
}

/// An optional JSON body: empty means `None`.
pub async fn optional_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limits: Limits,
) -> Result<Option<T>, ApiError> {
    let bytes = read_bytes(req, payload, limits).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    parse_json(&bytes).map(Some)
}
