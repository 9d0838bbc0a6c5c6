//! The host of a URL as a fetching server would resolve it: IP literals in
//! every spelling the WHATWG URL parser (browsers, Node, many HTTP clients)
//! accepts, special-purpose address ranges, and names that only resolve
//! inside a network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A parsed host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    /// Lower-case name without a trailing dot.
    Name(String),
}

/// Parses a decoded, folded, lower-case host.
pub fn parse_host(h: &str) -> Result<Host, &'static str> {
    if let Some(inner) = h.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("invalid-ip-literal")?;
        // A zone id (`%eth0`) does not change which address is meant.
        let addr = inner.split('%').next().unwrap_or("");
        return addr
            .parse::<Ipv6Addr>()
            .map(|a| Host::Ip(IpAddr::V6(a)))
            .map_err(|_| "invalid-ip-literal");
    }
    let name = h.strip_suffix('.').filter(|n| !n.is_empty()).unwrap_or(h);
    if name.is_empty() {
        return Err("empty-host");
    }
    if let Some(v4) = parse_ipv4(name) {
        return v4.map(|a| Host::Ip(IpAddr::V4(a)));
    }
    let valid = name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !valid || name.split('.').any(str::is_empty) {
        return Err("invalid-host");
    }
    Ok(Host::Name(name.to_string()))
}

/// WHATWG IPv4 parsing: 1 to 4 parts, each decimal, octal (leading `0`) or
/// hex (`0x`), the last filling the remaining bytes (`127.1`, `2130706433`,
/// `0x7f.0.0.1`, `0177.0.0.01`). `None` when the host is a name.
fn parse_ipv4(name: &str) -> Option<Result<Ipv4Addr, &'static str>> {
    let parts: Vec<&str> = name.split('.').collect();
    let last = parts.last()?;
    if !is_number_like(last) {
        return None;
    }
    let bad = Some(Err("invalid-ip-literal"));
    if parts.len() > 4 {
        return bad;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        match parse_ipv4_number(p) {
            Some(n) => nums.push(n),
            None => return bad,
        }
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|n| *n > 255) {
        return bad;
    }
    let room = 8 * (5 - nums.len() as u32);
    if room < 64 && *last >= 1u64 << room {
        return bad;
    }
    let mut v: u64 = *last;
    for (i, n) in head.iter().enumerate() {
        v += n << (8 * (3 - i as u32));
    }
    Some(
        u32::try_from(v)
            .map(Ipv4Addr::from)
            .map_err(|_| "invalid-ip-literal"),
    )
}

fn is_number_like(p: &str) -> bool {
    let hex = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X"));
    match hex {
        Some(h) => h.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()),
    }
}

fn parse_ipv4_number(p: &str) -> Option<u64> {
    if p.is_empty() {
        return None;
    }
    if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        return if h.is_empty() {
            Some(0)
        } else {
            u64::from_str_radix(h, 16).ok()
        };
    }
    if p.len() > 1 && p.starts_with('0') {
        return u64::from_str_radix(&p[1..], 8).ok();
    }
    p.parse().ok()
}

/// The IPv4 address an IPv6 address carries: mapped (`::ffff:a.b.c.d`),
/// translated (`::ffff:0:a.b.c.d`), compatible (`::a.b.c.d`), NAT64
/// (`64:ff9b::/96`) and 6to4 (`2002:AABB:CCDD::/48`).
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let n = u128::from(ip);
    let low = Ipv4Addr::from((n & 0xffff_ffff) as u32);
    let high96 = n >> 32;
    match high96 {
        0xffff | 0xffff_0000 => Some(low),
        0 if n > 1 => Some(low),
        0x0064_ff9b_0000_0000_0000_0000 => Some(low),
        _ if n >> 112 == 0x2002 => Some(Ipv4Addr::from(((n >> 80) & 0xffff_ffff) as u32)),
        _ => None,
    }
}

