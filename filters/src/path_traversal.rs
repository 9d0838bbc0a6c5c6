//! Path-traversal guard: every URI and path a client names, canonicalized
//! ([`crate::path_canon`]) and judged before any server sees it.
//!
//! Inspected: `params.uri` of `resources/read`, `resources/subscribe` and
//! `resources/unsubscribe`; the `Mcp-Name` header of `resources/read` (in
//! every era: a legacy request's header is not compared with the body
//! elsewhere); `params.ref.uri` and, for `ref/resource`, `params.argument.value`
//! of `completion/complete`; `tools/call` arguments that `[paths.tools]` marks
//! by JSON pointer; with `[paths] heuristic = true`, every string argument of
//! `tools/call` that looks like a file path or `file:` URI.
//!
//! Traversal sequences are always refused. Scheme and root scopes
//! (`[paths]`, `[tenants.NAME.paths]`, `[paths.upstreams.NAME]`) apply to
//! resource URIs and to absolute path arguments. The client gets -32602 with
//! a generic message and `error.data` naming the rule that fired and
//! where (`params.uri`, `params.arguments.path`), never the value; the log
//! has the value too.

use policies::UriScope;
use serde_json::Value;

use crate::exchange::Exchange;
use crate::header_values::{decode_mcp_value, single, Single};
use crate::message::Message;
use crate::path_canon::{canonicalize, fold, Finding};
use crate::rejection::{Decision, Location, Rejection, RejectionKind as K};
use crate::tool_args::{
    each_string, pointed_strings, pointer_at, shown, tool_call, AT_ARGUMENTS, MAX_HEURISTIC_BYTES,
};
use crate::Filter;

pub struct PathTraversalFilter;

impl Filter for PathTraversalFilter {
    fn mode(&self, policy: &policies::Policy) -> policies::RuleMode {
        policy.paths.mode
    }

    fn name(&self) -> &'static str {
        "path_traversal"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        let ex: &Exchange<'_> = ex;
        for (i, m) in ex.messages.iter().enumerate() {
            if let Err(r) = check_message(ex, m) {
                return if ex.batch { r.in_item(i) } else { r }.into();
            }
        }
        Decision::Continue
    }
}

/// How much of the policy applies to a string.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A resource URI: traversal rules, schemes and roots.
    Uri,
    /// A path argument: traversal rules; schemes and roots when absolute.
    Path,
    /// A template or partial value: traversal rules only.
    Fragment,
}

