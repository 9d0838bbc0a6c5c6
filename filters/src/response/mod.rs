//! The response phase: pure filters over what a server sends.
//!
//! The request chain judges what clients send; this phase judges each
//! message a server sends back — a JSON body, or one SSE event's data as it
//! arrives — with the request's facts at hand (method, target, tenant,
//! subject, scopes, era, request id). A filter passes a message, rewrites it
//! in place, or replaces it with an error. No I/O, no buffering beyond the
//! one message the proxy hands over.
//!
//! A method no response filter wants is relayed without being parsed at all
//! ([`ResponseChain::wants`]): governance costs nothing where it has nothing
//! to say.

pub mod data;
pub mod output_schema;
pub mod pinning;
pub mod poisoning;
pub mod stream;
pub mod unmask;
pub mod visibility;

use policies::Policy;
use serde_json::Value;

use crate::exchange::Era;
use crate::message::RequestId;
use crate::rejection::Rejection;

/// What the response filters know about the request being answered.
#[derive(Debug, Clone, Copy)]
pub struct ResponseFacts<'a> {
    /// The request's JSON-RPC method (`tools/list`).
    pub method: &'a str,
    /// The request's target: tool or prompt name, resource URI.
    pub target: Option<&'a str>,
    pub tenant: &'a str,
    /// The verified subject (token `sub`, certificate identity), if any.
    pub subject: Option<&'a str>,
    /// The token's scopes (empty for other credentials).
    pub scopes: &'a [String],
    pub era: Era,
    /// The request's id: the answer to it carries the same one.
    pub request_id: Option<&'a RequestId>,
    /// A hidden target sent on under a placeholder: `(placeholder, original)`
    /// (see [`crate::Exchange::concealed`]).
    pub concealed: Option<(&'a str, &'a str)>,
    /// The pins of the pool that answers (`[tools] lock_file` or `pin`).
    pub pins: Option<&'a crate::pins::PinBook>,
    /// The compiled `outputSchema`s of the pool's tools
    /// (`[content.output_schema]`).
    pub output_schemas: Option<&'a crate::tool_schema::SchemaCatalog>,
    /// The poisoning book of the pool that answers (`[content.poisoning]`).
    pub content_book: Option<&'a crate::content_book::ContentBook>,
}

/// One response filter's verdict on one message.
#[derive(Debug)]
pub enum ResponseDecision {
    /// Unchanged.
    Pass,
    /// The filter changed the message in place.
    Rewritten,
    /// Send this error (with the request's id) instead of the message.
    Replace(Rejection),
}

/// A check on what a server sends.
pub trait ResponseFilter: Send + Sync {
    /// Short name for logs and metrics.
    fn name(&self) -> &'static str;
    /// Whether this answer needs this filter under `policy`.
    fn wants(&self, policy: &Policy, facts: &ResponseFacts<'_>) -> bool;
    /// Judges one message, rewriting it in place when it returns
    /// [`ResponseDecision::Rewritten`].
    fn check(
        &self,
        policy: &Policy,
        facts: &ResponseFacts<'_>,
        msg: &mut Value,
    ) -> ResponseDecision;
}

/// The outcome for one message's bytes.
#[derive(Debug)]
pub enum Judged {
    /// Send the bytes as they came.
    Unchanged,
    /// Send these bytes instead.
    Rewritten(Vec<u8>),
    /// Send this error instead (its id is the request's).
    Replaced(Rejection),
}

/// The response filters, in order.
pub struct ResponseChain {
    filters: Vec<Box<dyn ResponseFilter>>,
}

impl ResponseChain {
    /// Every response filter mcpgate has.
    pub fn standard() -> Self {
        Self {
            // Pins first: every listed entry is judged against its pin,
            // also those this caller will not see.
            filters: vec![
                Box::new(pinning::PinningFilter),
                Box::new(poisoning::PoisoningFilter),
                Box::new(visibility::VisibilityFilter),
                Box::new(output_schema::OutputSchemaFilter),
                Box::new(data::DataFilter),
            ],
        }
    }

    /// Whether this answer must be read and judged at all. A `tools/list`
    /// answer is also read when arguments are validated: the proxy learns
    /// the tools' schemas from it (see [`crate::tool_schema::catalog`]).
    pub fn wants(&self, policy: &Policy, facts: &ResponseFacts<'_>) -> bool {
        facts.concealed.is_some()
            || ((policy.tools.validate_arguments || policy.content.output_schema.enabled)
                && facts.method == "tools/list")
            || self.filters.iter().any(|f| f.wants(policy, facts))
    }

    /// Judges one message: a JSON body or one SSE event's data. Bytes that
    /// are not a JSON object (keep-alive comments, a server's garbage) pass
    /// unchanged: the client's SDK judges them as before.
    pub fn judge(&self, policy: &Policy, facts: &ResponseFacts<'_>, bytes: &[u8]) -> Judged {
        // First, byte for byte: the server's answer about a hidden target
        // must reach the client exactly as the server wrote it.
        let unmasked = facts
            .concealed
            .and_then(|(placeholder, original)| unmask::unmask(bytes, placeholder, original));
        let bytes = unmasked.as_deref().unwrap_or(bytes);
        let unchanged = || match &unmasked {
            Some(b) => Judged::Rewritten(b.clone()),
            None => Judged::Unchanged,
        };
        if !self.filters.iter().any(|f| f.wants(policy, facts)) {
            return unchanged();
        }
        let Ok(mut msg) = serde_json::from_slice::<Value>(bytes) else {
            return unchanged();
        };
        if !msg.is_object() {
            return unchanged();
        }
        let mut rewritten = false;
        for f in self.filters.iter().filter(|f| f.wants(policy, facts)) {
            match f.check(policy, facts, &mut msg) {
                ResponseDecision::Pass => {}
                ResponseDecision::Rewritten => rewritten = true,
                ResponseDecision::Replace(mut r) => {
                    r.filter = f.name();
                    if r.id.is_none() {
                        r.id = facts.request_id.cloned();
                    }
                    return Judged::Replaced(r);
                }
            }
        }
        if rewritten {
            Judged::Rewritten(serde_json::to_vec(&msg).unwrap_or_default())
        } else {
            unchanged()
        }
    }
}

/// Whether `msg` is the answer (result or error) to the request `facts`
/// describe.
pub fn answers(msg: &Value, facts: &ResponseFacts<'_>) -> bool {
    let Some(want) = facts.request_id else {
        return false;
    };
    msg.get("id")
        .and_then(RequestId::from_json)
        .is_some_and(|id| &id == want)
}

#[cfg(test)]
mod tests;
