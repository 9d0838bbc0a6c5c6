//! Calls of a tool (or prompt) whose listed definition is not the approved
//! one (`[tools] on_change = "block"`).
//!
//! Runs after the access and scope filters (a hidden tool is never judged
//! here, so a refusal cannot reveal that it exists) and before argument
//! validation. A `tools/call` or `prompts/get` of a name whose last listing
//! differed from its pin, or, with a lock file, of a name the lock does not
//! have, gets [`RejectionKind::DefinitionNotApproved`] (403, -32016), rule
//! `tool-pin`, `at` = `params.name`. A name a first-seen pool never listed
//! passes: there is nothing to judge it by yet. Under `"hide"` and
//! `"alert"` calls go on (arguments are still checked against the pinned
//! schema when `validate_arguments` is on).

use policies::OnChange;
use serde_json::Value;

use crate::exchange::Exchange;
use crate::message::MessageKind;
use crate::pins::PinKind;
use crate::rejection::{Decision, Rejection, RejectionKind as K};
use crate::Filter;

pub struct PinnedCallFilter;

impl Filter for PinnedCallFilter {
    fn mode(&self, policy: &policies::Policy) -> policies::RuleMode {
        policy.tools.mode
    }

    fn name(&self) -> &'static str {
        "tool-pin"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        let Some(book) = ex.pins else {
            return Decision::Continue;
        };
        if ex.policy.tools.on_change != OnChange::Block || ex.concealed.is_some() {
            return Decision::Continue;
        }
        for (i, m) in ex.messages.iter().enumerate() {
            if m.kind != MessageKind::Request {
                continue;
            }
            let Some(kind) = PinKind::used_by(m.method()) else {
                continue;
            };
            // A call without a name is the server's to refuse.
            let Some(name) = m
                .params()
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            if book.allows_call(kind, name) {
                continue;
            }
            let r = Rejection::new(
                K::DefinitionNotApproved,
                format!(
                    "{} {name:?}: its listed definition is not the approved one",
                    kind.as_str()
                ),
            )
            .with_at("params.name");
            return if ex.batch { r.in_item(i) } else { r }.into();
        }
        Decision::Continue
    }
}

#[cfg(test)]
mod tests;