const V4_SPECIAL: &[(Ipv4Addr, u32, &str)] = &[
    (Ipv4Addr::new(169, 254, 169, 254), 32, "cloud-metadata"),
    (Ipv4Addr::new(100, 100, 100, 200), 32, "cloud-metadata"),
    (Ipv4Addr::new(168, 63, 129, 16), 32, "cloud-metadata"),
    (Ipv4Addr::new(0, 0, 0, 0), 8, "this-network"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "shared-address-space"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "ietf-protocol"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4-relay"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
];

const V6_SPECIAL: &[(Ipv6Addr, u32, &str)] = &[
    (
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
        128,
        "cloud-metadata",
    ),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 128, "unspecified"),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1), 128, "loopback"),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "local-nat64",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "ietf-protocol",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique-local",
    ),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

/// The special-purpose range `ip` belongs to, if any (IANA registries plus
/// cloud metadata endpoints).
pub fn special_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => {
            let n = u32::from(a);
            V4_SPECIAL
                .iter()
                .find(|(net, p, _)| n >> (32 - p) == u32::from(*net) >> (32 - p))
                .map(|(_, _, name)| *name)
        }
        IpAddr::V6(a) => {
            if let Some(v4) = embedded_v4(a) {
                return special_ip(IpAddr::V4(v4));
            }
            let n = u128::from(a);
            V6_SPECIAL
                .iter()
                .find(|(net, p, _)| n >> (128 - p) == u128::from(*net) >> (128 - p))
                .map(|(_, _, name)| *name)
        }
    }
}

/// Names that resolve to this machine or only inside a private network, and
/// public wildcard-DNS services that answer with any address they are given.
const INTERNAL_EXACT: &[&str] = &[
    "localhost",
    "ip6-localhost",
    "ip6-loopback",
    "metadata",
    "instance-data",
    "kubernetes.default",
    "localtest.me",
    "lvh.me",
];
const INTERNAL_SUFFIX: &[&str] = &[
    ".localhost",
    ".localdomain",
    ".local",
    ".internal",
    ".intranet",
    ".private",
    ".corp",
    ".home",
    ".lan",
    ".arpa",
    ".svc",
    ".nip.io",
    ".sslip.io",
    ".xip.io",
    ".localtest.me",
    ".lvh.me",
];

/// Why a host name counts as internal, if it does.
pub fn internal_name(name: &str) -> Option<&'static str> {
    if INTERNAL_EXACT.contains(&name) || INTERNAL_SUFFIX.iter().any(|s| name.ends_with(s)) {
        return Some("internal-name");
    }
    // A single label is completed by the resolver's search domains.
    (!name.contains('.')).then_some("dotless-name")
}

/// Compatibility folding for hosts (a subset of NFKC, which IDNA applies):
/// circled and parenthesised digits and letters, mathematical alphanumerics,
/// superscript and subscript digits; then lower case.
pub fn fold_host(h: &str) -> String {
    let mut out = String::with_capacity(h.len());
    for c in h.chars() {
        let cp = c as u32;
        let digit = |d: u32| char::from_digit(d, 10).unwrap_or('0');
        match cp {
            0x2460..=0x2473 => out.push_str(&(cp - 0x2460 + 1).to_string()),
            0x2488..=0x249B => {
                out.push_str(&(cp - 0x2488 + 1).to_string());
                out.push('.');
            }
            0x24EA | 0x24FF => out.push('0'),
            0x24B6..=0x24CF => out.push(char::from(b'a' + (cp - 0x24B6) as u8)),
            0x24D0..=0x24E9 => out.push(char::from(b'a' + (cp - 0x24D0) as u8)),
            0x1D400..=0x1D6A3 => {
                let i = (cp - 0x1D400) % 52;
                out.push(char::from(b'a' + (i % 26) as u8));
            }
            0x1D7CE..=0x1D7FF => out.push(digit((cp - 0x1D7CE) % 10)),
            0x2070 | 0x2080 => out.push('0'),
            0x00B9 => out.push('1'),
            0x00B2 => out.push('2'),
            0x00B3 => out.push('3'),
            0x2074..=0x2079 => out.push(digit(cp - 0x2070)),
            0x2081..=0x2089 => out.push(digit(cp - 0x2080)),
            _ => out.extend(c.to_lowercase()),
        }
    }
    out
}
