//! Where a tunnel may go. A paid proxy must not be a door into the network it runs in
//! (SSRF): by default it refuses loopback, private, link-local, shared (CGNAT), multicast,
//! unspecified and broadcast addresses, and its own address; `allow` opens ranges again.
//! Names are resolved once and the checked address is the one connected to, so a name
//! that resolves differently the second time (DNS rebinding) cannot slip through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use tokio::net::TcpStream;

/// A destination as the client named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A host name or an IP address (IPv6 without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Target {
    /// Parses `host:port` (`[v6]:port` for IPv6), as in a CONNECT request.
    pub fn parse_authority(authority: &str) -> Result<Self, String> {
        let bad = || format!("`{authority}` is not host:port");
        let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
            let (host, port) = rest.split_once("]:").ok_or_else(bad)?;
            (host, port)
        } else {
            authority.rsplit_once(':').ok_or_else(bad)?
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not allowed by the policy (the words say which rule).
    Forbidden(String),
    /// The name does not resolve.
    Unresolved(String),
    /// No address answered.
    Unreachable(String),
    /// Connecting took too long.
    TimedOut,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Forbidden(why) => write!(f, "destination not allowed: {why}"),
            Refused::Unresolved(why) => write!(f, "cannot resolve the destination: {why}"),
            Refused::Unreachable(why) => write!(f, "cannot connect to the destination: {why}"),
            Refused::TimedOut => f.write_str("connecting to the destination timed out"),
        }
    }
}

/// The destination policy.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    allow: Vec<IpNet>,
    own: Vec<SocketAddr>,
}

