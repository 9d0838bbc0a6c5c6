//! Results held to their contract (`[content.output_schema]`): a
//! `tools/call` result's `structuredContent` against the tool's
//! `outputSchema`, as the pool last listed it (the proxy learns the
//! schemas from the listings it relays, compiled by the validator of
//! argument validation: [`crate::tool_schema`]).
//!
//! `isError` results are exempt. A tool that declares an `outputSchema` and
//! returns no `structuredContent` breaks its contract too (the
//! specification: servers MUST provide structured results that conform). A
//! tool never listed, or whose schema could not be compiled, is not judged.
//! `block` replaces the result with [`RejectionKind::ContentBlocked`]
//! (rule `output-schema`, `error.data` naming the pointer and keyword,
//! never the value); `flag` passes it. Each finding is queued in the pool's
//! [`ContentBook`](crate::content_book::ContentBook); shadow mode counts
//! `shadow-<action>` and changes nothing.

use policies::{ContractAction, Policy, RuleMode};
use serde_json::{json, Value};

use super::{answers, ResponseDecision, ResponseFacts, ResponseFilter};
use crate::content_book::{clip, shown, Finding, MAX_SHOWN};
use crate::poisoning::ListedKind;
use crate::rejection::{Rejection, RejectionKind as K};
use crate::tool_schema::{SchemaLookup, ToolSchemas};

pub struct OutputSchemaFilter;

const RULE: &str = "output-schema";

impl ResponseFilter for OutputSchemaFilter {
    fn name(&self) -> &'static str {
        "content-output-schema"
    }

    fn wants(&self, policy: &Policy, facts: &ResponseFacts<'_>) -> bool {
        policy.content.output_schema.enabled
            && facts.method == "tools/call"
            && facts.output_schemas.is_some()
            && facts.content_book.is_some()
    }

    fn check(
        &self,
        policy: &Policy,
        facts: &ResponseFacts<'_>,
        msg: &mut Value,
    ) -> ResponseDecision {
        let (Some(schemas), Some(book), Some(tool)) =
            (facts.output_schemas, facts.content_book, facts.target)
        else {
            return ResponseDecision::Pass;
        };
        if !answers(msg, facts) {
            return ResponseDecision::Pass;
        }
        let Some(result) = msg.get("result") else {
            return ResponseDecision::Pass;
        };
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            return ResponseDecision::Pass;
        }
        let SchemaLookup::Ready(schema) = schemas.validator(tool) else {
            return ResponseDecision::Pass;
        };
        let (pointer, keyword) = match result.get("structuredContent") {
            None => (String::new(), "missing".to_owned()),
            Some(v) => match schema.check(v) {
                None => return ResponseDecision::Pass,
                Some(violation) => (violation.pointer, violation.keyword),
            },
        };
        let p = &policy.content.output_schema;
        let shadow = p.mode == RuleMode::Shadow;
        book.record(Finding {
            guard: "output-schema",
            kind: ListedKind::Tool,
            name: clip(tool, MAX_SHOWN),
            rule: RULE,
            field: clip(
                &format!("result/structuredContent{pointer} ({keyword})"),
                MAX_SHOWN,
            ),
            action: shown(p.action.as_str(), shadow),
        });
        if shadow || p.action == ContractAction::Flag {
            return ResponseDecision::Pass;
        }
        ResponseDecision::Replace(
            Rejection::new(
                K::ContentBlocked,
                format!("tool {tool:?}: structuredContent fails its outputSchema ({keyword} at {pointer:?})"),
            )
            .with_rule(RULE)
            .with_data(json!({ "pointer": clip(&pointer, 256), "keyword": keyword })),
        )
    }
}
