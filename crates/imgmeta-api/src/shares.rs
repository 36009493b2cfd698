//! Fair shares of the in-flight cap: no one key (and no one address, for requests without a
//! key) may hold more than its share of the requests a process serves at once, so a client
//! that opens many slow requests starves only itself. And the client's address, which is the
//! peer's unless the peer is a trusted proxy that says otherwise in `X-Forwarded-For`.

use axum::http::HeaderMap;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Whose share a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Holder {
    Key(i64),
    Address(IpAddr),
}

impl Holder {
    /// The holder for a client address. An IPv6 client usually has a whole /64 to itself, so
    /// the /64 is one holder (else each of its 2^64 addresses would get a share); an
    /// IPv4-mapped address is its IPv4 address.
    pub(crate) fn of_address(ip: IpAddr) -> Self {
        Self::Address(match ip {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(std::net::Ipv6Addr::from(
                    u128::from(v6) & !((1u128 << 64) - 1),
                )),
            },
        })
    }
}

/// Counts of requests in flight per holder.
#[derive(Debug, Default)]
pub(crate) struct Shares {
    held: Mutex<HashMap<Holder, usize>>,
}

/// One request's place in its holder's share, given back when dropped.
#[derive(Debug)]
pub(crate) struct ShareGuard {
    shares: Arc<Shares>,
    holder: Holder,
}

impl Shares {
    /// Takes a place for `holder` unless it already holds `limit`.
    pub(crate) fn try_take(self: &Arc<Self>, holder: Holder, limit: usize) -> Option<ShareGuard> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(holder).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ShareGuard {
            shares: self.clone(),
            holder,
        })
    }

    #[cfg(test)]
    fn holders(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

impl Drop for ShareGuard {
    fn drop(&mut self) {
        let mut held = self.shares.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.holder) {
            *count -= 1;
            // Forgotten at zero, so the map holds only current holders.
            if *count == 0 {
                held.remove(&self.holder);
            }
        }
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the last address
/// in `X-Forwarded-For` that is not itself a trusted proxy (the one the nearest untrusted hop
/// was seen from). Entries left of that one were written by parties we do not trust.
pub(crate) fn client_address(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.into_iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => continue,
            Ok(ip) => return ip,
            // A proxy we trust writes addresses; anything else is noise we cannot place.
            Err(_) => return peer,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_holder_gets_at_most_its_share_and_places_come_back() {
        let shares = Arc::new(Shares::default());
        let key = Holder::Key(7);
        let first = shares.try_take(key, 2).unwrap();
        let _second = shares.try_take(key, 2).unwrap();
        assert!(shares.try_take(key, 2).is_none());
        assert!(
            shares.try_take(Holder::Key(8), 2).is_some(),
            "others unaffected"
        );
        drop(first);
        assert!(shares.try_take(key, 2).is_some());
    }

    #[test]
    fn an_ipv6_slash_64_is_one_holder_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Holder::of_address(a), Holder::of_address(b));
        assert_ne!(Holder::of_address(a), Holder::of_address(other));
        assert_eq!(
            Holder::of_address("::ffff:10.1.2.3".parse().unwrap()),
            Holder::Address([10, 1, 2, 3].into())
        );
    }

    #[test]
    fn holders_are_forgotten_when_they_hold_nothing() {
        let shares = Arc::new(Shares::default());
        drop(shares.try_take(Holder::Address([127, 0, 0, 1].into()), 1));
        assert_eq!(shares.holders(), 0);
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = [10, 0, 0, 5].into();
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let headers = forwarded("6.6.6.6, 203.0.113.9, 10.0.0.7");
        assert_eq!(
            client_address(proxy, &headers, &trusted),
            IpAddr::from([203, 0, 113, 9])
        );
        let stranger: IpAddr = [198, 51, 100, 1].into();
        assert_eq!(client_address(stranger, &headers, &trusted), stranger);
        assert_eq!(client_address(proxy, &HeaderMap::new(), &trusted), proxy);
        assert_eq!(client_address(proxy, &headers, &[]), proxy);
        assert_eq!(
            client_address(proxy, &forwarded("garbage"), &trusted),
            proxy
        );
    }
}
