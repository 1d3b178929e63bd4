//! Which addresses an account's URL may reach. Pure: an address in, a verdict out.
//!
//! Refused: everything that is not the public internet. Loopback, the private
//! ranges, link-local (where every cloud's metadata service lives), unique-local,
//! carrier-grade NAT (Alibaba's metadata address is in it), multicast, broadcast,
//! unspecified, reserved and documentation ranges. IPv6 forms that carry an IPv4
//! address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`,
//! 6to4 `2002::/16`) are judged by the IPv4 address inside, so `::ffff:127.0.0.1`
//! is loopback.
//!
//! Spellings of a host (`2130706433`, `0177.0.0.1`, `0x7f.1`) are not handled here:
//! the URL parser turns every one of them into the address itself before it gets
//! here (see the property test in `guard.rs`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not the public internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Loopback,
    Private,
    LinkLocal,
    UniqueLocal,
    SharedNat,
    Multicast,
    Broadcast,
    Unspecified,
    Reserved,
    Documentation,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::Private => "private network",
            Self::LinkLocal => "link-local (cloud metadata lives here)",
            Self::UniqueLocal => "unique-local (private IPv6)",
            Self::SharedNat => "shared address space (carrier-grade NAT)",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Unspecified => "unspecified",
            Self::Reserved => "reserved",
            Self::Documentation => "documentation range",
        })
    }
}

