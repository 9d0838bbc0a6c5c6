//! JSON-RPC envelope: strict JSON, bounded nesting, one message unless the
//! policy allows batches, and id rules.

use serde_json::Value;

use crate::exchange::Exchange;
use crate::message::{nesting_depth, parse_strict, Message};
use crate::rejection::{Decision, Rejection, RejectionKind as K};
use crate::Filter;

pub struct EnvelopeFilter;

impl Filter for EnvelopeFilter {
    fn name(&self) -> &'static str {
        "envelope"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        if ex.method != "POST" {
            return Decision::Continue;
        }
        let limit = ex.policy.limits.max_json_depth;
        if nesting_depth(ex.body, limit) > limit {
            return Rejection::new(
                K::NestingTooDeep,
                format!("JSON nested deeper than {limit}"),
            )
            .into();
        }
        let value = match parse_strict(ex.body) {
            Ok(v) => v,
            Err(e) => return Rejection::new(K::ParseError, e).into(),
        };
        let items = match value {
            Value::Array(items) if ex.policy.limits.allow_batches => {
                if items.is_empty() {
                    return Rejection::new(K::InvalidRequest, "empty batch").into();
                }
                ex.batch = true;
                items
            }
            Value::Array(_) => return Rejection::new(K::BatchNotAllowed, "JSON-RPC batch").into(),
            one => vec![one],
        };
        for item in items {
            match Message::from_value(item) {
                Ok(m) => ex.messages.push(m),
                Err(e) => {
                    let mut r = Rejection::new(K::InvalidRequest, e);
                    r.id = ex.echo_id();
                    return r.into();
                }
            }
        }
        if let Some(dup) = duplicate_id_in_batch(&ex.messages) {
            return Rejection::new(
                K::DuplicateRequestId,
                format!("id {dup} twice in one batch"),
            )
            .into();
        }
        Decision::Continue
    }
}

fn duplicate_id_in_batch(messages: &[Message]) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    messages
        .iter()
        .filter(|m| m.kind == crate::MessageKind::Request)
        .filter_map(|m| m.id.as_ref())
        .find(|id| !seen.insert(*id))
        .map(|id| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{policy, policy_with};

    fn run(p: &policies::Policy, body: &str) -> Result<usize, K> {
        let h = http::HeaderMap::new();
        let mut ex = Exchange::new(p, "POST", "/mcp", &h, body.as_bytes());
        match EnvelopeFilter.check(&mut ex) {
            Decision::Continue => Ok(ex.messages.len()),
            Decision::Reject(r) => Err(r.kind),
        }
    }

    #[test]
    fn one_strict_message() {
        let p = policy();
        assert_eq!(
            run(&p, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Ok(1)
        );
        assert_eq!(
            run(&p, r#"{"jsonrpc":"2.0","id":1,"method":"ping""#),
            Err(K::ParseError)
        );
        assert_eq!(
            run(&p, r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#),
            Err(K::ParseError)
        );
        assert_eq!(
            run(&p, r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            Err(K::InvalidRequest)
        );
        assert_eq!(
            run(&p, r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            Err(K::BatchNotAllowed)
        );
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(run(&p, &deep), Err(K::NestingTooDeep));
    }

    #[test]
    fn batches_when_allowed() {
        let p = policy_with("[limits]\nallow_batches = true\n");
        let two = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"n"}]"#;
        assert_eq!(run(&p, two), Ok(2));
        assert_eq!(run(&p, "[]"), Err(K::InvalidRequest));
        let dup =
            r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":1,"method":"b"}]"#;
        assert_eq!(run(&p, dup), Err(K::DuplicateRequestId));
    }
}
