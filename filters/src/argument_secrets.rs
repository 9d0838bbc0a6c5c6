//! Secrets and personal data in `tools/call` arguments (`[content.secrets]`
//! or `[content.pii]` with `in_arguments = true`): what a client, or a model
//! steered by a poisoned description, sends out through a tool.
//!
//! Every string of `params.arguments` is judged by the same rules and
//! allowlists as results ([`crate::response::data`]): `block` refuses the
//! call (400, -32602, the rule named, `at` the argument; never the value),
//! `redact` sends the call on with the match replaced by `[REDACTED:rule]`
//! ([`Exchange::rewritten`]), `flag` passes it. Findings go to the pool's
//! [`ContentBook`](crate::content_book::ContentBook).

use serde_json::json;

use crate::exchange::Exchange;
use crate::message::MessageKind;
use crate::poisoning::ListedKind;
use crate::rejection::{Decision, Rejection, RejectionKind as K};
use crate::response::data::{walk_all, Judge, Outcome};
use crate::tool_args::AT_ARGUMENTS;
use crate::Filter;

pub struct ArgumentSecretsFilter;

impl Filter for ArgumentSecretsFilter {
    fn name(&self) -> &'static str {
        "content-data"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        let content = &ex.policy.content;
        let (secrets, pii) = (&content.secrets, &content.pii);
        let judged = |g: &policies::DataGuardPolicy| g.enabled && g.in_arguments;
        if !judged(secrets) && !judged(pii) {
            return Decision::Continue;
        }
        let Some(book) = ex.content_book else {
            return Decision::Continue;
        };
        // A call of a hidden tool goes on without its arguments.
        if ex.concealed.is_some() {
            return Decision::Continue;
        }
        // Each section judges arguments only where it says so.
        let off = policies::DataGuardPolicy::default();
        let tenant = ex.tenant.as_deref().unwrap_or("").to_owned();
        let mut rewritten = false;
        for (i, m) in ex.messages.iter_mut().enumerate() {
            if m.kind != MessageKind::Request || m.method() != "tools/call" {
                continue;
            }
            let tool = m
                .params()
                .and_then(|p| p.get("name"))
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            let Some(args) = m
                .body
                .get_mut("params")
                .and_then(|p| p.get_mut("arguments"))
            else {
                continue;
            };
            let judge = Judge {
                secrets: if secrets.in_arguments { secrets } else { &off },
                pii: if pii.in_arguments { pii } else { &off },
                target: tool.as_deref(),
                tenant: &tenant,
                kind: ListedKind::Tool,
                book,
                block_redacts: false,
            };
            let mut outcome = Outcome::default();
            let mut blocked_at = None;
            let mut path = String::from(AT_ARGUMENTS);
            walk_all(args, &mut path, &mut |field, s| {
                let before = outcome.blocked;
                judge.string(field, s, &mut outcome);
                if before.is_none() && outcome.blocked.is_some() {
                    blocked_at = Some(field.to_owned());
                }
            });
            if let Some((guard, rule)) = outcome.blocked {
                let r = Rejection::new(
                    K::InvalidArguments,
                    format!("{guard} rule {rule} in the arguments of {tool:?}"),
                )
                .with_rule(rule)
                .with_at(blocked_at.unwrap_or_else(|| AT_ARGUMENTS.to_owned()))
                .with_data(json!({ "guard": guard }));
                return if ex.batch { r.in_item(i) } else { r }.into();
            }
            rewritten |= outcome.changed;
        }
        if rewritten {
            ex.rewritten = true;
        }
        Decision::Continue
    }
}

#[cfg(test)]
mod tests;