/// `None` for a public address; otherwise why it is refused.
pub fn classify(address: IpAddr) -> Option<Refused> {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(address: Ipv4Addr) -> Option<Refused> {
    let [a, b, c, _] = address.octets();
    Some(match (a, b, c) {
        (0, _, _) => Refused::Unspecified,
        (127, _, _) => Refused::Loopback,
        (10, _, _) => Refused::Private,
        (172, 16..=31, _) => Refused::Private,
        (192, 168, _) => Refused::Private,
        (169, 254, _) => Refused::LinkLocal,
        (100, 64..=127, _) => Refused::SharedNat,
        // IETF protocol assignments (192.0.0.0/24), benchmarking (198.18.0.0/15).
        (192, 0, 0) | (198, 18..=19, _) => Refused::Reserved,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Refused::Documentation,
        _ if address.is_broadcast() => Refused::Broadcast,
        (224..=239, _, _) => Refused::Multicast,
        (240..=255, _, _) => Refused::Reserved,
        _ => return None,
    })
}

fn classify_v6(address: Ipv6Addr) -> Option<Refused> {
    if let Some(v4) = embedded_v4(address) {
        return classify_v4(v4);
    }
    let segments = address.segments();
    Some(match segments[0] {
        _ if address.is_unspecified() => Refused::Unspecified,
        _ if address.is_loopback() => Refused::Loopback,
        0xfe80..=0xfebf => Refused::LinkLocal,
        // Site-local, long deprecated, still routed by some stacks.
        0xfec0..=0xfeff => Refused::Private,
        0xfc00..=0xfdff => Refused::UniqueLocal,
        0xff00..=0xffff => Refused::Multicast,
        0x2001 if segments[1] == 0x0db8 => Refused::Documentation,
        0x0100 if segments[1..4] == [0, 0, 0] => Refused::Reserved, // discard-only 100::/64
        // Outside the global unicast block 2000::/3 nothing is routable on the internet.
        first if !(0x2000..=0x3fff).contains(&first) => Refused::Reserved,
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address stands for, in the forms that carry one.
fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = address.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible; not :: and ::1).
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail()),
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(tail()),
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail()),
        // 6to4: 2002:AABB:CCDD::/48 is IPv4 AA.BB.CC.DD.
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn verdict(text: &str) -> Option<Refused> {
        classify(text.parse().expect("an address"))
    }

    #[test]
    fn ipv4_ranges() {
        for (address, expected) in [
            ("127.0.0.1", Some(Refused::Loopback)),
            ("127.255.255.254", Some(Refused::Loopback)),
            ("10.1.2.3", Some(Refused::Private)),
            ("172.16.0.1", Some(Refused::Private)),
            ("172.31.255.255", Some(Refused::Private)),
            ("172.32.0.1", None),
            ("192.168.1.1", Some(Refused::Private)),
            ("169.254.169.254", Some(Refused::LinkLocal)),
            ("100.100.100.200", Some(Refused::SharedNat)),
            ("0.0.0.0", Some(Refused::Unspecified)),
            ("255.255.255.255", Some(Refused::Broadcast)),
            ("224.0.0.1", Some(Refused::Multicast)),
            ("240.0.0.1", Some(Refused::Reserved)),
            ("192.0.2.10", Some(Refused::Documentation)),
            ("198.18.0.1", Some(Refused::Reserved)),
            ("8.8.8.8", None),
            ("93.184.216.34", None),
            ("100.63.255.255", None),
        ] {
            assert_eq!(verdict(address), expected, "{address}");
        }
    }

    #[test]
    fn ipv6_ranges_and_embedded_ipv4() {
        for (address, expected) in [
            ("::1", Some(Refused::Loopback)),
            ("::", Some(Refused::Unspecified)),
            ("fe80::1", Some(Refused::LinkLocal)),
            ("fd00:ec2::254", Some(Refused::UniqueLocal)),
            ("fc00::1", Some(Refused::UniqueLocal)),
            ("ff02::1", Some(Refused::Multicast)),
            ("2001:db8::1", Some(Refused::Documentation)),
            ("::ffff:127.0.0.1", Some(Refused::Loopback)),
            ("::ffff:7f00:1", Some(Refused::Loopback)),
            ("::ffff:169.254.169.254", Some(Refused::LinkLocal)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(Refused::Loopback)),
            ("64:ff9b::10.0.0.1", Some(Refused::Private)),
            ("2002:7f00:1::", Some(Refused::Loopback)),
            ("2002:0808:0808::1", None),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001:81b::200e", None),
        ] {
            assert_eq!(verdict(address), expected, "{address}");
        }
    }

    proptest! {
        /// An IPv4 address and its IPv6-mapped form always get the same verdict.
        #[test]
        fn mapped_ipv6_is_judged_as_its_ipv4(bits in any::<u32>()) {
            let v4 = Ipv4Addr::from(bits);
            prop_assert_eq!(classify(IpAddr::V4(v4)), classify(IpAddr::V6(v4.to_ipv6_mapped())));
            prop_assert_eq!(classify(IpAddr::V4(v4)), classify(IpAddr::V6(
                format!("64:ff9b::{v4}").parse::<Ipv6Addr>().unwrap())));
        }

        /// Every address in a refused IPv4 block is refused, whatever its low bits.
        #[test]
        fn whole_blocks_are_refused(low in any::<u32>()) {
            for (base, prefix) in [(0x7f00_0000_u32, 8), (0x0a00_0000, 8), (0xac10_0000, 12),
                                   (0xc0a8_0000, 16), (0xa9fe_0000, 16), (0x6440_0000, 10)] {
                let mask = u32::MAX >> prefix;
                let address = Ipv4Addr::from(base | (low & mask));
                prop_assert!(classify(IpAddr::V4(address)).is_some(), "{}", address);
            }
        }

        /// Public unicast IPv4 stays reachable (no over-blocking of ordinary hosts).
        #[test]
        fn ordinary_public_ipv4_is_allowed(a in 1_u8..=223, b: u8, c: u8, d: u8) {
            let address = Ipv4Addr::new(a, b, c, d);
            let special = matches!(a, 10 | 127)
                || (a == 172 && (16..=31).contains(&b))
                || (a == 192 && b == 168)
                || (a == 169 && b == 254)
                || (a == 100 && (64..=127).contains(&b))
                || (a == 192 && b == 0 && (c == 0 || c == 2))
                || (a == 198 && (b == 18 || b == 19 || (b == 51 && c == 100)))
                || (a == 203 && b == 0 && c == 113);
            prop_assert_eq!(classify(IpAddr::V4(address)).is_none(), !special, "{}", address);
        }
    }
}
