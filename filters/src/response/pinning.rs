//! Listed definitions against their pins (`[tools] lock_file`, `pin`,
//! `on_change`): the rug-pull defence on the way back.
//!
//! Each entry of a `tools/list` or `prompts/list` answer is judged by the
//! pool's [`PinBook`](crate::pins::PinBook) (every entry, also those the
//! caller will not see: a change is noticed whoever lists). An entry whose
//! definition is not the approved one is left out of the listing under
//! `on_change = "block"` or `"hide"` (pagination intact: `nextCursor` and
//! the other members stay), and passed under `"alert"`. An entry without a
//! name cannot be judged and is left out (fail closed) unless alerting.
//! What the book saw is queued for the proxy to log, count and share.

use policies::{OnChange, Policy};
use serde_json::Value;

use super::{answers, ResponseDecision, ResponseFacts, ResponseFilter};
use crate::pins::{definition, PinKind};

pub struct PinningFilter;

impl ResponseFilter for PinningFilter {
    fn name(&self) -> &'static str {
        "tool-pin"
    }

    fn wants(&self, policy: &Policy, facts: &ResponseFacts<'_>) -> bool {
        policy.tools.pins_active()
            && facts.pins.is_some()
            && PinKind::listed_by(facts.method).is_some()
    }

    fn check(
        &self,
        policy: &Policy,
        facts: &ResponseFacts<'_>,
        msg: &mut Value,
    ) -> ResponseDecision {
        let (Some(book), Some(kind)) = (facts.pins, PinKind::listed_by(facts.method)) else {
            return ResponseDecision::Pass;
        };
        if !answers(msg, facts) {
            return ResponseDecision::Pass;
        }
        let Some(entries) = msg
            .pointer_mut(&format!("/result/{}", kind.member()))
            .and_then(Value::as_array_mut)
        else {
            return ResponseDecision::Pass;
        };
        let keep_unapproved = policy.tools.on_change == OnChange::Alert;
        let before = entries.len();
        entries.retain(|entry| match definition(kind, entry) {
            Some((name, def)) => book.observe(kind, name, &def).approved() || keep_unapproved,
            None => keep_unapproved,
        });
        if entries.len() == before {
            ResponseDecision::Pass
        } else {
            ResponseDecision::Rewritten
        }
    }
}
