//! The requests the cluster bench sends, on the load generator's keep-alive connection.

pub(crate) use emporium_bench::load::conn::{Conn, Response};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Add,
    Read,
}

pub(crate) struct User {
    pub(crate) email: String,
    pub(crate) token: String,
    /// The owner's ordinal (when owners were given).
    pub(crate) owner: Option<u32>,
}

pub(crate) fn request_bytes(kind: Kind, user: &User, sku: usize) -> Vec<u8> {
    match kind {
        Kind::Add => {
            let body = format!("{{\"productSku\":\"BENCH-{sku:03}\",\"quantity\":1}}");
            format!(
                "POST /api/cart/items HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                user.token,
                body.len()
            )
            .into_bytes()
        }
        Kind::Read => format!(
            "GET /api/cart HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {}\r\n\r\n",
            user.token
        )
        .into_bytes(),
    }
}
