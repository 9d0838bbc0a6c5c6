//! Secrets and personal data in what servers answer (`[content.secrets]`,
//! `[content.pii]`).
//!
//! Reads the answers to `tools/call`, `resources/read` and `prompts/get`:
//! every `text` (content blocks, embedded resources, resource contents,
//! prompt messages) and every string of `structuredContent`, each SSE event
//! as it completes. Each match of a rule ([`crate::secrets`]) that no
//! allowlist lets through acts as the rule says: `redact` replaces it with
//! `[REDACTED:rule]` (the message stays valid JSON), `block` replaces the
//! whole message with [`RejectionKind::ContentBlocked`], `flag` passes it.
//! The log and progress notifications a server sends on the way
//! (`notifications/message`, `notifications/progress`) are judged too,
//! every string of their `params`: one cannot be replaced by the request's
//! error without ending the request, so there `block` redacts.
//! Findings (rule, where, action; never the value) are queued in the
//! pool's [`ContentBook`](crate::content_book::ContentBook) for the proxy
//! to log and count; in shadow mode as `shadow-<action>`, changing nothing.

use policies::{DataAction, DataGuardPolicy, Policy, RuleMode};
use serde_json::{json, Value};

use super::{answers, ResponseDecision, ResponseFacts, ResponseFilter};
use crate::content_book::{clip, shown, ContentBook, Finding, MAX_SHOWN};
use crate::poisoning::ListedKind;
use crate::rejection::{Rejection, RejectionKind as K};
use crate::secrets::{self, Guard, Match};

/// Deepest nesting walked.
const MAX_DEPTH: usize = 64;

pub struct DataFilter;

/// The kind of target a method's answer is about.
fn kind_of(method: &str) -> Option<ListedKind> {
    match method {
        "tools/call" => Some(ListedKind::Tool),
        "prompts/get" => Some(ListedKind::Prompt),
        "resources/read" => Some(ListedKind::Resource),
        _ => None,
    }
}

impl ResponseFilter for DataFilter {
    fn name(&self) -> &'static str {
        "content-data"
    }

    fn wants(&self, policy: &Policy, facts: &ResponseFacts<'_>) -> bool {
        (policy.content.secrets.enabled || policy.content.pii.enabled)
            && facts.content_book.is_some()
            && kind_of(facts.method).is_some()
    }

    fn check(
        &self,
        policy: &Policy,
        facts: &ResponseFacts<'_>,
        msg: &mut Value,
    ) -> ResponseDecision {
        let (Some(book), Some(kind)) = (facts.content_book, kind_of(facts.method)) else {
            return ResponseDecision::Pass;
        };
        let notification = matches!(
            msg.get("method").and_then(Value::as_str),
            Some("notifications/message" | "notifications/progress")
        );
        if !notification && !answers(msg, facts) {
            return ResponseDecision::Pass;
        }
        let (key, all) = if notification {
            ("params", true)
        } else {
            ("result", false)
        };
        let Some(judged) = msg.get_mut(key) else {
            return ResponseDecision::Pass;
        };
        let judge = Judge {
            secrets: &policy.content.secrets,
            pii: &policy.content.pii,
            target: facts.target,
            tenant: facts.tenant,
            kind,
            book,
            block_redacts: notification,
        };
        let mut outcome = Outcome::default();
        let mut path = String::from(key);
        walk(judged, &mut path, all, 0, &mut |field, s| {
            // A notification's own fields stay as they are: the client
            // matches progress by its token.
            if notification && matches!(field, "params/progressToken" | "params/level") {
                return;
            }
            judge.string(field, s, &mut outcome)
        });
        if let Some((guard, rule)) = outcome.blocked {
            return ResponseDecision::Replace(
                Rejection::new(
                    K::ContentBlocked,
                    format!("{guard} rule {rule} blocked the answer"),
                )
                .with_rule(rule)
                .with_data(json!({ "guard": guard })),
            );
        }
        if outcome.changed {
            ResponseDecision::Rewritten
        } else {
            ResponseDecision::Pass
        }
    }
}

/// What judging a message's strings came to.
#[derive(Default)]
pub(crate) struct Outcome {
    /// The first blocking match: (guard, rule).
    pub(crate) blocked: Option<(&'static str, &'static str)>,
    /// Some string was redacted.
    pub(crate) changed: bool,
}

/// Judges strings of one message for one caller.
pub(crate) struct Judge<'a> {
    pub(crate) secrets: &'a DataGuardPolicy,
    pub(crate) pii: &'a DataGuardPolicy,
    pub(crate) target: Option<&'a str>,
    pub(crate) tenant: &'a str,
    pub(crate) kind: ListedKind,
    pub(crate) book: &'a ContentBook,
    /// `block` redacts: the message cannot be replaced (a notification).
    pub(crate) block_redacts: bool,
}

impl Judge<'_> {
    /// Finds, records and applies the rules to one string (`field` names
    /// where it is).
    pub(crate) fn string(&self, field: &str, s: &mut String, out: &mut Outcome) {
        let found = secrets::find(self.secrets, self.pii, s);
        if found.is_empty() {
            return;
        }
        let mut redact: Vec<&Match> = Vec::new();
        let mut recorded: Vec<(&'static str, &'static str)> = Vec::new();
        for m in &found {
            let g = match m.guard {
                Guard::Secrets => self.secrets,
                Guard::Pii => self.pii,
            };
            let action = match g.action_for(m.rule, &s[m.range.clone()], self.target, self.tenant) {
                DataAction::Block if self.block_redacts => DataAction::Redact,
                a => a,
            };
            if action == DataAction::Off {
                continue;
            }
            let shadow = g.mode == RuleMode::Shadow;
            let shown = shown(action.as_str(), shadow);
            // One finding per rule and action in a string, however many
            // matches.
            if !recorded.contains(&(m.rule, shown)) {
                recorded.push((m.rule, shown));
                self.book.record(Finding {
                    guard: m.guard.name(),
                    kind: self.kind,
                    name: clip(self.target.unwrap_or(""), MAX_SHOWN),
                    rule: m.rule,
                    field: clip(field, MAX_SHOWN),
                    action: shown,
                });
            }
            if shadow {
                continue;
            }
            match action {
                DataAction::Block => {
                    out.blocked.get_or_insert((m.guard.name(), m.rule));
                }
                DataAction::Redact => redact.push(m),
                DataAction::Flag | DataAction::Off => {}
            }
        }
        if !redact.is_empty() {
            *s = secrets::redact(s, &redact);
            out.changed = true;
        }
    }
}

/// Calls `f(path, string)` for every `text` string and every string inside
/// `structuredContent` (`all`), skipping `_meta`.
fn walk(
    v: &mut Value,
    path: &mut String,
    all: bool,
    depth: usize,
    f: &mut impl FnMut(&str, &mut String),
) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "_meta" {
                    continue;
                }
                let len = path.len();
                path.push('/');
                path.push_str(k);
                match x {
                    Value::String(s) if all || k == "text" => f(path, s),
                    _ => walk(x, path, all || k == "structuredContent", depth + 1, f),
                }
                path.truncate(len);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                match x {
                    Value::String(s) if all => f(path, s),
                    _ => walk(x, path, all, depth + 1, f),
                }
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// [`walk`] over every string (tool arguments).
pub(crate) fn walk_all(v: &mut Value, path: &mut String, f: &mut impl FnMut(&str, &mut String)) {
    walk(v, path, true, 0, f)
}
