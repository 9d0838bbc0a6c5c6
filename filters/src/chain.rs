//! The ordered filter chain, in two phases.
//!
//! The head phase runs on the request head before any body byte is read
//! (cheap refusals, 413 from `Content-Length`). The message phase runs on the
//! whole body after the proxy looked up the session; only then is an upstream
//! contacted.

use crate::auth::AuthFilter;
use crate::envelope::EnvelopeFilter;
use crate::era::EraFilter;
use crate::exchange::Exchange;
use crate::init_gate::InitGateFilter;
use crate::modern::ModernFilter;
use crate::rejection::{Decision, Rejection};
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
            // Transport before auth: a rebinding attempt is refused as such,
            // whatever credentials it carries.
            head: vec![Box::new(TransportFilter), Box::new(AuthFilter)],
            // Parse, then decide the era, then apply that era's rules.
            message: vec![
                Box::new(EnvelopeFilter),
                Box::new(EraFilter),
                Box::new(ModernFilter),
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
