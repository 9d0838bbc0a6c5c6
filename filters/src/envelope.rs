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
            .with_at("body")
            .into();
        }
        let value = match parse_strict(ex.body) {
            Ok(v) => v,
            Err(e) => {
                return Rejection::new(K::ParseError, e.detail)
                    .with_rule(e.rule)
                    .with_at("body")
                    .into()
            }
        };
        // One message is judged without a one-item list around it.
        let (single, items) = match value {
            Value::Array(items) if ex.policy.limits.allow_batches => {
                if items.is_empty() {
                    return Rejection::new(K::InvalidRequest, "empty batch")
                        .with_rule("empty-batch")
                        .with_at("body")
                        .into();
                }
                ex.batch = true;
                (None, items)
            }
            Value::Array(_) => {
                return Rejection::new(K::BatchNotAllowed, "JSON-RPC batch")
                    .with_at("body")
                    .into()
            }
            one => (Some(one), Vec::new()),
        };
        ex.messages.reserve_exact(items.len().max(1));
        for (i, item) in single.into_iter().chain(items).enumerate() {
            match Message::from_value(item) {
                Ok(m) => ex.messages.push(m),
                Err(e) => {
                    let mut r = Rejection::new(K::InvalidRequest, e.detail).with_rule(e.rule);
                    r = match (ex.batch, e.at) {
                        (true, "") => r.in_item(i),
                        (true, at) => r.with_at(at).in_item(i),
                        (false, "") => r.with_at("body"),
                        (false, at) => r.with_at(at),
                    };
                    r.id = ex.echo_id();
                    return r.into();
                }
            }
        }
        if let Some((i, dup)) = duplicate_id_in_batch(&ex.messages) {
            return Rejection::new(
                K::DuplicateRequestId,
                format!("id {dup} twice in one batch"),
            )
            .with_rule("duplicate-id-in-batch")
            .with_at("id")
            .in_item(i)
            .into();
        }
        Decision::Continue
    }
}

/// The index and id of the first request reusing an earlier request's id.
fn duplicate_id_in_batch(messages: &[Message]) -> Option<(usize, String)> {
    if messages.len() < 2 {
        return None; // no set for one message
    }
    let mut seen = std::collections::HashSet::new();
    messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.kind == crate::MessageKind::Request)
        .filter_map(|(i, m)| Some((i, m.id.as_ref()?)))
        .find(|(_, id)| !seen.insert(*id))
        .map(|(i, id)| (i, id.to_string()))
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

    fn rule_at(p: &policies::Policy, body: &[u8]) -> (&'static str, String) {
        let h = http::HeaderMap::new();
        let mut ex = Exchange::new(p, "POST", "/mcp", &h, body);
        match EnvelopeFilter.check(&mut ex) {
            Decision::Continue => panic!("accepted {}", String::from_utf8_lossy(body)),
            Decision::Reject(r) => (r.rule, r.at().unwrap_or_default().to_string()),
        }
    }

    #[test]
    fn rejections_name_rule_and_place() {
        let p = policy();
        let at = |rule: &'static str, at: &str| (rule, at.to_string());
        assert_eq!(
            rule_at(&p, br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#),
            at("duplicate-key", "body")
        );
        assert_eq!(
            rule_at(&p, br#"{"jsonrpc":"2.0","id":1,"method":"ping"} {}"#),
            at("trailing-data", "body")
        );
        assert_eq!(
            rule_at(&p, b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffng\"}"),
            at("invalid-utf8", "body")
        );
        assert_eq!(
            rule_at(&p, br#"{"jsonrpc":"2.0","id":1,"#),
            at("truncated-json", "body")
        );
        assert_eq!(
            rule_at(&p, br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#),
            at("invalid-id", "id")
        );
        assert_eq!(rule_at(&p, b"42"), at("not-an-object", "body"));
        assert_eq!(
            rule_at(&p, br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            at("batch-not-allowed", "body")
        );
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(rule_at(&p, deep.as_bytes()), at("nesting-too-deep", "body"));
    }

    #[test]
    fn batch_rejections_name_the_item() {
        let p = policy_with("[limits]\nallow_batches = true\n");
        let bad_second =
            br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":null,"method":"b"}]"#;
        assert_eq!(rule_at(&p, bad_second), ("invalid-id", "[1].id".into()));
        let not_object = br#"[{"jsonrpc":"2.0","id":1,"method":"a"},7]"#;
        assert_eq!(rule_at(&p, not_object), ("not-an-object", "[1]".into()));
        let dup = br#"[{"jsonrpc":"2.0","id":"x","method":"a"},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":"x","method":"b"}]"#;
        assert_eq!(rule_at(&p, dup), ("duplicate-id-in-batch", "[2].id".into()));
        assert_eq!(rule_at(&p, b"[]"), ("empty-batch", "body".into()));
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
