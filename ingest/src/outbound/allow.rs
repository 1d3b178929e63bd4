//! The operator's allow-list: addresses an account's URL may reach although they are
//! not public (a partner on the local network, the fake partners of the tests).
//! Entries are `IP`, `IP:PORT`, `CIDR`, `CIDR:PORT`, `[IPv6]:PORT` or `[CIDR]:PORT`;
//! an entry with a port allows that port only.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    net: IpNet,
    port: Option<u16>,
}

impl AllowEntry {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (host, port) = split_port(text)?;
        let net = match host.parse::<IpNet>() {
            Ok(net) => net.trunc(),
            Err(_) => host.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                format!("{text:?} is not an address, a network (CIDR) or either with :port")
            })?,
        };
        Ok(Self { net, port })
    }

    pub fn covers(&self, address: SocketAddr) -> bool {
        let ip = match address.ip() {
            // An IPv4-mapped address is its IPv4 address for the list too.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.net.contains(&ip) && self.port.is_none_or(|port| port == address.port())
    }
}

/// `[v6]:port`, `[v6]`, `v4:port`, `v4/nn:port`, or no port (a bare IPv6 address has
/// colons of its own, so it takes a port only in brackets).
fn split_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .map(Some)
            .map_err(|_| format!("{text:?}: {p:?} is not a port"))
    };
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: missing ]"))?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, port(p)?)),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("{text:?}: unexpected {after:?} after ]")),
        };
    }
    match text.matches(':').count() {
        1 => {
            let (host, p) = text.split_once(':').unwrap_or((text, ""));
            Ok((host, port(p)?))
        }
        _ => Ok((text, None)),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<AllowEntry>);

impl AllowList {
    /// Every entry parsed, or the first bad one as (index, problem).
    pub fn parse(entries: &[String]) -> Result<Self, (usize, String)> {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| AllowEntry::parse(e).map_err(|problem| (i, problem)))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn covers(&self, address: SocketAddr) -> bool {
        self.0.iter().any(|entry| entry.covers(address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn entries_with_and_without_ports() {
        let list = AllowList::parse(&[
            "127.0.0.1:8443".into(),
            "10.20.0.0/16".into(),
            "[::1]:9000".into(),
            "fd00::/8".into(),
        ])
        .unwrap();
        assert!(list.covers(at("127.0.0.1:8443")));
        assert!(!list.covers(at("127.0.0.1:8123")), "only the listed port");
        assert!(
            list.covers(at("[::ffff:127.0.0.1]:8443")),
            "mapped form too"
        );
        assert!(list.covers(at("10.20.255.1:80")));
        assert!(!list.covers(at("10.21.0.1:80")));
        assert!(list.covers(at("[::1]:9000")));
        assert!(!list.covers(at("[::1]:9001")));
        assert!(list.covers(at("[fd12::1]:443")));
    }

    #[test]
    fn bad_entries_name_their_index() {
        assert_eq!(
            AllowList::parse(&["127.0.0.1".into(), "localhost:80".into()])
                .unwrap_err()
                .0,
            1
        );
        assert!(AllowEntry::parse("127.0.0.1:http").is_err());
        assert!(AllowEntry::parse("[::1").is_err());
    }
}
