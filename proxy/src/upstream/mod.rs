//! Upstream: an admitted request to an endpoint, and its answer back.
//!
//! [`forward`] applies the rate limits and admission caps, picks an
//! endpoint of the request's [`pool`] (sticky for a session, round-robin
//! otherwise, health and the endpoint's circuit breaker permitting), sends
//! the request through the endpoint's [`client`] (with mcpgate's own
//! credentials for the upstream, never the client's), and hands the response
//! to the [`relay`]. The relay writes it downstream as it arrives, watching
//! for a legacy `initialize` result (which creates the session), progress
//! and the request's deadline. A long-lived stream, once its head is
//! written, becomes a [`held`] stream: the rest is relayed by the accept
//! layer without the handler's state. Long-lived responses are read by the
//! module `h1_stream`, without pingora's per-response buffer.
//!
//! Hands back: whether the client connection can be reused, or the held
//! stream; and, to each endpoint's breaker and health, how the exchange
//! ended.

mod breaker;
pub(crate) mod client;
mod connector;
mod credentials;
pub(crate) mod forward;
mod h1_stream;
pub(crate) mod held;
mod inspect;
pub(crate) mod pins;
pub(crate) mod pool;
mod relay;
pub(crate) use relay::report_findings;
pub(crate) mod stdio;
