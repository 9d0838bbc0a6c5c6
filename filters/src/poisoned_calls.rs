//! Calls of definitions the poisoning rules hid (`[content.poisoning]`,
//! action `hide`): the tool, prompt or resource is gone from listings, so a
//! call of it is answered exactly as a call of a name the server does not
//! know, as for a target `[access]` hides ([`Exchange::concealed`]). The
//! server never sees the call.

use crate::access::target_of;
use crate::exchange::{Concealed, Exchange};
use crate::message::MessageKind;
use crate::poisoning::ListedKind;
use crate::rejection::Decision;
use crate::Filter;

pub struct PoisonedCallFilter;

impl Filter for PoisonedCallFilter {
    fn name(&self) -> &'static str {
        "content-poisoning"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        let Some(book) = ex.content_book else {
            return Decision::Continue;
        };
        // One concealed target per exchange: a batch naming a hidden
        // target is the access filter's to refuse; a single request is
        // concealed here.
        if !ex.policy.content.poisoning.hides() || ex.concealed.is_some() || ex.batch {
            return Decision::Continue;
        }
        let mut concealed = None;
        for m in ex
            .messages
            .iter()
            .filter(|m| m.kind == MessageKind::Request)
        {
            let Some(target) = target_of(m.method(), m.params()) else {
                continue;
            };
            let Some(name) = target.name else {
                continue;
            };
            if let Some(rule) = book.hidden_by(ListedKind::of_target(target.kind), name) {
                concealed = Some(Concealed {
                    kind: target.kind,
                    key: target.key,
                    original: name.to_owned(),
                    rule: format!("content.poisoning.rules.{rule}"),
                });
            }
        }
        if concealed.is_some() {
            ex.concealed = concealed;
        }
        Decision::Continue
    }
}

#[cfg(test)]
mod tests;
