#![forbid(unsafe_code)]
//! The mcpgate filter chain: pure, synchronous checks on one MCP exchange.
//!
//! Nothing here does I/O or knows about pingora. The proxy hands a filter an
//! [`Exchange`] (HTTP method, path, headers, body and what it knows of the
//! session) and gets back one [`Decision`]. Every rejection is a
//! [`RejectionKind`], and [`RejectionKind::wire`] is the one exhaustive mapping
//! to what the client sees (HTTP status, JSON-RPC code, `Retry-After`).

pub mod access;
pub mod argument_secrets;
pub mod auth;
pub mod chain;
pub mod content_book;
pub mod envelope;
pub mod era;
pub mod exchange;
pub mod header_guard;
pub mod header_values;
pub mod init_gate;
pub mod jwt;
pub mod message;
pub mod modern;
pub mod param_headers;
pub mod path_canon;
pub mod path_traversal;
pub mod pinned_calls;
pub mod pins;
pub mod poisoned_calls;
pub mod poisoning;
pub mod rejection;
pub mod response;
pub mod scopes;
pub mod secrets;
pub mod sse;
pub mod ssrf;
pub mod tool_args;
pub mod tool_schema;
pub mod transport;

#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod testutil;

pub use chain::{Chain, Step, StepOutcome};
pub use content_book::ContentBook;
pub use exchange::{
    Concealed, Era, Exchange, Identity, SessionLookup, SessionState, SessionView, ShadowHit,
    TokenVerifier,
};
pub use message::{Message, MessageKind, RequestId};
pub use param_headers::ParamHeaderBook;
pub use pins::{PinBook, PinKind};
pub use rejection::{Decision, Rejection, RejectionKind, WireError};
pub use response::stream::{MessageStream, StreamStats};
pub use response::{Judged, ResponseChain, ResponseFacts};
pub use tool_schema::{SchemaCatalog, SchemaLookup, ToolSchemas};

/// One check in the chain.
///
/// A filter reads the exchange, may record what it learned in it (the parsed
/// message, the tenant, the era) and returns one decision.
pub trait Filter: Send + Sync {
    /// Short name used in logs and metrics when this filter rejects.
    fn name(&self) -> &'static str;
    /// Judges the exchange.
    fn check(&self, ex: &mut Exchange<'_>) -> Decision;
    /// `Shadow` when the policy puts this filter in shadow mode: what it
    /// refuses is recorded ([`Exchange::shadowed`]) and passes.
    fn mode(&self, _policy: &policies::Policy) -> policies::RuleMode {
        policies::RuleMode::Enforce
    }
}
