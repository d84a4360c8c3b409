//! One keep-alive HTTP/1.1 connection: a request written by hand, the response read by its
//! `Content-Length` (the store always sends one).

use std::io;
use std::net::SocketAddr;

use actix_rt::net::TcpStream;

/// How an exchange failed.
#[derive(Debug)]
pub enum ExchangeError {
    /// The connection ended before any byte of the response: on a reused keep-alive connection
    /// the server may have closed it before reading the request.
    ClosedBeforeResponse,
    /// Any other I/O failure, or a response this client cannot read.
    Io(io::Error),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::ClosedBeforeResponse => {
                f.write_str("connection closed before a response")
            }
            ExchangeError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for ExchangeError {
    fn from(e: io::Error) -> Self {
        ExchangeError::Io(e)
    }
}

/// A response: status, body, and whether the server keeps the connection open.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub keep_alive: bool,
}

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Responses read on it so far.
    pub used: u64,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
            used: 0,
        })
    }

    async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
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

    /// Reads more bytes into `buf`; `Ok(false)` at end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16384];
        loop {
            self.stream.readable().await?;
            match self.stream.try_read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one request and reads its response.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<Response, ExchangeError> {
        self.buf.clear();
        if let Err(e) = self.write_all(request).await {
            return Err(if self.used > 0 && is_closed(&e) {
                ExchangeError::ClosedBeforeResponse
            } else {
                e.into()
            });
        }
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            match self.fill().await {
                Ok(true) => {}
                Ok(false) if self.buf.is_empty() => {
                    return Err(ExchangeError::ClosedBeforeResponse)
                }
                Ok(false) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
                Err(e) if self.buf.is_empty() && is_closed(&e) => {
                    return Err(ExchangeError::ClosedBeforeResponse)
                }
                Err(e) => return Err(e.into()),
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line: {head:.80?}")))?;
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let length: usize = match header("content-length") {
            Some(v) => v
                .parse()
                .map_err(|_| io::Error::other(format!("bad content-length {v:?}")))?,
            None if matches!(status, 204 | 304) || status < 200 => 0,
            None => return Err(io::Error::other("a response without content-length").into()),
        };
        while self.buf.len() < head_end + length {
            if !self.fill().await? {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        let keep_alive = !header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        self.used += 1;
        Ok(Response {
            status,
            body,
            keep_alive,
        })
    }
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A request's bytes: `method path`, the bearer token if any, extra headers, a JSON body if any.
pub fn request(
    method: &str,
    path: &str,
    host: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    json: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + json.map_or(0, <[u8]>::len));
    out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").as_bytes());
    if let Some(t) = token {
        out.extend_from_slice(format!("Authorization: Bearer {t}\r\n").as_bytes());
    }
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    match json {
        Some(body) => {
            out.extend_from_slice(
                format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(body);
        }
        None if method == "GET" => out.extend_from_slice(b"\r\n"),
        None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
    out
}
