//! Who may call which tool, prompt or resource (`[access]`).
//!
//! Runs on the parsed messages. A `tools/call`, `prompts/get`,
//! `resources/read`, `resources/subscribe` or `resources/unsubscribe` whose
//! target the policy hides from this caller must be answered exactly as the
//! server answers a name it does not know, and servers differ (the
//! TypeScript SDK answers an unknown tool with an `isError` result, the
//! specification with a -32602 error). So the filter does not answer itself:
//! it marks the exchange [`Exchange::concealed`], and the proxy sends the
//! request on under a name no server knows, without its arguments, and puts
//! the real name back into the server's answer. The hidden target is never
//! reached, and a caller cannot tell it from one that does not exist. The log
//! names the rule. A batch (legacy, when the policy allows batches) naming a
//! hidden target is refused whole with -32602.
//!
//! What a shadow-mode rule would have refused is recorded in the exchange
//! and passes.
//!
//! The lists a caller sees are filtered on the way back, by the response
//! phase ([`crate::response::visibility`]), with the same decision.

use policies::{AccessKind, AccessPolicy};

use crate::exchange::{Concealed, Exchange, ShadowHit};
use crate::message::MessageKind;
use crate::rejection::{Decision, Rejection, RejectionKind as K};
use crate::Filter;

pub struct AccessFilter;

impl Filter for AccessFilter {
    fn name(&self) -> &'static str {
        "access"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        let access = &ex.policy.access;
        if !access.is_active() {
            return Decision::Continue;
        }
        let tenant = ex.tenant.as_deref().unwrap_or("");
        let scopes = ex.identity.as_ref().map_or(&[][..], |i| &i.scopes[..]);
        let mut shadowed = Vec::new();
        let batch = ex.batch;
        let mut concealed = None;
        for m in ex
            .messages
            .iter()
            .filter(|m| m.kind == MessageKind::Request)
        {
            // A request without its target is the server's to refuse.
            let Some(Target {
                kind,
                key,
                at,
                name: Some(name),
            }) = target_of(m.method(), m.params())
            else {
                continue;
            };
            let verdict = access.decide(kind, name, tenant, scopes);
            if let Some(rule) = verdict.shadow_denied_by {
                shadowed.push(ShadowHit {
                    filter: "access",
                    rule: AccessPolicy::rule_name(Some(rule)),
                    detail: format!("{} {name:?} for tenant {tenant}", noun(kind)),
                });
            }
            if !verdict.allowed && !batch {
                concealed = Some(Concealed {
                    kind,
                    key,
                    original: name.to_owned(),
                    rule: AccessPolicy::rule_name(verdict.rule),
                });
                continue;
            }
            if !verdict.allowed {
                return Rejection::new(
                    K::UnknownTarget,
                    format!(
                        "{} {name:?} hidden from tenant {tenant} by {}",
                        noun(kind),
                        AccessPolicy::rule_name(verdict.rule)
                    ),
                )
                .with_at(at)
                .with_message(unknown_message(kind, name))
                .concealed()
                .into();
            }
        }
        ex.shadowed.extend(shadowed);
        ex.concealed = concealed;
        Decision::Continue
    }
}

/// The request to send in place of one naming a hidden target: the same
/// message with the target replaced by `placeholder` (a name no server
/// knows) and, for a tool, no arguments (they are not the server's to see).
/// Everything else (id, `_meta`, the method) is kept, so the server answers
/// it as it answers any unknown name.
pub fn disguise(
    message: &crate::message::Message,
    concealed: &Concealed,
    placeholder: &str,
) -> Vec<u8> {
    let mut body = message.body.clone();
    if let Some(params) = body.get_mut("params").and_then(|p| p.as_object_mut()) {
        params.insert(concealed.key.into(), placeholder.into());
        if concealed.kind == AccessKind::Tool && params.contains_key("arguments") {
            params.insert("arguments".into(), serde_json::json!({}));
        }
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// What kind of target a method names, and its key in `params`.
pub fn target_kind(method: &str) -> Option<(AccessKind, &'static str)> {
    match method {
        "tools/call" => Some((AccessKind::Tool, "name")),
        "prompts/get" => Some((AccessKind::Prompt, "name")),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            Some((AccessKind::Resource, "uri"))
        }
        _ => None,
    }
}

/// The target a request names: a tool, a prompt or a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'m> {
    pub kind: AccessKind,
    /// Its key in `params`: `name` or `uri`.
    pub key: &'static str,
    /// Where it stands, for `Rejection::with_at`: `params.name` or `params.uri`.
    pub at: &'static str,
    /// The name or URI, when the request carries it as a string.
    pub name: Option<&'m str>,
}

/// The target `method` names, read from its `params`; `None` for a method
/// that names none (the one mapping the access, scope and response phases
/// share).
pub fn target_of<'m>(
    method: &str,
    params: Option<&'m serde_json::Map<String, serde_json::Value>>,
) -> Option<Target<'m>> {
    let (kind, key) = target_kind(method)?;
    Some(Target {
        kind,
        key,
        at: if key == "uri" {
            "params.uri"
        } else {
            "params.name"
        },
        name: params.and_then(|p| p.get(key)).and_then(|v| v.as_str()),
    })
}

/// The kind in words, for logs.
pub fn noun(kind: AccessKind) -> &'static str {
    match kind {
        AccessKind::Tool => "tool",
        AccessKind::Prompt => "prompt",
        AccessKind::Resource => "resource",
    }
}

/// What MCP servers answer for a name they do not know (the specification's
/// own examples: "Unknown tool: NAME"; the SDKs say the same in their words).
fn unknown_message(kind: AccessKind, name: &str) -> String {
    match kind {
        AccessKind::Tool => format!("Unknown tool: {name}"),
        AccessKind::Prompt => format!("Unknown prompt: {name}"),
        AccessKind::Resource => format!("Resource not found: {name}"),
    }
}

#[cfg(test)]
mod tests;
