//! Where a webhook may point. Only `http` and `https` URLs, and, unless the operator allows it
//! (`--webhook-allow-private`), never an address inside the network the service runs in:
//! loopback, private, link-local and the like. Otherwise a company could have the service call
//! its own database or the cloud's metadata endpoint for it (server-side request forgery).
//!
//! The check runs when a webhook is registered and again at every connection, through
//! [`GuardedResolver`]: DNS answers change, and the addresses checked at delivery time are the
//! very ones the connector then connects to.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::dns::Name;

/// Longest URL a webhook may have.
pub const URL_LEN_MAX: usize = 2048;
/// Longest a registration waits for DNS.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a URL cannot be a webhook's, in the words of the `/api` family.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefusal {
    #[error("debe ser una URL absoluta http:// o https://")]
    NotHttp,
    #[error("no puede llevar usuario ni contraseña")]
    Credentials,
    #[error("no puede superar {URL_LEN_MAX} caracteres")]
    TooLong,
    #[error("no se pudo resolver el host {0}")]
    Unresolvable(String),
    #[error(
        "{0} es una dirección de loopback, privada o de enlace local (solo se permite con \
         --webhook-allow-private)"
    )]
    Private(IpAddr),
}

/// An absolute `http`/`https` URL with a host and no credentials, as the WHATWG parser
/// normalises it (the host checked is the host the request goes to: `http://0x7f.1/` is
/// `127.0.0.1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, TargetRefusal> {
        if raw.chars().count() > URL_LEN_MAX {
            return Err(TargetRefusal::TooLong);
        }
        let url = url::Url::parse(raw.trim()).map_err(|_| TargetRefusal::NotHttp)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(TargetRefusal::NotHttp);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetRefusal::Credentials);
        }
        if url.as_str().len() > URL_LEN_MAX {
            return Err(TargetRefusal::TooLong);
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host's address when the URL names one directly (no DNS involved).
    pub fn literal_address(&self) -> Option<IpAddr> {
        match self.0.host()? {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        }
    }

    /// Every address the URL's host names now, each allowed by the policy.
    pub async fn resolve(&self, allow_private: bool) -> Result<Vec<SocketAddr>, TargetRefusal> {
        let port = self.0.port_or_known_default().unwrap_or(443);
        if let Some(ip) = self.literal_address() {
            check(ip, allow_private)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let host = self.0.host_str().unwrap_or_default();
        let addresses = tokio::time::timeout(RESOLVE_TIMEOUT, lookup(host, allow_private))
            .await
            .map_err(|_| TargetRefusal::Unresolvable(host.to_string()))??;
        Ok(addresses
            .into_iter()
            .map(|a| SocketAddr::new(a.ip(), port))
            .collect())
    }
}

/// `Ok` when `ip` may be called.
pub fn check(ip: IpAddr, allow_private: bool) -> Result<(), TargetRefusal> {
    if allow_private || is_public(ip) {
        Ok(())
    } else {
        Err(TargetRefusal::Private(ip))
    }
}

/// Every address of `host`, refused whole if any one of them may not be called: a name that
/// answers a public and a private address could be connected to either.
async fn lookup(host: &str, allow_private: bool) -> Result<Vec<SocketAddr>, TargetRefusal> {
    let unresolvable = || TargetRefusal::Unresolvable(host.to_string());
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|_| unresolvable())?
        .collect();
    if addresses.is_empty() {
        return Err(unresolvable());
    }
    for address in &addresses {
        check(address.ip(), allow_private)?;
    }
    Ok(addresses)
}

/// Whether `ip` lies outside every range that reaches the service's own host or network:
/// IANA's special-purpose registries, less the documentation ranges (which route nowhere).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address that is reached.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    if segments[0] == 0x2002 {
        let [a, b] = segments[1].to_be_bytes();
        let [c, d] = segments[2].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || segments[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0) // site-local (deprecated)
}

/// The connector's resolver for webhook deliveries: resolves as the system does, then refuses
/// the name unless every address passes [`check`].
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addresses = lookup(name.as_str(), allow_private)
                .await
                .map_err(|refusal| {
                    std::io::Error::new(std::io::ErrorKind::PermissionDenied, refusal)
                })?;
            Ok(addresses.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls_without_credentials() {
        assert_eq!(
            WebhookUrl::parse("https://hooks.example.com/x?y=1")
                .unwrap()
                .as_str(),
            "https://hooks.example.com/x?y=1"
        );
        assert_eq!(
            WebhookUrl::parse("http://EXAMPLE.com").unwrap().as_str(),
            "http://example.com/"
        );
        for refused in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "/relative",
            "example.com",
            "https://",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(
                WebhookUrl::parse(refused),
                Err(TargetRefusal::NotHttp),
                "{refused}"
            );
        }
        assert_eq!(
            WebhookUrl::parse("https://user:pw@example.com/"),
            Err(TargetRefusal::Credentials)
        );
        let long = format!("https://example.com/{}", "a".repeat(URL_LEN_MAX));
        assert_eq!(WebhookUrl::parse(&long), Err(TargetRefusal::TooLong));
    }

    #[test]
    fn addresses_inside_the_network_are_not_public() {
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
        ] {
            assert!(!is_public(inside.parse().unwrap()), "{inside}");
        }
        for outside in [
            "8.8.8.8",
            "203.0.113.10",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "172.32.0.1",
        ] {
            assert!(is_public(outside.parse().unwrap()), "{outside}");
        }
    }

    #[tokio::test]
    async fn literal_and_obfuscated_private_hosts_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:8080/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://2130706433/",
        ] {
            let url = WebhookUrl::parse(url).unwrap();
            assert!(
                matches!(url.resolve(false).await, Err(TargetRefusal::Private(_))),
                "{url:?}"
            );
            assert!(url.resolve(true).await.is_ok());
        }
        let localhost = WebhookUrl::parse("http://localhost:9/").unwrap();
        assert!(matches!(
            localhost.resolve(false).await,
            Err(TargetRefusal::Private(_))
        ));
    }
}
