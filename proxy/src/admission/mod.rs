//! Admission: what may reach an upstream at all, decided before any
//! upstream contact.
//!
//! [`ratelimit`] says when a tenant, session or tool is over its rate
//! (answered 429 at once, with `Retry-After`); [`caps`] bounds the requests
//! in flight (globally and per tenant, shed at once with 503; per tenant and
//! pool, a bulkhead that waits a bounded time) and the long-lived streams.
//! Forwarding asks both before it takes any upstream connection.
//!
//! Hands on: a held slot (`caps::Held`) that forwarding keeps for the
//! request's life, or for a long-lived stream's in its held stream; the
//! slot is freed when it is dropped.

pub(crate) mod caps;
pub(crate) mod fair;
pub(crate) mod ratelimit;
