//! Puts a hidden target's real name back into the server's answer.
//!
//! A request naming a target hidden from its caller went upstream under a
//! placeholder (see [`crate::access`]); the server answered as it answers any
//! unknown name, quoting the placeholder. Every string of the answer has the
//! placeholder replaced by the name the client sent, so the client reads
//! exactly what the server says of a name it does not know.

use policies::Policy;
use serde_json::Value;

use super::{ResponseDecision, ResponseFacts, ResponseFilter};

pub struct UnmaskFilter;

impl ResponseFilter for UnmaskFilter {
    fn name(&self) -> &'static str {
        "unmask"
    }

    fn wants(&self, _policy: &Policy, facts: &ResponseFacts<'_>) -> bool {
        facts.concealed.is_some()
    }

    fn check(
        &self,
        _policy: &Policy,
        facts: &ResponseFacts<'_>,
        msg: &mut Value,
    ) -> ResponseDecision {
        let Some((placeholder, original)) = facts.concealed else {
            return ResponseDecision::Pass;
        };
        if replace_in(msg, placeholder, original) {
            ResponseDecision::Rewritten
        } else {
            ResponseDecision::Pass
        }
    }
}

/// Replaces `from` with `to` in every string (and object key) of `v`;
/// returns whether anything changed.
fn replace_in(v: &mut Value, from: &str, to: &str) -> bool {
    match v {
        Value::String(s) if s.contains(from) => {
            *s = s.replace(from, to);
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| replace_in(item, from, to) | changed),
        Value::Object(map) => {
            let mut changed = false;
            if map.keys().any(|k| k.contains(from)) {
                let old = std::mem::take(map);
                for (k, v) in old {
                    map.insert(k.replace(from, to), v);
                }
                changed = true;
            }
            map.values_mut().fold(changed, |changed, item| {
                replace_in(item, from, to) | changed
            })
        }
        _ => false,
    }
}
