//! SOCKS5 (RFC 1928) with username/password authentication (RFC 1929): the password is the
//! pass (or, when empty, the user name). Only `CONNECT` is served.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::access::credential_of;
use crate::destination::Target;

/// The first byte of every SOCKS5 greeting.
pub const VERSION: u8 = 5;
const USER_PASSWORD: u8 = 2;
const NO_ACCEPTABLE: u8 = 0xff;
const AUTH_VERSION: u8 = 1;
const CONNECT: u8 = 1;

/// SOCKS5 reply codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    /// Succeeded.
    Succeeded = 0,
    /// General failure.
    GeneralFailure = 1,
    /// Connection not allowed by ruleset.
    NotAllowed = 2,
    /// Host unreachable.
    HostUnreachable = 4,
    /// Connection refused.
    ConnectionRefused = 5,
    /// TTL expired (used for a connect timeout).
    TtlExpired = 6,
    /// Command not supported.
    CommandNotSupported = 7,
    /// Address type not supported.
    AddressNotSupported = 8,
}

/// A handshake that went wrong; the client has been told when the protocol allows it.
#[derive(Debug)]
pub enum HandshakeError {
    /// The client broke the protocol (the words say how).
    Protocol(String),
    /// The connection failed.
    Io(std::io::Error),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Protocol(why) => write!(f, "SOCKS5: {why}"),
            HandshakeError::Io(e) => write!(f, "SOCKS5: {e}"),
        }
    }
}

impl From<std::io::Error> for HandshakeError {
    fn from(e: std::io::Error) -> Self {
        HandshakeError::Io(e)
    }
}

fn protocol(why: &str) -> HandshakeError {
    HandshakeError::Protocol(why.to_string())
}

/// Reads the greeting and the username/password sub-negotiation; the credential. The
/// caller answers with [`auth_result`].
pub async fn greet<S>(stream: &mut S) -> Result<String, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    if head[0] != VERSION {
        return Err(protocol("not SOCKS version 5"));
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    stream.read_exact(&mut methods).await?;
    if !methods.contains(&USER_PASSWORD) {
        stream.write_all(&[VERSION, NO_ACCEPTABLE]).await?;
        return Err(protocol(
            "the client does not offer username/password authentication (the pass is the password)",
        ));
    }
    stream.write_all(&[VERSION, USER_PASSWORD]).await?;
    let mut version = [0u8; 1];
    stream.read_exact(&mut version).await?;
    if version[0] != AUTH_VERSION {
        return Err(protocol("bad username/password negotiation version"));
    }
    let user = read_short(stream).await?;
    let password = read_short(stream).await?;
    let user = String::from_utf8_lossy(&user);
    let password = String::from_utf8_lossy(&password);
    match credential_of(&user, &password) {
        Some(credential) => Ok(credential),
        None => {
            auth_result(stream, false).await?;
            Err(protocol("empty username and password"))
        }
    }
}

async fn read_short<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 1];
    stream.read_exact(&mut len).await?;
    let mut bytes = vec![0u8; usize::from(len[0])];
    stream.read_exact(&mut bytes).await?;
    Ok(bytes)
}

/// Answers the username/password sub-negotiation.
pub async fn auth_result<S: AsyncWrite + Unpin>(stream: &mut S, ok: bool) -> std::io::Result<()> {
    stream.write_all(&[AUTH_VERSION, u8::from(!ok)]).await
}

/// Reads the request; the destination of a `CONNECT`. Other commands and unknown address
/// types are answered here.
pub async fn request<S>(stream: &mut S) -> Result<Target, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    if head[0] != VERSION {
        return Err(protocol("request is not SOCKS version 5"));
    }
    let host = match head[3] {
        1 => {
            let mut ip = [0u8; 4];
            stream.read_exact(&mut ip).await?;
            Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let name = read_short(stream).await?;
            String::from_utf8(name).map_err(|_| protocol("the host name is not UTF-8"))?
        }
        4 => {
            let mut ip = [0u8; 16];
            stream.read_exact(&mut ip).await?;
            Ipv6Addr::from(ip).to_string()
        }
        _ => {
            reply(stream, Reply::AddressNotSupported, None).await?;
            return Err(protocol("unknown address type"));
        }
    };
    let mut port = [0u8; 2];
    stream.read_exact(&mut port).await?;
    if head[1] != CONNECT {
        reply(stream, Reply::CommandNotSupported, None).await?;
        return Err(protocol("only CONNECT is served (no BIND, no UDP)"));
    }
    let port = u16::from_be_bytes(port);
    if host.is_empty() || port == 0 {
        reply(stream, Reply::GeneralFailure, None).await?;
        return Err(protocol("empty host or port 0"));
    }
    Ok(Target { host, port })
}

/// Answers the request; `bound` is the proxy's side of the upstream connection.
pub async fn reply<S: AsyncWrite + Unpin>(
    stream: &mut S,
    code: Reply,
    bound: Option<SocketAddr>,
) -> std::io::Result<()> {
    let bound = bound.unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
    let mut out = vec![VERSION, code as u8, 0];
    match bound.ip() {
        IpAddr::V4(ip) => {
            out.push(1);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&bound.port().to_be_bytes());
    stream.write_all(&out).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_full_handshake_yields_the_password_and_the_target() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let talk = tokio::spawn(async move {
            let mut input = vec![5, 2, 0, 2, 1, 4];
            input.extend_from_slice(b"user");
            input.push(7);
            input.extend_from_slice(b"the.pas");
            client.write_all(&input).await.unwrap();
            let mut answer = [0u8; 2];
            client.read_exact(&mut answer).await.unwrap();
            assert_eq!(answer, [5, 2]);
            let mut auth = [0u8; 2];
            client.read_exact(&mut auth).await.unwrap();
            assert_eq!(auth, [1, 0]);
            let mut request = vec![5, 1, 0, 3, 11];
            request.extend_from_slice(b"example.com");
            request.extend_from_slice(&443u16.to_be_bytes());
            client.write_all(&request).await.unwrap();
            let mut reply = [0u8; 10];
            client.read_exact(&mut reply).await.unwrap();
            reply
        });
        let credential = greet(&mut server).await.unwrap();
        assert_eq!(credential, "the.pas");
        auth_result(&mut server, true).await.unwrap();
        let target = request(&mut server).await.unwrap();
        assert_eq!(
            target,
            Target {
                host: "example.com".into(),
                port: 443
            }
        );
        reply(
            &mut server,
            Reply::Succeeded,
            Some("10.0.0.1:5000".parse().unwrap()),
        )
        .await
        .unwrap();
        assert_eq!(talk.await.unwrap(), [5, 0, 0, 1, 10, 0, 0, 1, 0x13, 0x88]);
    }

    #[tokio::test]
    async fn no_password_method_is_refused() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(&[5, 1, 0]).await.unwrap();
        assert!(greet(&mut server).await.is_err());
        let mut answer = [0u8; 2];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, [5, 0xff]);
    }

    #[tokio::test]
    async fn bind_and_udp_are_not_served() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client
            .write_all(&[5, 2, 0, 1, 127, 0, 0, 1, 0, 80])
            .await
            .unwrap();
        assert!(request(&mut server).await.is_err());
        let mut answer = [0u8; 10];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer[1], Reply::CommandNotSupported as u8);
    }
}
