//! Scopes a token must carry for what it asks (`[auth.scopes]`).
//!
//! Runs on the parsed messages: for each request, the scopes its method
//! needs, and for `tools/call`, `prompts/get` and `resources/read` those its
//! target (tool name, prompt name, resource URI) needs. A token that lacks
//! any is refused with 403 and a step-up challenge naming every scope the
//! operation needs (2026-07-28 authorization: one challenge, all scopes).
//! Only callers identified by a token are judged: API keys and client
//! certificates map to a tenant by configuration and carry no scopes.

use serde_json::json;

use crate::exchange::Exchange;
use crate::message::MessageKind;
use crate::rejection::{Decision, Rejection, RejectionKind as K};
use crate::Filter;
use policies::AuthMethod;

pub struct ScopeFilter;

impl Filter for ScopeFilter {
    fn name(&self) -> &'static str {
        "scopes"
    }

    fn mode(&self, policy: &policies::Policy) -> policies::RuleMode {
        policy.auth.scopes_mode
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        let auth = &ex.policy.auth;
        let Some(identity) = ex.identity.as_ref().filter(|i| i.method == AuthMethod::Jwt) else {
            return Decision::Continue;
        };
        if auth.scopes.is_empty() {
            return Decision::Continue;
        }
        let mut needed: Vec<String> = Vec::new();
        let mut at = "method";
        for m in ex
            .messages
            .iter()
            .filter(|m| m.kind == MessageKind::Request)
        {
            let (target, where_) = target_of(m.method(), m.params());
            let more = auth.scopes_needed(m.method(), target);
            if more.iter().any(|s| !identity.scopes.contains(s)) {
                at = where_;
            }
            needed.extend(more);
        }
        needed.sort();
        needed.dedup();
        if needed.iter().all(|s| identity.scopes.contains(s)) {
            return Decision::Continue;
        }
        Rejection::new(
            K::InsufficientScope,
            format!("token lacks a scope of: {}", needed.join(" ")),
        )
        .with_at(at)
        .with_data(json!({ "scopes": needed }))
        .into()
    }
}

/// The target a scope rule's glob is matched against, and where it is.
fn target_of<'m>(
    method: &str,
    params: Option<&'m serde_json::Map<String, serde_json::Value>>,
) -> (Option<&'m str>, &'static str) {
    crate::access::target_of(method, params).map_or((None, "method"), |t| (t.name, t.at))
}

#[cfg(test)]
mod tests;
