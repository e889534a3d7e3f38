//! Who a request comes from, for the budgets that count per client: the
//! socket's peer, unless that peer is a proxy configured as trusted, whose
//! `X-Forwarded-For` then names the client.
//!
//! Only configured proxies are believed (none by default), and of their
//! header only what they vouch for: read from the right, hops that are
//! themselves trusted proxies are skipped and the first other address is
//! the client (anything left of it is whatever the client chose to write).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

/// The client's address, put in a request's extensions by [`resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The peers whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpAddr>);

impl TrustedProxies {
    pub fn new(proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        TrustedProxies(proxies.into_iter().map(canonical).collect())
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.contains(&canonical(address))
    }

    /// The client behind a connection from `peer` carrying `headers`.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|value| value.to_str().unwrap_or_default().split(','))
            .map(|hop| hop.trim().parse::<IpAddr>())
            .collect::<Vec<_>>();
        while let Some(hop) = hops.pop() {
            match hop {
                Ok(address) if self.trusts(address) => continue,
                Ok(address) => return canonical(address),
                // A hop that is no address: nothing further left can be believed.
                Err(_) => break,
            }
        }
        peer
    }
}

/// IPv4 addresses seen through an IPv6 socket (`::ffff:a.b.c.d`) as IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(address),
        v4 => v4,
    }
}

/// Middleware: puts the request's [`ClientAddress`] in its extensions. The
/// router must be served with `into_make_service_with_connect_info::<SocketAddr>()`;
/// without a peer address nothing is added.
pub async fn resolve(State(trusted): State<Arc<TrustedProxies>>, mut request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = trusted.client_address(peer.ip(), request.headers());
        request.extensions_mut().insert(ClientAddress(client));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    const GATEWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 10));

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = TrustedProxies::default();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(trusted.client_address(peer, &forwarded("203.0.113.7")), peer);
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let trusted = TrustedProxies::new([GATEWAY]);
        assert_eq!(trusted.client_address(GATEWAY, &forwarded("203.0.113.7")), "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_eq!(trusted.client_address(GATEWAY, &HeaderMap::new()), GATEWAY);
    }

    #[test]
    fn only_the_hop_a_trusted_proxy_added_is_believed() {
        let trusted = TrustedProxies::new([GATEWAY, "10.0.0.11".parse().unwrap()]);
        // The client wrote "1.1.1.1" itself; the proxies appended what they saw.
        let headers = forwarded("1.1.1.1, 203.0.113.7, 10.0.0.11");
        assert_eq!(trusted.client_address(GATEWAY, &headers), "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_eq!(trusted.client_address(GATEWAY, &forwarded("garbage, 10.0.0.11")), GATEWAY);
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let trusted = TrustedProxies::new(["127.0.0.1".parse().unwrap()]);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(trusted.client_address(mapped, &forwarded("198.51.100.2")), "198.51.100.2".parse::<IpAddr>().unwrap());
    }
}
