//! 2026-07-28 (stateless) validation: required `_meta`, version allowlist, and
//! routing headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) equal to
//! the body. An intermediary must refuse a mismatch itself (spec, SEP-2243):
//! anything routing on headers would otherwise be steered by a lie.

use std::borrow::Cow;

use serde_json::{json, Value};

use crate::era::{META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION};
use crate::exchange::{Era, Exchange};
use crate::header_values::{decode_mcp_value, single, Single};
use crate::message::{Message, MessageKind};
use crate::rejection::{Decision, Rejection, RejectionKind as K};
use crate::Filter;

pub struct ModernFilter;

impl Filter for ModernFilter {
    fn name(&self) -> &'static str {
        "modern"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        if ex.era != Era::Modern {
            return Decision::Continue;
        }
        if ex.method != "POST" {
            return Rejection::new(
                K::MethodNotAllowed,
                format!("{} in the stateless revision", ex.method),
            )
            .with_rule("stateless-method-not-allowed")
            .with_at("method")
            .with_allow("POST")
            .into();
        }
        if ex.batch {
            return Rejection::new(K::BatchNotAllowed, "batch in the stateless revision")
                .with_rule("stateless-batch")
                .with_at("body")
                .into();
        }
        match ex.message() {
            Some(m) => match check_message(ex, m) {
                Ok(()) => Decision::Continue,
                Err(r) => r.into(),
            },
            None => Decision::Continue,
        }
    }
}

/// Methods of the stateful revision that do not exist in the stateless one.
const REMOVED_METHODS: &[&str] = &["initialize", "notifications/initialized"];

fn check_message(ex: &Exchange<'_>, m: &Message) -> Result<(), Rejection> {
    if m.kind == MessageKind::Response {
        return Err(Rejection::new(
            K::ResponseNotAllowed,
            "client response in the stateless revision",
        )
        .with_rule("stateless-client-response")
        .with_at("body"));
    }
    if REMOVED_METHODS.contains(&m.method()) {
        return Err(Rejection::new(
            K::MethodNotFound,
            format!("{:?} does not exist in the stateless revision", m.method()),
        )
        .with_rule("method-removed-in-stateless")
        .with_at("method"));
    }
    let allowed = &ex.policy.protocol.modern_versions;
    let header_version = header(ex, "mcp-protocol-version")?;
    let Some(header_version) = header_version else {
        return Err(
            Rejection::new(K::HeaderMismatch, "missing MCP-Protocol-Version")
                .with_rule("missing-protocol-version-header")
                .with_at("header:mcp-protocol-version"),
        );
    };
    if m.kind == MessageKind::Request {
        let meta = m.meta();
        let Some(v) = meta.and_then(|meta| meta.get(META_PROTOCOL_VERSION)) else {
            return Err(
                Rejection::new(K::MissingMeta, "request lacks _meta protocolVersion")
                    .with_rule("missing-meta-protocol-version")
                    .with_at(AT_META_VERSION),
            );
        };
        let Some(v) = v.as_str() else {
            return Err(
                Rejection::new(K::MissingMeta, "_meta protocolVersion is not a string")
                    .with_rule("meta-protocol-version-not-a-string")
                    .with_at(AT_META_VERSION),
            );
        };
        // Header first: a header that lies about the body is -32020 whatever
        // the versions; only an honest header gets the -32022 version answer.
        if header_version != v {
            return Err(Rejection::new(
                K::HeaderMismatch,
                format!("MCP-Protocol-Version {header_version:?} != _meta {v:?}"),
            )
            .with_rule("protocol-version-header-mismatch")
            .with_at("header:mcp-protocol-version"));
        }
        if !meta
            .and_then(|meta| meta.get(META_CLIENT_CAPABILITIES))
            .is_some_and(Value::is_object)
        {
            return Err(
                Rejection::new(K::MissingMeta, "request lacks _meta clientCapabilities")
                    .with_rule("missing-meta-client-capabilities")
                    .with_at(AT_META_CAPABILITIES),
            );
        }
    }
    if !allowed.iter().any(|a| *a == header_version) {
        return Err(unsupported(allowed, &header_version));
    }
    let method = m.method();
    let got = header(ex, "mcp-method")?;
    if got.as_deref() != Some(method) {
        return Err(Rejection::new(
            K::HeaderMismatch,
            format!("Mcp-Method {got:?} does not match body method {method:?}"),
        )
        .with_rule(if got.is_none() {
            "missing-mcp-method"
        } else {
            "mcp-method-mismatch"
        })
        .with_at("header:mcp-method"));
    }
    if let Some(name) = routed_name(m) {
        let got = header(ex, "mcp-name")?;
        if got.as_deref() != Some(name) {
            return Err(Rejection::new(
                K::HeaderMismatch,
                format!("Mcp-Name {got:?} does not match body {name:?}"),
            )
            .with_rule(if got.is_none() {
                "missing-mcp-name"
            } else {
                "mcp-name-mismatch"
            })
            .with_at("header:mcp-name"));
        }
    }
    Ok(())
}

/// The body value `Mcp-Name` must mirror, for methods that route by name.
fn routed_name(m: &Message) -> Option<&str> {
    let key = match m.method() {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return None,
    };
    Some(
        m.params()
            .and_then(|p| p.get(key))
            .and_then(Value::as_str)
            .unwrap_or(""),
    )
}

/// A decoded MCP header; a repeated or undecodable one is a mismatch.
fn header<'a>(ex: &Exchange<'a>, name: &'static str) -> Result<Option<Cow<'a, str>>, Rejection> {
    match single(ex.headers, name) {
        Single::Absent => Ok(None),
        Single::Repeated => Err(
            Rejection::new(K::HeaderMismatch, format!("{name} repeated"))
                .with_rule("repeated-header")
                .with_at(format!("header:{name}")),
        ),
        Single::One(raw) => decode_mcp_value(raw).map(Some).ok_or_else(|| {
            Rejection::new(K::HeaderMismatch, format!("{name} cannot be decoded"))
                .with_rule("undecodable-header")
                .with_at(format!("header:{name}"))
        }),
    }
}

/// Where the `_meta` keys live, as JSON paths (the keys contain `.` and `/`).
const AT_META_VERSION: &str = r#"params._meta["io.modelcontextprotocol/protocolVersion"]"#;
const AT_META_CAPABILITIES: &str = r#"params._meta["io.modelcontextprotocol/clientCapabilities"]"#;

/// -32022 with the versions mcpgate accepts and, as the 2026-07-28
/// transport requires (SEP-2575, checked by the official suite), the version
/// the client asked for. That is the one client string mcpgate echoes, and
/// only when it has the shape of a version (see [`echoable_version`]).
fn unsupported(allowed: &[String], requested: &str) -> Rejection {
    let mut data = json!({ "supported": allowed });
    if let Some(v) = echoable_version(requested) {
        data["requested"] = json!(v);
    }
    Rejection::new(
        K::UnsupportedModernVersion,
        format!("version {requested:?} not allowed"),
    )
    .with_at("header:mcp-protocol-version")
    .with_data(data)
}

/// A requested version safe to echo: at most 32 bytes of ASCII letters,
/// digits, `.`, `-` and `_` (dates like `2026-07-28`, `v999.0.0`); anything
/// else is not echoed.
pub fn echoable_version(v: &str) -> Option<&str> {
    (!v.is_empty()
        && v.len() <= 32
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')))
    .then_some(v)
}

#[cfg(test)]
mod tests;
