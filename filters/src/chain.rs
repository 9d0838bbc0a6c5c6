//! The ordered filter chain, in two phases.
//!
//! The head phase runs on the request head before any body byte is read
//! (cheap refusals, 413 from `Content-Length`). The message phase runs on the
//! whole body after the proxy looked up the session; only then is an upstream
//! contacted.

use crate::access::AccessFilter;
use crate::auth::AuthFilter;
use crate::envelope::EnvelopeFilter;
use crate::era::EraFilter;
use crate::exchange::Exchange;
use crate::header_guard::HeaderGuardFilter;
use crate::init_gate::InitGateFilter;
use crate::modern::ModernFilter;
use crate::path_traversal::PathTraversalFilter;
use crate::rejection::{Decision, Rejection};
use crate::scopes::ScopeFilter;
use crate::ssrf::SsrfFilter;
use crate::tool_schema::ToolSchemaFilter;
use crate::transport::TransportFilter;
use crate::Filter;

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
                Box::new(ScopeFilter),
                // Arguments against the tool's schema: after access (a
                // hidden tool is never judged) and before the content
                // guards, which then see only well-formed arguments.
                Box::new(ToolSchemaFilter),
                Box::new(PathTraversalFilter),
                Box::new(SsrfFilter),
                Box::new(InitGateFilter),
            ],
        }
    }

    /// Runs the head phase.
    pub fn check_head(&self, ex: &mut Exchange<'_>) -> Result<(), Rejection> {
        run(&self.head, ex)
    }

    /// Runs the message phase.
    pub fn check_message(&self, ex: &mut Exchange<'_>) -> Result<(), Rejection> {
        run(&self.message, ex)
    }
}

fn run(filters: &[Box<dyn Filter>], ex: &mut Exchange<'_>) -> Result<(), Rejection> {
    for f in filters {
        if let Decision::Reject(mut r) = f.check(ex) {
            r.filter = f.name();
            if r.id.is_none() {
                r.id = ex.echo_id();
            }
            return Err(r);
        }
    }
    Ok(())
}
