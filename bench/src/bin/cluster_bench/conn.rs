//! One keep-alive HTTP/1.1 connection and the requests it sends.

use std::io;
use std::net::SocketAddr;

use actix_rt::net::TcpStream;

/// One keep-alive connection.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    pub(crate) async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads more bytes into `buf`; an error at end of stream.
    pub(crate) async fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        loop {
            self.stream.readable().await?;
            match self.stream.try_read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one request and reads its response: (status, body).
    pub(crate) async fn exchange(&mut self, request: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        self.write_all(request).await?;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line: {head:?}")))?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            // 204 and 304 have no body and need no length; anything else without one (chunked)
            // is not spoken here.
            .or(matches!(status, 204 | 304).then_some(0))
            .ok_or_else(|| io::Error::other(format!("no content-length: {head:?}")))?;
        while self.buf.len() < head_end + length {
            self.fill().await?;
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        Ok((status, body))
    }
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

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
