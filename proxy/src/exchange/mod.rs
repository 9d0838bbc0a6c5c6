//! The exchange: one MCP request from head to answer (the second stage,
//! and the orchestration of the ones after it).
//!
//! [`handler`] runs the head phase of the filter chain (JWT access tokens
//! verified through [`tokens`]), reads the whole body, hands a request for a
//! session that another worker owns to that worker (`sessions::owner`),
//! runs the message phase ([`admit`]) and passes what was admitted on to
//! forwarding. [`respond`] writes mcpgate's own answers for every stage:
//! refusals, and the error events of a stream that failed.
//!
//! Hands on: an `Admitted` request (tenant, principal, session, in-flight
//! ids, the facts forwarding needs) to the upstream stage
//! (`upstream::forward`). Gives back to the accept layer whether the
//! connection can be reused, or a held stream.

mod admit;
pub(crate) mod gathered;
pub(crate) mod handler;
pub(crate) mod respond;
pub(crate) mod tokens;
