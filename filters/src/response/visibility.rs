//! What a caller sees of a server's catalogue (`[access]`).
//!
//! `tools/list`, `prompts/list`, `resources/list` and
//! `resources/templates/list` results lose the entries the policy hides from
//! this caller; `nextCursor` and every other member stay, so pagination is
//! intact (a page may come back short, never skipped). An entry without a
//! name to judge is hidden (fail closed). `initialize` and `server/discover`
//! results stay consistent with it: a capability the caller can use nothing
//! of is removed. Under 2026-07-28 these results vary by caller, so they are
//! marked `cacheScope: "private"`: a shared cache must not serve one
//! caller's view to another.

use policies::{AccessKind, Policy};
use serde_json::Value;

use super::{answers, ResponseDecision, ResponseFacts, ResponseFilter};
use crate::exchange::Era;
use crate::poisoning::ListedKind;

pub struct VisibilityFilter;

/// Methods whose result announces capabilities.
fn announces_capabilities(method: &str) -> bool {
    matches!(method, "initialize" | "server/discover")
}

impl ResponseFilter for VisibilityFilter {
    fn name(&self) -> &'static str {
        "visibility"
    }

    fn wants(&self, policy: &Policy, facts: &ResponseFacts<'_>) -> bool {
        policy.access.is_active()
            && (ListedKind::listed_by(facts.method).is_some()
                || announces_capabilities(facts.method))
    }

    fn check(
        &self,
        policy: &Policy,
        facts: &ResponseFacts<'_>,
        msg: &mut Value,
    ) -> ResponseDecision {
        if !answers(msg, facts) {
            return ResponseDecision::Pass;
        }
        let Some(result) = msg.get_mut("result").and_then(Value::as_object_mut) else {
            return ResponseDecision::Pass;
        };
        let access = &policy.access;
        let mut changed = false;
        if let Some((listed, member)) = ListedKind::listed_by(facts.method) {
            let (key, kind) = (listed.key(), listed.access_kind());
            if let Some(entries) = result.get_mut(member).and_then(Value::as_array_mut) {
                let before = entries.len();
                entries.retain(|entry| {
                    entry.get(key).and_then(Value::as_str).is_some_and(|name| {
                        access
                            .decide(kind, name, facts.tenant, facts.scopes)
                            .allowed
                    })
                });
                changed |= entries.len() != before;
            }
        } else if let Some(caps) = result
            .get_mut("capabilities")
            .and_then(Value::as_object_mut)
        {
            for (cap, kind) in [
                ("tools", AccessKind::Tool),
                ("prompts", AccessKind::Prompt),
                ("resources", AccessKind::Resource),
            ] {
                if caps.contains_key(cap) && !access.may_see_any(kind, facts.tenant, facts.scopes) {
                    caps.remove(cap);
                    changed = true;
                }
            }
        }
        if facts.era == Era::Modern
            && result.get("cacheScope").and_then(Value::as_str) != Some("private")
        {
            result.insert("cacheScope".into(), Value::from("private"));
            changed = true;
        }
        if changed {
            ResponseDecision::Rewritten
        } else {
            ResponseDecision::Pass
        }
    }
}