impl Destinations {
    /// A policy opening the ranges in `allow` (`"127.0.0.0/8"`, `"::1"`, …) on top of the
    /// defaults; the error names the entry that does not parse.
    pub fn new(allow: &[String]) -> Result<Self, String> {
        let allow = allow
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{entry}` is neither an IP address nor a CIDR range"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            allow,
            own: Vec::new(),
        })
    }

    /// Adds a socket of this server (the proxy's listener, its HTTP listener): never a
    /// destination, allow list or not, so the proxy cannot be looped into itself.
    pub fn own(&mut self, addr: SocketAddr) {
        self.own.push(addr);
    }

    /// Checks one resolved address; `local` is the address the client reached us on.
    pub fn check(&self, dest: SocketAddr, local: SocketAddr) -> Result<(), Refused> {
        let ip = canonical(dest.ip());
        let is_own_socket = self.own.iter().chain(std::iter::once(&local)).any(|own| {
            // A listener on 0.0.0.0 owns its port on this host's addresses.
            let this_host =
                own.ip().is_unspecified() && (ip.is_loopback() || ip == canonical(local.ip()));
            own.port() == dest.port() && (canonical(own.ip()) == ip || this_host)
        });
        if is_own_socket {
            return Err(Refused::Forbidden("that is this proxy".into()));
        }
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        if ip == canonical(local.ip()) || self.own.iter().any(|own| canonical(own.ip()) == ip) {
            return Err(Refused::Forbidden("an address of this server".into()));
        }
        if let Some(kind) = special(ip) {
            return Err(Refused::Forbidden(format!(
                "{ip} is a {kind} address (the operator can allow it)"
            )));
        }
        Ok(())
    }

    /// Resolves `target`, checks every address and connects to the first allowed one that
    /// answers within `timeout`.
    pub async fn connect(
        &self,
        target: &Target,
        local: SocketAddr,
        timeout: Duration,
    ) -> Result<TcpStream, Refused> {
        let work = async {
            let addrs: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, target.port)],
                Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
                    .await
                    .map_err(|e| Refused::Unresolved(format!("{}: {e}", target.host)))?
                    .collect(),
            };
            let mut refused = None;
            let mut failed = None;
            for addr in addrs {
                if let Err(why) = self.check(addr, local) {
                    refused.get_or_insert(why);
                    continue;
                }
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        return Ok(stream);
                    }
                    Err(e) => failed = Some(Refused::Unreachable(format!("{addr}: {e}"))),
                }
            }
            Err(failed
                .or(refused)
                .unwrap_or_else(|| Refused::Unresolved(format!("{}: no address", target.host))))
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(Refused::TimedOut))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What kind of non-public address `ip` is, if it is one.
fn special(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        "link-local"
    } else if a == 100 && (64..128).contains(&b) {
        "shared (carrier-grade NAT)"
    } else if ip.is_unspecified() || a == 0 {
        "unspecified"
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        "multicast, broadcast or reserved"
    } else {
        return None;
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its low bits.
    let segments = ip.segments();
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b, c, d] = ip.octets();
        return special_v4(Ipv4Addr::new(a, b, c, d));
    }
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unique_local() {
        "private"
    } else if ip.is_unicast_link_local() {
        "link-local"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_multicast() {
        "multicast"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const LOCAL: &str = "203.0.113.9:1080";

    #[test]
    fn refuses_non_public_addresses_by_default() {
        let policy = Destinations::new(&[]).unwrap();
        for dest in [
            "127.0.0.1:80",
            "10.1.2.3:80",
            "172.16.0.1:80",
            "192.168.1.1:443",
            "169.254.169.254:80",
            "100.64.0.1:80",
            "0.0.0.0:80",
            "224.0.0.1:80",
            "255.255.255.255:80",
            "[::1]:80",
            "[fd00::1]:80",
            "[fe80::1]:80",
            "[::ffff:127.0.0.1]:80",
            "[::ffff:10.0.0.1]:80",
            "[64:ff9b::a00:1]:80",
            "[::]:80",
        ] {
            let refused = policy.check(addr(dest), addr(LOCAL));
            assert!(
                matches!(refused, Err(Refused::Forbidden(_))),
                "{dest} was not refused: {refused:?}"
            );
        }
        for dest in ["93.184.216.34:80", "[2606:2800:220:1::1]:443", "8.8.8.8:53"] {
            assert_eq!(policy.check(addr(dest), addr(LOCAL)), Ok(()), "{dest}");
        }
    }

    #[test]
    fn the_allow_list_opens_ranges_but_never_the_proxy_itself() {
        let mut policy =
            Destinations::new(&["127.0.0.0/8".into(), "::1".into(), "10.0.0.0/24".into()]).unwrap();
        policy.own(addr("127.0.0.1:1080"));
        assert_eq!(
            policy.check(addr("127.0.0.1:8080"), addr("127.0.0.1:1080")),
            Ok(())
        );
        assert_eq!(
            policy.check(addr("[::1]:8080"), addr("127.0.0.1:1080")),
            Ok(())
        );
        assert_eq!(
            policy.check(addr("10.0.0.7:22"), addr("127.0.0.1:1080")),
            Ok(())
        );
        assert!(policy
            .check(addr("10.0.1.7:22"), addr("127.0.0.1:1080"))
            .is_err());
        // The proxy's own socket, and its own public address when not allowed.
        assert!(policy
            .check(addr("127.0.0.1:1080"), addr("127.0.0.1:1080"))
            .is_err());
        assert!(policy
            .check(addr("203.0.113.9:80"), addr("203.0.113.9:1080"))
            .is_err());
        // A listener on 0.0.0.0 owns its port on every address.
        let mut wild = Destinations::new(&["127.0.0.0/8".into()]).unwrap();
        wild.own(addr("0.0.0.0:1080"));
        assert!(wild
            .check(addr("127.0.0.1:1080"), addr("127.0.0.1:1080"))
            .is_err());
        assert_eq!(
            wild.check(addr("93.184.216.34:1080"), addr("127.0.0.1:1080")),
            Ok(())
        );
    }

    #[test]
    fn bad_allow_entries_are_named() {
        let err = Destinations::new(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
    }

    #[test]
    fn authorities_parse() {
        assert_eq!(
            Target::parse_authority("example.com:443").unwrap(),
            Target {
                host: "example.com".into(),
                port: 443
            }
        );
        assert_eq!(
            Target::parse_authority("[::1]:8080").unwrap(),
            Target {
                host: "::1".into(),
                port: 8080
            }
        );
        assert_eq!(
            Target::parse_authority("[::1]:8080").unwrap().to_string(),
            "[::1]:8080"
        );
        for bad in [
            "example.com",
            ":80",
            "example.com:0",
            "example.com:http",
            "[::1]8080",
        ] {
            assert!(Target::parse_authority(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn connect_refuses_before_dialing() {
        let policy = Destinations::new(&[]).unwrap();
        let target = Target {
            host: "127.0.0.1".into(),
            port: 9,
        };
        let err = policy
            .connect(&target, addr(LOCAL), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Refused::Forbidden(_)), "{err:?}");
    }
}
