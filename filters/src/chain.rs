//! The ordered filter chain, in two phases.
//!
//! The head phase runs on the request head before any body byte is read
//! (cheap refusals, 413 from `Content-Length`). The message phase runs on the
//! whole body after the proxy looked up the session; only then is an upstream
//! contacted.

use crate::access::AccessFilter;
use crate::argument_secrets::ArgumentSecretsFilter;
use crate::auth::AuthFilter;
use crate::envelope::EnvelopeFilter;
use crate::era::EraFilter;
use crate::exchange::Exchange;
use crate::exchange::ShadowHit;
use crate::header_guard::HeaderGuardFilter;
use crate::init_gate::InitGateFilter;
use crate::modern::ModernFilter;
use crate::param_headers::ParamHeaderFilter;
use crate::path_traversal::PathTraversalFilter;
use crate::pinned_calls::PinnedCallFilter;
use crate::poisoned_calls::PoisonedCallFilter;
use crate::rejection::{Decision, Rejection};
use crate::scopes::ScopeFilter;
use crate::ssrf::SsrfFilter;
use crate::tool_schema::ToolSchemaFilter;
use crate::transport::TransportFilter;
use crate::Filter;
use policies::RuleMode;

pub struct Chain {
    head: Vec<Box<dyn Filter>>,
    message: Vec<Box<dyn Filter>>,
}

impl Chain {
    /// The protocol-safety chain, in the order each check must run.
    pub fn standard() -> Self {
        Self {
            // The header guard first: nothing reads a header's meaning before
            // the head is known to be unambiguous. Transport before auth: a
            // rebinding attempt is refused as such, whatever credentials it
            // carries.
            head: vec![
                Box::new(HeaderGuardFilter),
                Box::new(TransportFilter),
                Box::new(AuthFilter),
            ],
            // Parse, then decide the era, then apply that era's rules. The
            // content guards (paths, SSRF) need the parsed message and the
            // tenant but no session state, so they run before the session
            // gate touches any.
            message: vec![
                Box::new(EnvelopeFilter),
                Box::new(EraFilter),
                Box::new(ModernFilter),
                // Hidden targets first: a caller must not learn from a scope
                // challenge that a tool it may not see exists.
                Box::new(AccessFilter),
                // Then what the poisoning rules hid: answered the same way.
                Box::new(PoisonedCallFilter),
                Box::new(ScopeFilter),
                // Mirrored arguments against their `Mcp-Param-*` headers:
                // after access, so a hidden tool's headers are never judged.
                Box::new(ParamHeaderFilter),
                // Arguments against the tool's schema: after access (a
                // hidden tool is never judged) and before the content
                // guards, which then see only well-formed arguments.
                Box::new(PinnedCallFilter),
                Box::new(ToolSchemaFilter),
                // Secrets a call would send out (`in_arguments`).
                Box::new(ArgumentSecretsFilter),
                Box::new(PathTraversalFilter),
                Box::new(SsrfFilter),
                Box::new(InitGateFilter),
            ],
        }
    }

    /// Runs the head phase.
    pub fn check_head(&self, ex: &mut Exchange<'_>) -> Result<(), Rejection> {
        run(&self.head, ex, None)
    }

    /// Runs the message phase.
    pub fn check_message(&self, ex: &mut Exchange<'_>) -> Result<(), Rejection> {
        run(&self.message, ex, None)
    }

    /// Runs the message phase as [`Chain::check_message`] does, and says
    /// what each filter decided (for `mcpgate explain`).
    pub fn explain_message(&self, ex: &mut Exchange<'_>) -> (Vec<Step>, Result<(), Rejection>) {
        let mut steps = Vec::new();
        let verdict = run(&self.message, ex, Some(&mut steps));
        (steps, verdict)
    }
}

/// One filter's decision on one exchange.
#[derive(Debug)]
pub struct Step {
    pub filter: &'static str,
    pub outcome: StepOutcome,
}

#[derive(Debug)]
pub enum StepOutcome {
    Pass,
    /// Refused, but the filter is in shadow mode: passed.
    Shadowed(ShadowHit),
    Refused(Rejection),
}

fn run(
    filters: &[Box<dyn Filter>],
    ex: &mut Exchange<'_>,
    mut steps: Option<&mut Vec<Step>>,
) -> Result<(), Rejection> {
    let mut record = |filter, outcome| {
        if let Some(s) = steps.as_deref_mut() {
            s.push(Step { filter, outcome });
        }
    };
    for f in filters {
        let decision = f.check(ex);
        let Decision::Reject(mut r) = decision else {
            record(f.name(), StepOutcome::Pass);
            continue;
        };
        if f.mode(ex.policy) == RuleMode::Shadow {
            let at = r.at().map(|a| format!(" at {a}")).unwrap_or_default();
            let hit = ShadowHit {
                filter: f.name(),
                rule: r.rule.to_string(),
                detail: format!("{}{at}: {}", r.rule, r.detail),
            };
            record(f.name(), StepOutcome::Shadowed(hit.clone()));
            ex.shadowed.push(hit);
            continue;
        }
        r.filter = f.name();
        if r.id.is_none() {
            r.id = ex.echo_id();
        }
        record(f.name(), StepOutcome::Refused(r.clone()));
        return Err(r);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{headers, policy_with};

    fn judged(extra: &str) -> (Result<(), Rejection>, Vec<ShadowHit>) {
        let p = policy_with(extra);
        let h = headers(&[]);
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///srv/../etc/passwd"}}"#;
        let mut ex = Exchange::new(&p, "POST", "/mcp", &h, body.as_bytes());
        ex.messages =
            vec![
                crate::message::Message::from_value(serde_json::from_str(body).expect("json"))
                    .expect("message"),
            ];
        let filters: Vec<Box<dyn Filter>> = vec![Box::new(PathTraversalFilter)];
        let r = run(&filters, &mut ex, None);
        (r, ex.shadowed)
    }

    #[test]
    fn a_filter_in_shadow_mode_records_and_passes() {
        let (r, shadowed) = judged("");
        assert_eq!(r.map_err(|r| r.filter), Err("path_traversal"));
        assert!(shadowed.is_empty());
        let (r, shadowed) = judged("[paths]\nmode = \"shadow\"\n");
        assert!(r.is_ok());
        assert_eq!(shadowed.len(), 1);
        assert_eq!(shadowed[0].filter, "path_traversal");
        assert!(
            shadowed[0].detail.contains("params.uri"),
            "{:?}",
            shadowed[0]
        );
    }
}
