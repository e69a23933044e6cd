//! The HTTP side of the proxy: one request head per connection, parsed with `httparse`.
//! `CONNECT host:port` opens a tunnel; an absolute-form request (`GET http://host/path`)
//! is rewritten to origin form, sent with `Connection: close`, and relayed the same way,
//! so both are paid, limited and closed by the same code.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::destination::Target;

/// Largest request head read.
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method.
    pub method: String,
    /// The request target as sent.
    pub target: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// What the client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// A tunnel (`CONNECT`).
    Tunnel(Target),
    /// One plain-HTTP request to forward; `head` is what goes upstream.
    Forward {
        /// The destination.
        target: Target,
        /// The rewritten request head.
        head: Vec<u8>,
    },
}

/// Why a request head is refused, with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    /// HTTP status.
    pub status: u16,
    /// What is wrong.
    pub detail: String,
}

fn bad(status: u16, detail: impl Into<String>) -> BadRequest {
    BadRequest {
        status,
        detail: detail.into(),
    }
}

/// Reads up to the end of the request head; the bytes read (the head and anything after
/// it) and the head's length.
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(Vec<u8>, usize), BadRequest> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| bad(400, format!("reading the request: {e}")))?;
        if n == 0 {
            return Err(bad(
                400,
                "the connection closed before the request head ended",
            ));
        }
        let searched_from = buffer.len().saturating_sub(3);
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = find(&buffer[searched_from..], b"\r\n\r\n") {
            return Ok((buffer, searched_from + at + 4));
        }
        if buffer.len() > MAX_HEAD {
            return Err(bad(
                431,
                format!("the request head is over {MAX_HEAD} bytes"),
            ));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses a complete request head.
pub fn parse(bytes: &[u8]) -> Result<Head, BadRequest> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad(400, "incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(bad(431, format!("more than {MAX_HEADERS} headers")))
        }
        Err(e) => return Err(bad(400, format!("malformed request head: {e}"))),
    }
    Ok(Head {
        method: request.method.unwrap_or_default().to_string(),
        target: request.path.unwrap_or_default().to_string(),
        headers: request
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
    })
}

/// Hop-by-hop headers never forwarded (RFC 9110 §7.6.1), plus the proxy's own.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

/// What a head asks of the proxy.
pub fn wanted(head: &Head) -> Result<Wanted, BadRequest> {
    if head.method.eq_ignore_ascii_case("CONNECT") {
        return Target::parse_authority(&head.target)
            .map(Wanted::Tunnel)
            .map_err(|e| bad(400, format!("CONNECT: {e}")));
    }
    let uri: http::Uri = head
        .target
        .parse()
        .map_err(|_| bad(400, format!("`{}` is not a URL", head.target)))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(bad(
                400,
                format!("{other}:// URLs go through CONNECT (a tunnel), not a plain request"),
            ))
        }
        None => {
            return Err(bad(
                400,
                "this is a forward proxy: send absolute URLs (GET http://host/path) or CONNECT host:port",
            ))
        }
    }
    let host = uri
        .host()
        .ok_or_else(|| bad(400, "the URL has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let target = Target {
        host,
        port: uri.port_u16().unwrap_or(80),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    // Headers the client names in Connection are hop-by-hop too.
    let named: Vec<String> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut out = format!("{} {path} HTTP/1.1\r\n", head.method).into_bytes();
    let mut has_host = false;
    for (name, value) in &head.headers {
        let lower = name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str()) || named.contains(&lower) {
            continue;
        }
        has_host |= lower == "host";
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !has_host {
        let authority = uri
            .authority()
            .map_or_else(|| target.to_string(), |a| a.to_string());
        out.extend_from_slice(format!("Host: {authority}\r\n").as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(Wanted::Forward { target, head: out })
}

/// Writes a complete response with a JSON body and closes the exchange.
pub async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    extra: &[(&str, String)],
    body: &serde_json::Value,
) -> std::io::Result<()> {
    let body = body.to_string();
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    stream.write_all(out.as_bytes()).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn head(text: &str) -> Head {
        parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn connect_names_a_tunnel() {
        let h = head("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Bearer x\r\n\r\n");
        assert_eq!(h.header("proxy-authorization"), Some(&b"Bearer x"[..]));
        assert_eq!(
            wanted(&h).unwrap(),
            Wanted::Tunnel(Target {
                host: "example.com".into(),
                port: 443
            })
        );
        assert_eq!(
            wanted(&head("CONNECT example.com HTTP/1.1\r\n\r\n"))
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn absolute_form_is_rewritten_without_proxy_headers() {
        let h = head("POST http://[::1]:8080/a/b?q=1 HTTP/1.1\r\nHost: [::1]:8080\r\nProxy-Authorization: Bearer secret\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\nContent-Length: 3\r\n\r\n");
        let Wanted::Forward { target, head } = wanted(&h).unwrap() else {
            panic!("not forward")
        };
        assert_eq!(
            target,
            Target {
                host: "::1".into(),
                port: 8080
            }
        );
        let text = String::from_utf8(head).unwrap();
        assert_eq!(
            text,
            "POST /a/b?q=1 HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
        );
        assert!(!text.contains("secret"));
    }

    #[test]
    fn a_missing_host_header_is_added() {
        let h = head("GET http://example.com/ HTTP/1.1\r\n\r\n");
        let Wanted::Forward { target, head } = wanted(&h).unwrap() else {
            panic!("not forward")
        };
        assert_eq!(target.port, 80);
        assert!(String::from_utf8(head)
            .unwrap()
            .contains("Host: example.com\r\n"));
    }

    #[test]
    fn origin_form_and_https_are_refused() {
        assert!(wanted(&head("GET / HTTP/1.1\r\n\r\n"))
            .unwrap_err()
            .detail
            .contains("forward proxy"));
        assert!(wanted(&head("GET https://example.com/ HTTP/1.1\r\n\r\n"))
            .unwrap_err()
            .detail
            .contains("CONNECT"));
    }

    #[tokio::test]
    async fn heads_are_read_to_their_end_and_bounded() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client
            .write_all(b"CONNECT a:1 HTTP/1.1\r\n\r\nearly")
            .await
            .unwrap();
        let (bytes, len) = read_head(&mut server).await.unwrap();
        assert_eq!(&bytes[len..], b"early");
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let big = format!("GET http://a/ HTTP/1.1\r\nX: {}\r\n", "y".repeat(MAX_HEAD));
        client.write_all(big.as_bytes()).await.unwrap();
        assert_eq!(read_head(&mut server).await.unwrap_err().status, 431);
    }
}
