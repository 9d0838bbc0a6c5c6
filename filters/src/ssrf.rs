//! SSRF guard: URLs a client makes an MCP server fetch. Policy-driven and
//! off by default (`[ssrf] enabled = true`).
//!
//! Judged: `tools/call` arguments that `[ssrf.tools]` marks by JSON pointer
//! (a value without a scheme is read as `http://VALUE`, as many fetchers
//! do); with `[ssrf] heuristic = true`, every string argument that looks like
//! a URL; and the `params.uri` of `resources/read`/`subscribe`/`unsubscribe`
//! when it uses a network scheme.
//!
//! A URL passes when its scheme is allowed and its host is neither an IP in
//! a special-purpose range (loopback, private, link-local, CGNAT, cloud
//! metadata such as 169.254.169.254 and fd00:ec2::254, multicast, reserved,
//! documentation, IPv4 inside IPv6) nor an internal name (`localhost`,
//! `*.internal`, `*.local`, dotless names, wildcard-DNS services), unless
//! `allow_cidrs` / `allow_hosts` allow it. Hosts are read the way the WHATWG
//! URL parser reads them: percent-decoded, full-width and other compatibility
//! forms folded, decimal / octal / hex / short IPv4 spellings resolved,
//! backslashes and any number of slashes after a special scheme accepted.
//! Credentials in a URL are refused outright (`http://a@b` is read
//! differently by different parsers). Names are not resolved: a name that
//! resolves to a private address must be caught by the fetcher itself.

mod host;

use std::net::IpAddr;

use policies::SsrfPolicy;
use serde_json::Value;

use crate::exchange::Exchange;
use crate::message::Message;
use crate::path_canon::{decode_fully, fold, Finding, MAX_INSPECTED_BYTES};
use crate::rejection::{Decision, Location, Rejection, RejectionKind as K};
use crate::tool_args::{
    each_string, pointed_strings, pointer_at, shown, tool_call, AT_ARGUMENTS, MAX_HEURISTIC_BYTES,
};
use crate::Filter;

pub use host::{embedded_v4, fold_host, parse_host, special_ip, Host};

/// Schemes whose URLs have a host (WHATWG "special" schemes).
const NETWORK_SCHEMES: &[&str] = &["http", "https", "ws", "wss", "ftp"];

pub struct SsrfFilter;

impl Filter for SsrfFilter {
    fn mode(&self, policy: &policies::Policy) -> policies::RuleMode {
        policy.ssrf.mode
    }

    fn name(&self) -> &'static str {
        "ssrf"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        let policy = &ex.policy.ssrf;
        if !policy.enabled {
            return Decision::Continue;
        }
        for (i, m) in ex.messages.iter().enumerate() {
            if let Err(r) = check_message(policy, m) {
                return if ex.batch { r.in_item(i) } else { r }.into();
            }
        }
        Decision::Continue
    }
}

fn check_message(policy: &SsrfPolicy, m: &Message) -> Result<(), Rejection> {
    // `at` is ours and goes to the client; `logged` and `s` to the log only.
    let reject = |rule: &'static str, at: Location, logged: &str, s: &str| {
        Rejection::new(
            K::UrlNotAllowed,
            format!("{rule} in {} {logged}: {}", m.method(), shown(s)),
        )
        .with_rule(rule)
        .with_at(at)
    };
    if matches!(
        m.method(),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe"
    ) {
        let uri = m
            .params()
            .and_then(|p| p.get("uri"))
            .and_then(Value::as_str);
        if let Some(uri) = uri {
            if let Ok(t) = parse_url(uri, false) {
                if NETWORK_SCHEMES.contains(&t.scheme.as_str()) {
                    judge_host(policy, &t)
                        .map_err(|rule| reject(rule, "params.uri".into(), "params.uri", uri))?;
                }
            }
        }
        return Ok(());
    }
    let Some((tool, args)) = tool_call(m) else {
        return Ok(());
    };
    for pointer in policy.tools.get(tool).into_iter().flatten() {
        for s in pointed_strings(args, pointer) {
            judge(policy, s, true).map_err(|rule| {
                let logged = format!("arguments{pointer} of {tool:?}");
                reject(rule, pointer_at(pointer).into(), &logged, s)
            })?;
        }
    }
    if policy.heuristic {
        // The client's own argument names are logged, not echoed.
        each_string(args, &mut |at, s| {
            if looks_like_url(s) {
                judge(policy, s, false).map_err(|rule| {
                    let logged = format!("arguments{at} of {tool:?} (heuristic)");
                    reject(rule, AT_ARGUMENTS.into(), &logged, s)
                })
            } else {
                Ok(())
            }
        })?;
    }
    Ok(())
}

/// A URL reduced to what the guard judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Lower-case scheme.
    pub scheme: String,
    /// Decoded, folded, lower-case host; `None` for URLs without authority.
    pub host: Option<String>,
}

