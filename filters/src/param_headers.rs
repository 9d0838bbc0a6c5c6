//! `Mcp-Param-*` headers against the arguments they mirror (2026-07-28,
//! SEP-2243).
//!
//! A tool's `inputSchema` may mark an argument `x-mcp-header: "Region"`;
//! a client then sends `Mcp-Param-Region` with the argument's value, so
//! that load balancers and gateways can route on it without reading the
//! body. A header that disagrees with the body would steer them with a lie,
//! so the spec has the server refuse it, and a stdio server never sees the
//! headers at all: mcpgate checks them itself, for every pool, from the
//! declarations it saw listed ([`ParamHeaderBook`]).
//!
//! For each declaration of the called tool whose argument is present and
//! not `null`:
//! - no header: refused, rule `missing-mcp-param`;
//! - the header repeated, too long, or a `=?base64?...?=` value that is not
//!   canonical Base64 of UTF-8: refused, rule `mcp-param-invalid-encoding`;
//! - a decoded value unequal to the argument (numbers compare as numbers,
//!   booleans as `true` / `false`): refused, rule `mcp-param-mismatch`.
//!
//! Each is [`RejectionKind::HeaderMismatch`] (400, -32020) at
//! `header:mcp-param-<name>`. A tool never listed, or listed without
//! declarations, passes: there is nothing to compare. Only the stateless
//! revision is checked (the headers do not exist before it), and a call of
//! a hidden tool is not (its refusal would say that the tool exists).

pub mod declarations;

use serde_json::Value;

pub use declarations::{ParamDeclaration, ParamHeaderBook, ParamType};

use crate::exchange::{Era, Exchange};
use crate::header_values::{decode_mcp_value, single, Single};
use crate::message::{Message, MessageKind};
use crate::rejection::{Decision, Rejection, RejectionKind as K};
use crate::tool_args::tool_call;
use crate::Filter;

/// Header name prefix, lower case.
pub const PARAM_HEADER_PREFIX: &str = "mcp-param-";

pub struct ParamHeaderFilter;

impl Filter for ParamHeaderFilter {
    fn name(&self) -> &'static str {
        "param-headers"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        let Some(book) = ex.param_headers else {
            return Decision::Continue;
        };
        if ex.era != Era::Modern || ex.concealed.is_some() || book.is_empty() {
            return Decision::Continue;
        }
        match ex.message() {
            Some(m) => match check_message(book, ex.headers, m) {
                Ok(()) => Decision::Continue,
                Err(r) => r.into(),
            },
            None => Decision::Continue,
        }
    }
}

fn check_message(
    book: &ParamHeaderBook,
    headers: &http::HeaderMap,
    m: &Message,
) -> Result<(), Rejection> {
    if m.kind != MessageKind::Request {
        return Ok(());
    }
    let Some((tool, args)) = tool_call(m) else {
        return Ok(());
    };
    let Some(declared) = book.declarations(tool) else {
        return Ok(());
    };
    for decl in declared.iter() {
        let Some(body) = decl.value_in(args).and_then(as_header_text) else {
            continue;
        };
        let name = format!("{PARAM_HEADER_PREFIX}{}", decl.header);
        let refuse = |rule, what: String| {
            Rejection::new(
                K::HeaderMismatch,
                format!("tool {tool:?}: Mcp-Param-{} {what}", decl.header),
            )
            .with_rule(rule)
            .with_at(format!("header:{name}"))
        };
        let raw = match single(headers, &name) {
            Single::Absent => {
                return Err(refuse(
                    "missing-mcp-param",
                    "is missing but the argument is present".into(),
                ))
            }
            Single::Repeated => {
                return Err(refuse("mcp-param-invalid-encoding", "is repeated".into()))
            }
            Single::One(raw) => raw,
        };
        let Some(decoded) = decode_mcp_value(raw) else {
            return Err(refuse(
                "mcp-param-invalid-encoding",
                "is too long or not valid Base64 of UTF-8".into(),
            ));
        };
        if !agrees(decl.kind, &decoded, &body) {
            return Err(refuse(
                "mcp-param-mismatch",
                "does not match the argument it mirrors".into(),
            ));
        }
    }
    Ok(())
}

/// An argument as its header spells it; `None` for what is not mirrored
/// (`null`, objects, arrays).
fn as_header_text(v: &Value) -> Option<HeaderText<'_>> {
    match v {
        Value::String(s) => Some(HeaderText::Text(s)),
        Value::Bool(b) => Some(HeaderText::Text(if *b { "true" } else { "false" })),
        Value::Number(n) => Some(HeaderText::Number(n)),
        _ => None,
    }
}

enum HeaderText<'a> {
    Text(&'a str),
    Number(&'a serde_json::Number),
}

/// Whether a decoded header value equals the argument.
fn agrees(kind: ParamType, decoded: &str, body: &HeaderText<'_>) -> bool {
    match body {
        HeaderText::Text(s) => decoded == *s,
        HeaderText::Number(n) => {
            if decoded == n.to_string() {
                return true;
            }
            // `42.0` and `42` are the same number; only a plain decimal is
            // read as one.
            kind.numeric()
                && is_plain_decimal(decoded)
                && match (n.as_i64(), n.as_u64(), decoded.parse::<i128>()) {
                    (Some(i), _, Ok(d)) => i128::from(i) == d,
                    (_, Some(u), Ok(d)) => i128::from(u) == d,
                    _ => decoded.parse::<f64>().ok() == n.as_f64(),
                }
        }
    }
}

/// `-?digits(.digits)?`
fn is_plain_decimal(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    digits(int) && frac.is_none_or(digits)
}

#[cfg(test)]
mod tests;
