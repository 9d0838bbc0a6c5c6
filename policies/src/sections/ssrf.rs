//! `[ssrf]`: URL arguments a client makes a server fetch. Off by default.
//!
//! ```toml
//! [ssrf]
//! enabled = true
//! allowed_schemes = ["http", "https"]
//! allow_hosts = ["intranet.example.com", "*.corp.example.com"]
//! allow_cidrs = ["10.1.2.0/24"]
//! heuristic = false            # also judge URL-looking tool arguments
//! [ssrf.tools]
//! fetch = ["/url"]             # JSON pointers into the tool's arguments
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;

use toml_edit::TableLike;

use super::paths::read_schemes;
use super::pointer::read_tool_pointers;
use crate::reader::{join, Reader};

/// An allowed host name: exact, or `*.suffix` for every name below `suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    Exact(String),
    Suffix(String),
}

impl HostRule {
    fn parse(raw: &str) -> Option<Self> {
        let lower = raw.to_ascii_lowercase();
        let (suffix, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, lower),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        valid.then_some(if suffix {
            Self::Suffix(name)
        } else {
            Self::Exact(name)
        })
    }

    /// Whether the lower-case `host` (no trailing dot) is allowed by this rule.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => host == h,
            Self::Suffix(s) => host
                .strip_suffix(s.as_str())
                .is_some_and(|head| head.ends_with('.')),
        }
    }
}

/// An IP range (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix` or a bare address.
    pub fn parse(raw: &str) -> Option<Self> {
        let (a, p) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw, None),
        };
        let addr: IpAddr = a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
        };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` lies in this range (an IPv4 range never holds an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let shift = 32 - u32::from(self.prefix);
                shift == 32 || u32::from(net) >> shift == u32::from(ip) >> shift
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let shift = 128 - u32::from(self.prefix);
                shift == 128 || u128::from(net) >> shift == u128::from(ip) >> shift
            }
            _ => false,
        }
    }
}

/// The compiled `[ssrf]` section.
#[derive(Debug, Clone)]
pub struct SsrfPolicy {
    /// Off by default: nothing is judged.
    pub enabled: bool,
    /// Lower-case schemes a URL argument may use.
    pub allowed_schemes: Vec<String>,
    /// Host names allowed even though they look internal.
    pub allow_hosts: Vec<HostRule>,
    /// Address ranges allowed even though they are private or special.
    pub allow_cidrs: Vec<Cidr>,
    /// Tool name -> JSON pointers of its URL arguments.
    pub tools: BTreeMap<String, Vec<String>>,
    /// Judge every tool argument string that looks like a URL.
    pub heuristic: bool,
    /// `shadow`: log and count what would be refused, refuse nothing.
    pub mode: crate::RuleMode,
}

impl Default for SsrfPolicy {
    fn default() -> Self {
        Self {
            enabled: false,
            allowed_schemes: vec!["http".into(), "https".into()],
            allow_hosts: Vec::new(),
            allow_cidrs: Vec::new(),
            tools: BTreeMap::new(),
            heuristic: false,
            mode: crate::RuleMode::Enforce,
        }
    }
}

/// Reads `[ssrf]` (defaults when absent).
pub(crate) fn read_ssrf(r: &mut Reader, t: Option<&dyn TableLike>) -> SsrfPolicy {
    const P: &str = "ssrf";
    let mut out = SsrfPolicy::default();
    let Some(t) = t else {
        return out;
    };
    r.deny_unknown(t, P, P);
    out.enabled = r.boolean(t, "enabled", P, false);
    out.heuristic = r.boolean(t, "heuristic", P, false);
    out.mode = r.choice(t, "mode", P, "enforce", &crate::sections::access::MODES);
    if let Some(schemes) = read_schemes(r, t, P) {
        out.allowed_schemes = schemes;
    }
    if let Some(list) = r.strings(t, "allow_hosts", P) {
        out.allow_hosts = list
            .into_iter()
            .filter_map(|(s, span)| {
                HostRule::parse(&s).or_else(|| {
                    r.error(
                        span,
                        &join(P, "allow_hosts"),
                        format!("`{s}` is not a host name or `*.domain`"),
                    );
                    None
                })
            })
            .collect();
    }
    if let Some(list) = r.strings(t, "allow_cidrs", P) {
        out.allow_cidrs = list
            .into_iter()
            .filter_map(|(s, span)| {
                Cidr::parse(&s).or_else(|| {
                    r.error(
                        span,
                        &join(P, "allow_cidrs"),
                        format!("`{s}` is not an IP address or CIDR range"),
                    );
                    None
                })
            })
            .collect();
    }
    out.tools = read_tool_pointers(r, t, P);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.1.2.0/24").unwrap();
        assert!(c.contains("10.1.2.200".parse().unwrap()));
        assert!(!c.contains("10.1.3.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6 = Cidr::parse("fd00:ec2::/32").unwrap();
        assert!(v6.contains("fd00:ec2::254".parse().unwrap()));
        assert_eq!(Cidr::parse("127.0.0.1").unwrap().prefix, 32);
        for bad in ["10.0.0.0/33", "10.0.0.0/", "x/8", "::/129", "1.2.3.4/+8"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn host_rules() {
        let s = HostRule::parse("*.Corp.example").unwrap();
        assert!(s.matches("a.corp.example"));
        assert!(!s.matches("corp.example"));
        assert!(!s.matches("evilcorp.example"));
        assert!(HostRule::parse("intranet").unwrap().matches("intranet"));
        assert!(HostRule::parse("a..b").is_none());
        assert!(HostRule::parse("a/b").is_none());
    }
}