fn check_message(ex: &Exchange<'_>, m: &Message) -> Result<(), Rejection> {
    let policy = &ex.policy.paths;
    let tenant = ex.tenant.as_deref();
    let pool = &ex.policy.pool_for(tenant.unwrap_or("")).name;
    let scopes = policy.scopes(tenant, pool);
    // `at` is ours (a fixed path, or a pointer from the policy) and goes to
    // the client; `logged` (where, in the client's own terms) and `s` go to
    // the log only.
    let judge = |s: &str, mode: Mode, at: Location, logged: &str| -> Result<(), Rejection> {
        judge(s, mode, &scopes).map_err(|rule| {
            Rejection::new(
                K::PathNotAllowed,
                format!("{rule} in {} {logged}: {}", m.method(), shown(s)),
            )
            .with_rule(rule)
            .with_at(at)
        })
    };
    let params = m.params();
    let str_at =
        |ptr: &str| -> Option<&str> { params.and_then(|p| p.get(ptr)).and_then(Value::as_str) };
    match m.method() {
        method @ ("resources/read" | "resources/subscribe" | "resources/unsubscribe") => {
            if let Some(uri) = str_at("uri") {
                judge(uri, Mode::Uri, "params.uri".into(), "params.uri")?;
            }
            if method == "resources/read" {
                match single(ex.headers, "mcp-name") {
                    Single::Absent => {}
                    Single::One(raw) => match decode_mcp_value(raw) {
                        Some(name) => {
                            judge(&name, Mode::Uri, "header:mcp-name".into(), "Mcp-Name")?
                        }
                        None => {
                            return Err(Rejection::new(
                                K::PathNotAllowed,
                                "undecodable-header in resources/read Mcp-Name",
                            )
                            .with_rule("undecodable-header")
                            .with_at("header:mcp-name"))
                        }
                    },
                    Single::Repeated => {
                        return Err(Rejection::new(
                            K::PathNotAllowed,
                            "repeated-header in resources/read Mcp-Name",
                        )
                        .with_rule("repeated-header")
                        .with_at("header:mcp-name"))
                    }
                }
            }
        }
        "completion/complete" => {
            let reference = params.and_then(|p| p.get("ref"));
            if let Some(uri) = reference.and_then(|r| r.get("uri")).and_then(Value::as_str) {
                judge(
                    uri,
                    Mode::Fragment,
                    "params.ref.uri".into(),
                    "params.ref.uri",
                )?;
            }
            let is_resource = reference
                .and_then(|r| r.get("type"))
                .and_then(Value::as_str)
                == Some("ref/resource");
            let value = params
                .and_then(|p| p.get("argument"))
                .and_then(|a| a.get("value"))
                .and_then(Value::as_str);
            if let (true, Some(v)) = (is_resource, value) {
                judge(
                    v,
                    Mode::Fragment,
                    "params.argument.value".into(),
                    "params.argument.value",
                )?;
            }
        }
        _ => {
            if let Some((tool, args)) = tool_call(m) {
                for pointer in policy.tools.get(tool).into_iter().flatten() {
                    for s in pointed_strings(args, pointer) {
                        let logged = format!("arguments{pointer} of {tool:?}");
                        judge(s, Mode::Path, pointer_at(pointer).into(), &logged)?;
                    }
                }
                if policy.heuristic {
                    // The client's own argument names are logged, not echoed.
                    each_string(args, &mut |at, s| {
                        if looks_like_path(s) {
                            let logged = format!("arguments{at} of {tool:?} (heuristic)");
                            judge(s, Mode::Path, AT_ARGUMENTS.into(), &logged)
                        } else {
                            Ok(())
                        }
                    })?;
                }
            }
        }
    }
    Ok(())
}

/// Judges one string; the error is the rule that fired.
fn judge(s: &str, mode: Mode, scopes: &[Option<&UriScope>; 2]) -> Result<(), &'static str> {
    let c = canonicalize(s).map_err(Finding::rule)?;
    if mode == Mode::Fragment {
        return Ok(());
    }
    let root = c.root_form();
    if root.is_none() && mode == Mode::Path {
        return Ok(()); // relative to the server's own root; traversal already ruled out
    }
    let scheme = c.effective_scheme().unwrap_or("");
    for scope in scopes.iter().flatten() {
        if !scope.allows_scheme(scheme) {
            return Err("scheme-not-allowed");
        }
        match &root {
            Some(r) if scope.allows_uri(r) => {}
            None if scope.roots.is_empty() => {}
            _ => return Err("outside-allowed-roots"),
        }
    }
    Ok(())
}

/// Heuristic: a string that a server could take for a file path or `file:` URI.
fn looks_like_path(s: &str) -> bool {
    if s.len() > MAX_HEURISTIC_BYTES || s.contains('\n') {
        return false;
    }
    let f = fold(s);
    let candidate = f.contains(['/', '\\', '%']) || f.starts_with('~');
    if !candidate {
        return false;
    }
    // URLs of other schemes are the SSRF guard's business.
    match canonicalize(s) {
        Ok(c) => matches!(c.scheme.as_deref(), None | Some("file")),
        Err(_) => !has_network_scheme(&f),
    }
}

/// `scheme:` other than `file:` at the start of a (folded) string.
fn has_network_scheme(f: &str) -> bool {
    let Some((name, _)) = f.split_once(':') else {
        return false;
    };
    name.len() >= 2
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && !name.eq_ignore_ascii_case("file")
}

#[cfg(test)]
mod tests;
