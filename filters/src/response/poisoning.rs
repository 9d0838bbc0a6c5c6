//! Listed definitions against the poisoning rules (`[content.poisoning]`).
//!
//! Each entry of a `tools/list`, `prompts/list`, `resources/list` or
//! `resources/templates/list` answer is scanned ([`crate::poisoning::scan`])
//! and every finding acts as its rule says:
//! - `hide`: the entry is left out (pagination intact) and the pool's
//!   [`ContentBook`](crate::content_book::ContentBook) remembers it, so calls
//!   of it are answered as calls of an unknown name
//!   ([`crate::poisoned_calls`]);
//! - `strip`: the invisible characters, escape sequences or padding found
//!   are removed from the entry's strings;
//! - `flag`: the entry passes unchanged.
//!
//! Every finding is queued in the book for the proxy to log and count. In
//! shadow mode findings are queued as `shadow-<action>` and nothing is
//! changed. An entry listed again without a hiding finding is no longer
//! hidden. Runs after the pins and before visibility: every entry is
//! judged, also those this caller will not see.

use policies::{PoisonAction, PoisonRule, Policy, RuleMode};
use serde_json::Value;

use super::{answers, ResponseDecision, ResponseFacts, ResponseFilter};
use crate::content_book::{clip, shown, MAX_SHOWN};
use crate::poisoning::{scan, strip, Finding, ListedKind};

pub struct PoisoningFilter;

impl ResponseFilter for PoisoningFilter {
    fn name(&self) -> &'static str {
        "content-poisoning"
    }

    fn wants(&self, policy: &Policy, facts: &ResponseFacts<'_>) -> bool {
        policy.content.poisoning.enabled
            && facts.content_book.is_some()
            && ListedKind::listed_by(facts.method).is_some()
    }

    fn check(
        &self,
        policy: &Policy,
        facts: &ResponseFacts<'_>,
        msg: &mut Value,
    ) -> ResponseDecision {
        let (Some(book), Some((kind, member))) =
            (facts.content_book, ListedKind::listed_by(facts.method))
        else {
            return ResponseDecision::Pass;
        };
        if !answers(msg, facts) {
            return ResponseDecision::Pass;
        }
        let Some(entries) = msg
            .pointer_mut(&format!("/result/{member}"))
            .and_then(Value::as_array_mut)
        else {
            return ResponseDecision::Pass;
        };
        let rules = &policy.content.poisoning;
        let shadow = rules.mode == RuleMode::Shadow;
        // The tools: this page's and those listed before (pages of one
        // listing come one by one; a prompt may give orders about a tool).
        if kind == ListedKind::Tool {
            book.saw_tools(
                entries
                    .iter()
                    .filter_map(|e| e.get("name").and_then(Value::as_str)),
            );
        }
        let siblings = book.tools_seen();
        let siblings: Vec<&str> = siblings.iter().map(String::as_str).collect();
        let mut changed = false;
        entries.retain_mut(|entry| {
            let hits = scan(rules, kind, entry, &siblings);
            let name = entry
                .get(kind.key())
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let action_of = |rule: PoisonRule| match rules.action(rule) {
                PoisonAction::Strip if !rule.strippable() => PoisonAction::Flag,
                a => a,
            };
            let hide = hits
                .iter()
                .find(|h| action_of(h.rule) == PoisonAction::Hide);
            for h in &hits {
                let action = action_of(h.rule);
                book.record(Finding {
                    guard: "poisoning",
                    kind,
                    name: clip(&name, MAX_SHOWN),
                    rule: h.rule.name(),
                    field: h.field.clone(),
                    action: shown(action.as_str(), shadow),
                });
            }
            if shadow {
                return true;
            }
            if let Some(h) = hide {
                book.hide(kind, &name, h.rule.name());
                changed = true;
                return false;
            }
            book.unhide(kind, &name);
            let to_strip: Vec<PoisonRule> = hits
                .iter()
                .map(|h| h.rule)
                .filter(|r| action_of(*r) == PoisonAction::Strip)
                .collect();
            if !to_strip.is_empty() && strip(rules, kind, entry, &to_strip) {
                changed = true;
            }
            true
        });
        if changed {
            ResponseDecision::Rewritten
        } else {
            ResponseDecision::Pass
        }
    }
}
