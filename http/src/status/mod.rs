//! `emporium cluster status`: asks one node for its view of the cluster (`GET /admin/cluster`,
//! admin token) and prints it as tables, or the raw document with `--json`.
//!
//! Every failure (nothing listening, a missing or non-admin token, a node that is not in a
//! cluster, something that is not an emporium node) becomes one line naming the node and what to
//! do about it; nothing here panics.

use std::time::Duration;

use serde_json::Value;

/// How long the whole request may take (connecting included).
const TIMEOUT: Duration = Duration::from_secs(10);
/// A status document lists every shard: ~70 bytes each, at most 65,536 shards.
const BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Handoffs shown (the node keeps a bounded history; `--json` has all of it).
const HANDOFFS_SHOWN: usize = 10;
/// Shard ranges listed per state before "… and N more".
const RANGES_SHOWN: usize = 16;

/// `emporium cluster status` options.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The node's API address (http://host:port); any node answers with its own view.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An admin's bearer token (an account whose email is in EMPORIUM_ADMIN_EMAILS).
    #[arg(long, env = "EMPORIUM_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the node's status document as it came (JSON) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Fetches the document and prints it; `Err` is the one line to show.
pub async fn run(args: StatusArgs) -> Result<(), String> {
    let (base, endpoint) = endpoint(&args.url)?;
    let token = args
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let body = fetch(&base, &endpoint, token).await?;
    let doc: Value = serde_json::from_slice(&body).map_err(|e| {
        format!("{base} answered 200 but not with JSON ({e}): is it an emporium node?")
    })?;
    if args.json {
        println!("{}", String::from_utf8_lossy(&body).trim_end());
        return Ok(());
    }
    print!("{}", render(&doc, now_ms())?);
    Ok(())
}

/// `(base, base + /admin/cluster)` from what the operator typed: `http://host:port`, with or
/// without a trailing slash or the path itself; `host:port` alone means http.
fn endpoint(url: &str) -> Result<(String, String), String> {
    let url = url.trim();
    let with_scheme = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let uri: awc::http::Uri = with_scheme
        .parse()
        .map_err(|e| format!("--url {url:?} is not a URL like http://127.0.0.11:8080 ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "--url {url:?}: this command speaks plain HTTP only; give the node's own \
                 http:// address (or a port-forward to it), not the load balancer's https://"
            ))
        }
        _ => return Err(format!("--url {url:?} must start with http://")),
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("--url {url:?} has no host"));
    };
    let base = format!("http://{authority}");
    let path = uri.path().trim_end_matches('/');
    let path = if path.ends_with("/admin/cluster") {
        path.to_owned()
    } else {
        format!("{path}/admin/cluster")
    };
    Ok((base.clone(), format!("{base}{path}")))
}

async fn fetch(base: &str, endpoint: &str, token: Option<&str>) -> Result<Vec<u8>, String> {
    use awc::error::{ConnectError, SendRequestError};
    let client = awc::Client::builder()
        .timeout(TIMEOUT)
        .connector(awc::Connector::new().timeout(TIMEOUT))
        .finish();
    let mut request = client
        .get(endpoint)
        .insert_header(("accept", "application/json"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = request.send().await.map_err(|e| match e {
        SendRequestError::Connect(ConnectError::Io(io))
            if io.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            format!("cannot reach {base}: connection refused (is an emporium node running there?)")
        }
        SendRequestError::Connect(ConnectError::Timeout) | SendRequestError::Timeout => {
            format!("{base} did not answer within {} s", TIMEOUT.as_secs())
        }
        SendRequestError::Connect(ConnectError::Resolver(r)) => {
            format!("cannot resolve the host of {base}: {r}")
        }
        SendRequestError::Connect(c) => format!("cannot reach {base}: {c}"),
        other => format!("GET {endpoint} failed: {other}"),
    })?;
    let status = response.status().as_u16();
    let body = response
        .body()
        .limit(BODY_LIMIT)
        .await
        .map_err(|e| format!("{base} answered {status} but the body did not arrive: {e}"))?;
    if status == 200 {
        return Ok(body.to_vec());
    }
    // The API's errors are `{"error","message"}`; anything else is shown as text, shortened.
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&body);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            text.chars().take(200).collect()
        });
    Err(match status {
        401 if token.is_none() => format!(
            "{base} wants an admin token: pass --token or set EMPORIUM_ADMIN_TOKEN \
             (log in as an account listed in EMPORIUM_ADMIN_EMAILS)"
        ),
        401 => format!(
            "{base} refused the token (401: {message}): it is invalid, expired or signed \
             with another EMPORIUM_JWT_SECRET; log in again"
        ),
        403 => format!(
            "{base} refused the token (403): it is not an admin's; log in as an account \
             listed in the node's EMPORIUM_ADMIN_EMAILS"
        ),
        404 if message.to_lowercase().contains("not part of a cluster") => format!(
            "{base} is not part of a cluster: it runs as a single node (no EMPORIUM_PEERS or \
             EMPORIUM_PEER_DNS)"
        ),
        404 => format!("{base} has no /admin/cluster (404): is it an emporium node?"),
        _ => format!("GET {endpoint} answered {status}: {message}"),
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

mod render;

pub use render::render;

#[cfg(test)]
mod tests;
