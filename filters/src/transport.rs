//! Transport rules of Streamable HTTP, judged from the request head alone.
//!
//! Runs before the body is read, so oversized or misdirected requests are
//! refused without buffering anything.

use http::HeaderMap;
use policies::{split_host, Policy};

use crate::exchange::Exchange;
use crate::header_values::{single, Single};
use crate::rejection::{Decision, Rejection, RejectionKind as K};
use crate::Filter;

/// Headers that must never appear twice: a proxy and a server that pick
/// different copies would judge different requests.
pub const SINGLETON_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "origin",
    "authorization",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
];

/// Path, method, `Host`/`Origin` allowlists, header sanity, media types, size.
pub struct TransportFilter;

impl Filter for TransportFilter {
    fn name(&self) -> &'static str {
        "transport"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        match check(ex.policy, ex.method, ex.path, ex.headers) {
            Ok(()) => Decision::Continue,
            Err(r) => r.into(),
        }
    }
}

fn check(policy: &Policy, method: &str, path: &str, headers: &HeaderMap) -> Result<(), Rejection> {
    if path != policy.listen.path {
        return Err(Rejection::new(
            K::PathNotFound,
            format!("path {path:?} is not the MCP endpoint"),
        )
        .with_rule("unknown-path")
        .with_at("path"));
    }
    if !matches!(method, "POST" | "GET" | "DELETE") {
        return Err(
            Rejection::new(K::MethodNotAllowed, format!("method {method}")).with_at("method"),
        );
    }
    // A map with as many values as names repeats no header at all.
    let repeats = headers.len() != headers.keys_len();
    for name in SINGLETON_HEADERS.iter().filter(|_| repeats) {
        if single(headers, name) == Single::Repeated {
            return Err(Rejection::new(
                K::MalformedHeader,
                format!("repeated singleton header {name}"),
            )
            .with_rule("repeated-header")
            .with_at(format!("header:{name}")));
        }
    }
    check_host(policy, headers)?;
    check_origin(policy, headers)?;
    if let Single::One(id) = single(headers, "mcp-session-id") {
        if id.is_empty()
            || id.len() > policy.limits.max_session_id_bytes
            || !id.iter().all(|b| (0x21..=0x7e).contains(b))
        {
            return Err(Rejection::new(
                K::MalformedHeader,
                "Mcp-Session-Id is not 1..N visible ASCII characters",
            )
            .with_rule("malformed-session-id")
            .with_at("header:mcp-session-id"));
        }
    }
    let accept = accepted_types(headers);
    match method {
        "POST" => {
            if !is_json_content_type(headers) {
                return Err(Rejection::new(
                    K::UnsupportedMediaType,
                    "Content-Type is not application/json",
                )
                .with_rule("content-type-not-json")
                .with_at("header:content-type"));
            }
            if !(accept.json && accept.sse) {
                return Err(Rejection::new(
                    K::NotAcceptable,
                    "Accept lacks application/json or text/event-stream",
                )
                .with_rule("accept-lacks-json-or-sse")
                .with_at("header:accept"));
            }
            if let Some(len) = content_length(headers)? {
                if len > policy.limits.max_body_bytes as u64 {
                    return Err(Rejection::new(
                        K::PayloadTooLarge,
                        format!("Content-Length {len} over limit"),
                    )
                    .with_rule("content-length-over-limit")
                    .with_at("header:content-length"));
                }
            }
        }
        "GET" if !accept.sse => {
            return Err(
                Rejection::new(K::NotAcceptable, "GET without Accept: text/event-stream")
                    .with_rule("accept-lacks-sse")
                    .with_at("header:accept"),
            );
        }
        _ => {}
    }
    Ok(())
}

fn check_host(policy: &Policy, headers: &HeaderMap) -> Result<(), Rejection> {
    let Single::One(raw) = single(headers, "host") else {
        return Err(Rejection::new(K::MalformedHeader, "missing Host header")
            .with_rule("missing-host")
            .with_at("header:host"));
    };
    let host = std::str::from_utf8(raw).ok().and_then(split_host);
    match host {
        Some((host, port))
            if policy
                .origin
                .allowed_hosts
                .iter()
                .any(|p| p.matches(host, port)) =>
        {
            Ok(())
        }
        _ => Err(Rejection::new(
            K::HostNotAllowed,
            format!("Host {:?} not allowed", String::from_utf8_lossy(raw)),
        )
        .with_at("header:host")),
    }
}

fn check_origin(policy: &Policy, headers: &HeaderMap) -> Result<(), Rejection> {
    let Single::One(raw) = single(headers, "origin") else {
        return Ok(()); // Non-browser clients send no Origin; there is nothing to rebind.
    };
    let allowed = std::str::from_utf8(raw)
        .ok()
        .and_then(|o| o.split_once("://"))
        .and_then(|(scheme, rest)| Some((scheme, split_host(rest)?)))
        .is_some_and(|(scheme, (host, port))| {
            policy
                .origin
                .allowed_origins
                .iter()
                .any(|p| p.scheme.eq_ignore_ascii_case(scheme) && p.host.matches(host, port))
        });
    if allowed {
        Ok(())
    } else {
        Err(Rejection::new(
            K::OriginNotAllowed,
            format!("Origin {:?} not allowed", String::from_utf8_lossy(raw)),
        )
        .with_at("header:origin"))
    }
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Rejection> {
    match single(headers, "content-length") {
        Single::One(v) => std::str::from_utf8(v)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| {
                Rejection::new(K::MalformedHeader, "invalid Content-Length")
                    .with_rule("malformed-content-length")
                    .with_at("header:content-length")
            }),
        _ => Ok(None),
    }
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    match single(headers, "content-type") {
        Single::One(v) => std::str::from_utf8(v).is_ok_and(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        }),
        _ => false,
    }
}

#[derive(Default)]
struct Accepted {
    json: bool,
    sse: bool,
}

fn accepted_types(headers: &HeaderMap) -> Accepted {
    let mut out = Accepted::default();
    for value in headers.get_all("accept") {
        let Ok(s) = value.to_str() else { continue };
        for item in s.split(',') {
            // Compared ignoring case, not lower-cased: no copy per request.
            let media = item.split(';').next().unwrap_or("").trim();
            let is = |m: &str| media.eq_ignore_ascii_case(m);
            out.json |= is("application/json") || is("application/*") || is("*/*");
            out.sse |= is("text/event-stream") || is("text/*") || is("*/*");
        }
    }
    out
}

#[cfg(test)]
mod tests;