/// Judges one URL string; the error is the rule that fired.
fn judge(policy: &SsrfPolicy, s: &str, bare_is_http: bool) -> Result<(), &'static str> {
    let t = parse_url(s, bare_is_http)?;
    if !policy.allowed_schemes.contains(&t.scheme) {
        return Err("scheme-not-allowed");
    }
    judge_host(policy, &t)
}

fn judge_host(policy: &SsrfPolicy, t: &Target) -> Result<(), &'static str> {
    let Some(h) = &t.host else {
        return if t.scheme == "file" {
            Ok(()) // a local file: the path guard's business
        } else {
            Err("no-host")
        };
    };
    match parse_host(h)? {
        Host::Ip(ip) => {
            let v4 = match ip {
                IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
                IpAddr::V4(_) => None,
            };
            let allowed = policy
                .allow_cidrs
                .iter()
                .any(|c| c.contains(ip) || v4.is_some_and(|v| c.contains(v)));
            match special_ip(ip) {
                Some(range) if !allowed => Err(range),
                _ => Ok(()),
            }
        }
        Host::Name(name) => {
            if policy.allow_hosts.iter().any(|r| r.matches(&name)) {
                return Ok(());
            }
            match host::internal_name(&name) {
                Some(why) => Err(why),
                None => Ok(()),
            }
        }
    }
}

/// Splits a URL the way a lenient (WHATWG) parser would. With
/// `bare_is_http`, a string without a scheme is read as `http://` + it.
pub fn parse_url(raw: &str, bare_is_http: bool) -> Result<Target, &'static str> {
    if raw.len() > MAX_INSPECTED_BYTES {
        return Err("too-long");
    }
    if raw.chars().any(char::is_control) {
        return Err("control-character");
    }
    if raw.starts_with(' ') || raw.ends_with(' ') {
        return Err("surrounding-whitespace");
    }
    let f = fold(raw);
    let (scheme, rest) = match scheme_of(&f) {
        Some((s, rest)) => (s, rest),
        None if f.starts_with("//") || f.starts_with("\\\\") => return Err("scheme-relative-url"),
        None if bare_is_http => ("http".to_string(), f.as_str()),
        None => return Err("not-a-url"),
    };
    // WHATWG: after a network scheme any run of `/` and `\` starts the
    // authority (even none: `http:host`); `file:` and other schemes need `//`.
    let special = NETWORK_SCHEMES.contains(&scheme.as_str());
    let rest = if special {
        rest.trim_start_matches(['/', '\\'])
    } else if let Some(r) = rest.strip_prefix("//") {
        r
    } else {
        return Ok(Target { scheme, host: None });
    };
    let end = rest
        .find(|c| matches!(c, '/' | '?' | '#') || ((special || scheme == "file") && c == '\\'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('@') {
        return Err("credentials-in-url");
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.find(']').ok_or("invalid-ip-literal")?;
        port_ok(&v6[close + 1..])?;
        &authority[..close + 2]
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => {
                port_ok(&format!(":{p}"))?;
                h
            }
            None => authority,
        }
    };
    if host.is_empty() {
        return if scheme == "file" {
            Ok(Target { scheme, host: None })
        } else {
            Err("empty-host")
        };
    }
    let decoded = decode_fully(host).map_err(Finding::rule)?;
    Ok(Target {
        scheme,
        host: Some(fold_host(&decoded)),
    })
}

/// `""` or `:digits` up to 65535.
fn port_ok(p: &str) -> Result<(), &'static str> {
    match p.strip_prefix(':') {
        None if p.is_empty() => Ok(()),
        Some("") => Ok(()),
        Some(d) if d.bytes().all(|b| b.is_ascii_digit()) && d.parse::<u16>().is_ok() => Ok(()),
        _ => Err("invalid-port"),
    }
}

/// `(lower-case scheme, rest after the colon)`, for schemes of two letters or more.
fn scheme_of(f: &str) -> Option<(String, &str)> {
    let (name, rest) = f.split_once(':')?;
    let ok = name.len() >= 2
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    ok.then(|| (name.to_ascii_lowercase(), rest))
}

/// Heuristic: `scheme://...` (or `http:host`) other than `file:`, or `//host`.
fn looks_like_url(s: &str) -> bool {
    if s.len() > MAX_HEURISTIC_BYTES || s.contains('\n') {
        return false;
    }
    let f = fold(s);
    let f = f.trim();
    if f.starts_with("//") || f.starts_with("\\\\") {
        return !f[2..].starts_with(['/', '\\']) && !f[2..].is_empty();
    }
    match scheme_of(f) {
        Some((scheme, rest)) if scheme != "file" => {
            rest.starts_with(['/', '\\'])
                || (NETWORK_SCHEMES.contains(&scheme.as_str())
                    && rest.chars().next().is_some_and(|c| !c.is_whitespace()))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
