//! What the filters look at: one HTTP exchange and what is known about it.

use std::sync::Arc;

use http::HeaderMap;
use policies::{AuthMethod, Policy, TenantName};

use crate::jwt::{JwtError, VerifiedToken};
use crate::message::{Message, RequestId};

/// Verifies bearer tokens for the auth filter: the proxy's key set, clock
/// and cache of tokens already verified (no I/O: keys are fetched ahead).
pub trait TokenVerifier: Send + Sync {
    fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, JwtError>;
}

pub use crate::tool_schema::ToolSchemas;

/// Who the caller is, as the auth filter established it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub method: AuthMethod,
    /// The token's `sub`, or the client certificate's first identity; none
    /// for API keys and the anonymous tenant.
    pub subject: Option<String>,
    /// The token's scopes (empty for other methods).
    pub scopes: Vec<String>,
}

/// Which protocol revision family a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// Not decided yet (before the era filter ran).
    Unknown,
    /// Stateful: 2025-11-25 and older, with `initialize` and sessions.
    Legacy,
    /// Stateless: 2026-07-28 and newer, `_meta` on every request.
    Modern,
}

/// Where a legacy session is in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// The initialize response was relayed; `notifications/initialized` not yet seen.
    AwaitingInitialized,
    /// Handshake complete.
    Ready,
}

/// What the proxy's session store tells the filters about one session.
pub trait SessionView {
    fn state(&self) -> SessionState;
    /// Version the server answered in `initialize`.
    fn negotiated_version(&self) -> &str;
    /// Whether a client request with this id is still being answered.
    fn is_in_flight(&self, id: &RequestId) -> bool;
}

/// Result of looking up the request's `Mcp-Session-Id`.
pub enum SessionLookup<'a> {
    /// No session header.
    NoneGiven,
    /// A session header naming no live session of this tenant.
    Unknown,
    /// A live session of this tenant.
    Found(&'a dyn SessionView),
}

/// One client request under inspection.
pub struct Exchange<'a> {
    pub policy: &'a Policy,
    /// HTTP method, upper case.
    pub method: &'a str,
    /// Request path without the query.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// The request head exactly as received (HTTP/1: request line, header
    /// lines, blank line); empty when the proxy cannot provide it. The header
    /// guard reads it for what `headers` no longer shows (duplicates the
    /// HTTP parser merged or dropped, line endings, folding).
    pub raw_head: &'a [u8],
    /// Whole request body (empty in the header-only phase).
    pub body: &'a [u8],
    /// Filled by the proxy between the header and the message phase.
    pub session: SessionLookup<'a>,
    /// The query string of the request target, without `?` (empty: none).
    pub query: &'a str,
    /// Identities of the client certificate the TLS handshake verified.
    pub client_cert: Option<&'a [String]>,
    /// Verifies JWT bearer tokens (`[auth.jwt]`); `None` when not configured.
    pub tokens: Option<&'a dyn TokenVerifier>,
    /// The compiled `inputSchema` of each tool the proxy saw listed
    /// (`[tools] validate_arguments`); `None` when validation is off.
    pub tool_schemas: Option<&'a dyn ToolSchemas>,
    /// The pins of the pool the request goes to (`[tools] lock_file` or
    /// `pin`), for calls of tools whose listed definition changed.
    pub pins: Option<&'a crate::pins::PinBook>,
    /// The `x-mcp-header` declarations of the pool's tools, for the
    /// `Mcp-Param-*` check; `None`: not checked.
    pub param_headers: Option<&'a crate::param_headers::ParamHeaderBook>,
    /// The definitions the pool's poisoning rules hid
    /// (`[content.poisoning]`); `None` when the rules are off.
    pub content_book: Option<&'a crate::content_book::ContentBook>,
    /// Set by a filter that changed the parsed messages (a secret redacted
    /// from arguments): the proxy sends them re-serialised instead of the
    /// bytes the client sent.
    pub rewritten: bool,
    /// Set by the auth filter.
    pub tenant: Option<TenantName>,
    /// Set by the auth filter.
    pub identity: Option<Identity>,
    /// Set by the envelope filter: one message, or several for an allowed batch.
    pub messages: Vec<Message>,
    /// Whether the body was a JSON array.
    pub batch: bool,
    /// Set by the era filter.
    pub era: Era,
    /// What shadow-mode rules would have refused: the proxy logs and counts
    /// each, and changes nothing.
    pub shadowed: Vec<ShadowHit>,
    /// Set by the access filter: the request names a target hidden from this
    /// caller. The proxy sends it on under a name no server knows and puts
    /// the real name back into the answer, so the caller gets exactly what
    /// the server says of an unknown target.
    pub concealed: Option<Concealed>,
}

/// A hidden target a request names (see [`Exchange::concealed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concealed {
    pub kind: policies::AccessKind,
    /// Its key in `params`: `name` or `uri`.
    pub key: &'static str,
    /// The name or URI the client sent.
    pub original: String,
    /// The rule that hides it (`access.rules[2]`, `access.default`).
    pub rule: String,
}
/// A refusal a shadow-mode rule would have made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowHit {
    /// Filter whose rule fired.
    pub filter: &'static str,
    /// The rule, as the policy names it (`access.rules[2]`).
    pub rule: String,
    /// What it would have refused, for the log.
    pub detail: String,
}

impl<'a> Exchange<'a> {
    /// An exchange with nothing derived yet.
    pub fn new(
        policy: &'a Policy,
        method: &'a str,
        path: &'a str,
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> Self {
        Self {
            policy,
            method,
            path,
            headers,
            raw_head: b"",
            body,
            session: SessionLookup::NoneGiven,
            query: "",
            client_cert: None,
            tokens: None,
            tool_schemas: None,
            pins: None,
            param_headers: None,
            content_book: None,
            rewritten: false,
            tenant: None,
            identity: None,
            messages: Vec::new(),
            batch: false,
            era: Era::Unknown,
            shadowed: Vec::new(),
            concealed: None,
        }
    }

    /// The first (usually only) message.
    pub fn message(&self) -> Option<&Message> {
        self.messages.first()
    }

    /// The id to echo in a rejection: the message's, when there is one message.
    pub fn echo_id(&self) -> Option<RequestId> {
        match self.messages.as_slice() {
            [m] => m.id.clone(),
            _ => None,
        }
    }
}
