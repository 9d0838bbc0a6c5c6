//! Why a message was refused, and the one mapping to what goes on the wire.
//!
//! Every rejection names the rule that fired (a kebab-case name mcpgate
//! defines, stable across releases) and, where known, where it fired: a JSON
//! path of the message (`params.uri`, `params.arguments.path`, `[1].id` in a
//! batch), `header:NAME` for a header mcpgate knows by name, or one of
//! `headers`, `head`, `request-line`, `path`, `method`, `body`. Both go to the
//! client in `error.data` (`{"rule": ..., "at": ...}`) and to the log. Neither
//! ever carries a byte the client sent: the offending value stays in the
//! log-only `detail`.

use std::borrow::Cow;

use serde_json::Value;

use crate::message::RequestId;

/// What a filter decided.
#[derive(Debug)]
pub enum Decision {
    /// Let the exchange go on to the next filter.
    Continue,
    /// Refuse it; nothing of it reaches an upstream.
    Reject(Rejection),
}

/// Every reason mcpgate refuses a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// Request path is not the MCP endpoint.
    PathNotFound,
    /// HTTP method not used by the transport (or not by this revision).
    MethodNotAllowed,
    /// `Accept` lacks a media type the transport requires.
    NotAcceptable,
    /// `Content-Type` is not `application/json`.
    UnsupportedMediaType,
    /// Body larger than the policy limit.
    PayloadTooLarge,
    /// `Host` is not in the allowlist (DNS-rebinding defence).
    HostNotAllowed,
    /// `Origin` is not in the allowlist (DNS-rebinding defence).
    OriginNotAllowed,
    /// A header is malformed or a singleton header is repeated.
    MalformedHeader,
    /// No valid API key and no anonymous tenant.
    Unauthenticated,
    /// Body is not strict JSON.
    ParseError,
    /// Body is JSON but not a valid JSON-RPC message.
    InvalidRequest,
    /// A JSON array of messages while batches are off.
    BatchNotAllowed,
    /// JSON nested deeper than the policy allows.
    NestingTooDeep,
    /// A request id already in flight on this session.
    DuplicateRequestId,
    /// A legacy request other than `initialize`/`ping` without a session.
    SessionRequired,
    /// Unknown, ended or foreign session id.
    SessionNotFound,
    /// A request before `notifications/initialized`.
    NotInitialized,
    /// A second `initialize` on a session.
    AlreadyInitialized,
    /// `initialize` asks for a version outside the legacy allowlist.
    UnsupportedLegacyVersion,
    /// `MCP-Protocol-Version` differs from the negotiated version.
    ProtocolVersionMismatch,
    /// A 2026-07-28 routing header is missing or disagrees with the body.
    HeaderMismatch,
    /// Header and body claim different protocol eras.
    EraConflict,
    /// Required `_meta` keys missing from a stateless request.
    MissingMeta,
    /// Stateless request version outside the modern allowlist.
    UnsupportedModernVersion,
    /// A client posted a JSON-RPC response where none is allowed.
    ResponseNotAllowed,
    /// A method that does not exist in the request's revision.
    MethodNotFound,
    /// Too many sessions or in-flight requests (load shedding).
    Overloaded,
    /// Over a rate limit (load shedding).
    RateLimited,
    /// The endpoint's circuit breaker is open: no upstream contact.
    CircuitOpen,
    /// The upstream could not be reached or failed mid-exchange.
    UpstreamUnavailable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The request head carries bytes or a shape that could inject or split
    /// headers: CR, LF, NUL or other control bytes, bare line ends, obsolete
    /// line folding, invalid header names, a malformed request line, or a
    /// `Connection` header naming an end-to-end header.
    HeaderInjection,
    /// The request head, or one header line, is over the `[headers]` limits.
    HeaderTooLarge,
    /// Body framing that two parsers could read differently (request
    /// smuggling): `Content-Length` with `Transfer-Encoding`, repeated or
    /// unsupported `Transfer-Encoding`, a malformed or repeated `Content-Length`.
    AmbiguousFraming,
    /// A URI or path argument traverses, or leaves the allowed schemes/roots.
    PathNotAllowed,
    /// A URL argument names a scheme or host the SSRF policy refuses.
    UrlNotAllowed,
    /// A valid token lacks a scope the method or tool needs (`[auth.scopes]`):
    /// 403 with a step-up challenge naming every scope needed.
    InsufficientScope,
    /// The tool, prompt or resource is hidden from this caller (`[access]`):
    /// answered as a server answers a name it does not know (200, -32602,
    /// no `error.data`), so its existence does not leak. The log says why.
    UnknownTarget,
    /// A `tools/call`'s arguments fail the tool's own `inputSchema` (or
    /// its schema could not be compiled and the policy refuses such calls):
    /// 400, -32602, `error.data` names the failing pointer and keyword,
    /// never the value.
    InvalidArguments,
    /// One message a server sent (a JSON body, one SSE event) is over the
    /// size the response phase reads: replaced by this error, counted.
    ResponseTooLarge,
    /// A call of a tool or prompt whose listed definition is not the
    /// approved (pinned) one, under `[tools] on_change = "block"`.
    DefinitionNotApproved,
    /// A server message that carried a secret or personal data a
    /// `[content.secrets]` / `[content.pii]` rule blocks: replaced by this
    /// error (502, -32017); the value is never echoed.
    ContentBlocked,
    /// The server's only answer (a JSON body) answers another id, or the
    /// same id twice: replaced by this error with the request's id.
    UnsolicitedResponse,
    /// An answer passed a `[content.limits]` cap (a message over
    /// `max_result_bytes`, more than `max_stream_events` messages): the
    /// client gets this error in its place, the server a cancellation.
    ResultOverCap,
}

/// How a rejection looks on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError {
    pub status: u16,
    pub code: i32,
    /// Seconds for `Retry-After`, where a retry can succeed.
    pub retry_after: Option<u32>,
    /// Value of the `Allow` header (405 only).
    pub allow: Option<&'static str>,
    /// Generic message for the client; the log carries the detail.
    pub message: &'static str,
    /// Close the connection after answering: the rest of the byte stream
    /// cannot be trusted to start a new request.
    pub close: bool,
}

impl RejectionKind {
    /// The single exhaustive mapping from rejection to HTTP and JSON-RPC.
    pub fn wire(self) -> WireError {
        use RejectionKind as K;
        let (status, code, message) = match self {
            K::PathNotFound => (404, -32600, "Not found"),
            K::MethodNotAllowed => (405, -32600, "Method not allowed"),
            K::NotAcceptable => (
                406,
                -32600,
                "Not acceptable: Accept must list application/json and text/event-stream",
            ),
            K::UnsupportedMediaType => (
                415,
                -32600,
                "Unsupported media type: Content-Type must be application/json",
            ),
            K::PayloadTooLarge => (413, -32600, "Payload too large"),
            K::HostNotAllowed => (403, -32600, "Forbidden: Host not allowed"),
            K::OriginNotAllowed => (403, -32600, "Forbidden: Origin not allowed"),
            K::MalformedHeader => (400, -32600, "Bad request: malformed header"),
            K::Unauthenticated => (401, -32010, "Unauthorized"),
            K::ParseError => (400, -32700, "Parse error"),
            K::InvalidRequest => (400, -32600, "Invalid request"),
            K::BatchNotAllowed => (400, -32600, "Invalid request: batches are not supported"),
            K::NestingTooDeep => (400, -32600, "Invalid request: nesting too deep"),
            K::DuplicateRequestId => (400, -32600, "Invalid request: request id already in flight"),
            K::SessionRequired => (400, -32600, "Bad request: missing session id"),
            K::SessionNotFound => (404, -32001, "Session not found"),
            K::NotInitialized => (400, -32600, "Bad request: session not initialized"),
            K::AlreadyInitialized => (400, -32600, "Invalid request: session already initialized"),
            K::UnsupportedLegacyVersion => (400, -32602, "Unsupported protocol version"),
            K::ProtocolVersionMismatch => (
                400,
                -32600,
                "Bad request: MCP-Protocol-Version does not match the session",
            ),
            K::HeaderMismatch => (400, -32020, "Header mismatch"),
            K::EraConflict => (
                400,
                -32020,
                "Header mismatch: header and body name different protocol revisions",
            ),
            K::MissingMeta => (400, -32602, "Invalid params: missing required _meta"),
            K::UnsupportedModernVersion => (400, -32022, "Unsupported protocol version"),
            K::ResponseNotAllowed => (
                400,
                -32600,
                "Invalid request: responses are not accepted here",
            ),
            K::MethodNotFound => (404, -32601, "Method not found"),
            K::Overloaded => (503, -32013, "Service overloaded, retry later"),
            K::RateLimited => (429, -32014, "Rate limit exceeded, retry later"),
            K::CircuitOpen => (
                503,
                -32015,
                "Upstream temporarily unavailable (circuit open), retry later",
            ),
            K::UpstreamUnavailable => (502, -32603, "Upstream unavailable"),
            K::UpstreamTimeout => (504, -32603, "Upstream timeout"),
            K::HeaderInjection => (400, -32600, "Bad request: malformed header"),
            K::HeaderTooLarge => (431, -32600, "Request header fields too large"),
            K::AmbiguousFraming => (400, -32600, "Bad request: ambiguous message framing"),
            // Generic on purpose: `error.data` names the rule and where it
            // fired; the offending value is for the log only.
            K::PathNotAllowed | K::UrlNotAllowed | K::InvalidArguments => {
                (400, -32602, "Invalid params")
            }
            K::InsufficientScope => (403, -32011, "Forbidden: insufficient scope"),
            // The message names the target: see `Rejection::with_message`.
            K::UnknownTarget => (200, -32602, "Unknown tool"),
            K::ResponseTooLarge => (502, -32603, "Upstream response too large"),
            K::DefinitionNotApproved => (
                403,
                -32016,
                "Forbidden: the definition is not an approved one",
            ),
            K::ContentBlocked => (
                502,
                -32017,
                "The answer carried data the gateway's policy does not let through",
            ),
            K::UnsolicitedResponse => (502, -32603, "Upstream answered another request"),
            K::ResultOverCap => (502, -32603, "Upstream answer over the gateway's cap"),
        };
        let retry_after = match self {
            K::Overloaded | K::UpstreamUnavailable | K::RateLimited | K::CircuitOpen => Some(1),
            _ => None,
        };
        let allow = match self {
            K::MethodNotAllowed => Some("GET, POST, DELETE"),
            _ => None,
        };
        let close = matches!(
            self,
            K::PayloadTooLarge | K::HeaderInjection | K::HeaderTooLarge | K::AmbiguousFraming
        );
        WireError {
            status,
            code,
            retry_after,
            allow,
            message,
            close,
        }
    }
}

impl RejectionKind {
    /// The rule name of a rejection that names no more precise one: the
    /// kind in kebab case. Filters with several checks of one kind set their
    /// own ([`Rejection::with_rule`]).
    pub fn default_rule(self) -> &'static str {
        use RejectionKind as K;
        match self {
            K::PathNotFound => "path-not-found",
            K::MethodNotAllowed => "method-not-allowed",
            K::NotAcceptable => "not-acceptable",
            K::UnsupportedMediaType => "unsupported-media-type",
            K::PayloadTooLarge => "payload-too-large",
            K::HostNotAllowed => "host-not-allowed",
            K::OriginNotAllowed => "origin-not-allowed",
            K::MalformedHeader => "malformed-header",
            K::Unauthenticated => "unauthenticated",
            K::ParseError => "invalid-json",
            K::InvalidRequest => "invalid-request",
            K::BatchNotAllowed => "batch-not-allowed",
            K::NestingTooDeep => "nesting-too-deep",
            K::DuplicateRequestId => "request-id-in-flight",
            K::SessionRequired => "session-required",
            K::SessionNotFound => "unknown-session",
            K::NotInitialized => "not-initialized",
            K::AlreadyInitialized => "already-initialized",
            K::UnsupportedLegacyVersion => "unsupported-protocol-version",
            K::ProtocolVersionMismatch => "protocol-version-mismatch",
            K::HeaderMismatch => "header-mismatch",
            K::EraConflict => "era-conflict",
            K::MissingMeta => "missing-meta",
            K::UnsupportedModernVersion => "unsupported-protocol-version",
            K::ResponseNotAllowed => "response-not-allowed",
            K::MethodNotFound => "method-not-found",
            K::Overloaded => "overloaded",
            K::RateLimited => "rate-limited",
            K::CircuitOpen => "circuit-open",
            K::UpstreamUnavailable => "upstream-unavailable",
            K::UpstreamTimeout => "upstream-timeout",
            K::HeaderInjection => "header-injection",
            K::HeaderTooLarge => "header-too-large",
            K::AmbiguousFraming => "ambiguous-framing",
            K::PathNotAllowed => "path-not-allowed",
            K::UrlNotAllowed => "url-not-allowed",
            K::InsufficientScope => "insufficient-scope",
            K::UnknownTarget => "access-denied",
            K::InvalidArguments => "arguments-schema",
            K::ResponseTooLarge => "response-too-large",
            K::DefinitionNotApproved => "tool-pin",
            K::ContentBlocked => "content-blocked",
            K::UnsolicitedResponse => "unsolicited-response",
            K::ResultOverCap => "result-too-large",
        }
    }
}

/// Where a rule fired: see the module documentation for the vocabulary.
/// Never holds a client-supplied value.
pub type Location = Cow<'static, str>;

/// A refusal with what the client and the log need to know.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub kind: RejectionKind,
    /// Filter that refused (for logs and metrics).
    pub filter: &'static str,
    /// The check that fired: a kebab-case name mcpgate defines (client and log).
    pub rule: &'static str,
    /// Why, for the log only.
    pub detail: String,
    /// Request id to echo, when it could be read.
    pub id: Option<RequestId>,
    /// Where the rule fired and the filter's `error.data`, when either is set.
    /// (Boxed: keeps `Rejection`, the error of every filter, small.)
    extra: Option<Box<Extra>>,
    /// Overrides the `Allow` header (405 on a stateless request: `POST`).
    pub allow: Option<&'static str>,
    /// Overrides `Retry-After` (seconds) where the wait is known.
    pub retry_after: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Extra {
    at: Option<Location>,
    data: Option<serde_json::Map<String, Value>>,
    /// Replaces the kind's generic client message.
    message: Option<String>,
    /// Send no `error.data` at all (the answer must look like a server's).
    conceal: bool,
}

impl Rejection {
    /// A rejection of `kind` with a log detail; its rule is the kind's
    /// default until [`Self::with_rule`] names a more precise one.
    pub fn new(kind: RejectionKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            filter: "",
            rule: kind.default_rule(),
            detail: detail.into(),
            id: None,
            extra: None,
            allow: None,
            retry_after: None,
        }
    }

    /// Sets `Retry-After` to `wait`, rounded up to whole seconds (at least 1).
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.retry_after = Some(secs.clamp(1, u32::MAX as u64) as u32);
        self
    }

    /// Names the rule that fired.
    pub fn with_rule(mut self, rule: &'static str) -> Self {
        self.rule = rule;
        self
    }

    /// Says where the rule fired. Only names mcpgate defines or the policy
    /// configures: never a client-supplied string.
    pub fn with_at(mut self, at: impl Into<Location>) -> Self {
        self.extra.get_or_insert_default().at = Some(at.into());
        self
    }

    /// Where the rule fired, when known.
    pub fn at(&self) -> Option<&str> {
        self.extra.as_ref()?.at.as_deref()
    }

    /// Prefixes the location with the message's index in a batch (`[2].id`).
    pub fn in_item(self, index: usize) -> Self {
        let at = match self.at() {
            None | Some("") => format!("[{index}]"),
            Some(at) if at.starts_with('[') => format!("[{index}]{at}"),
            Some(at) => format!("[{index}].{at}"),
        };
        self.with_at(at)
    }

    /// The members added with [`Self::with_data`], if any.
    pub fn data(&self) -> Option<&serde_json::Map<String, Value>> {
        self.extra.as_ref()?.data.as_ref()
    }

    /// Adds members to `error.data`: mcpgate's own values only (the versions
    /// it supports, say), never the client's. A non-object is kept under
    /// `detail`.
    pub fn with_data(mut self, data: Value) -> Self {
        let map = match data {
            Value::Object(m) => m,
            other => serde_json::Map::from_iter([("detail".to_string(), other)]),
        };
        self.extra.get_or_insert_default().data = Some(map);
        self
    }

    /// Replaces the client-facing `error.message` (the kind's generic text
    /// otherwise). For answers that must read exactly like a server's.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.extra.get_or_insert_default().message = Some(message.into());
        self
    }

    /// Sends no `error.data`: the answer reads like the server's own, not
    /// like mcpgate's. `rule` and `at` stay for the log.
    pub fn concealed(mut self) -> Self {
        self.extra.get_or_insert_default().conceal = true;
        self
    }

    /// The client-facing `error.message`.
    pub fn message(&self) -> &str {
        self.extra
            .as_ref()
            .and_then(|e| e.message.as_deref())
            .unwrap_or(self.kind.wire().message)
    }

    /// Sets the `Allow` header value.
    pub fn with_allow(mut self, allow: &'static str) -> Self {
        self.allow = Some(allow);
        self
    }

    /// `error.data`: what the filter added plus `rule` and, when known, `at`.
    pub fn error_data(&self) -> Value {
        let extra = self.extra.as_deref();
        let mut data = extra.and_then(|e| e.data.clone()).unwrap_or_default();
        data.insert("rule".into(), Value::from(self.rule));
        if let Some(at) = self.at() {
            data.insert("at".into(), Value::from(at));
        }
        Value::Object(data)
    }

    /// The JSON-RPC error response body for this rejection.
    pub fn json_body(&self) -> Vec<u8> {
        let wire = self.kind.wire();
        let error = if self.extra.as_ref().is_some_and(|e| e.conceal) {
            serde_json::json!({ "code": wire.code, "message": self.message() })
        } else {
            serde_json::json!({
                "code": wire.code,
                "message": self.message(),
                "data": self.error_data(),
            })
        };
        let id = self.id.as_ref().map_or(Value::Null, RequestId::to_json);
        serde_json::to_vec(&serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": error }))
            .unwrap_or_default()
    }
}

impl From<Rejection> for Decision {
    fn from(r: Rejection) -> Self {
        Decision::Reject(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_follows_the_spec_codes() {
        assert_eq!(RejectionKind::HeaderMismatch.wire().code, -32020);
        assert_eq!(RejectionKind::UnsupportedModernVersion.wire().code, -32022);
        assert_eq!(RejectionKind::SessionNotFound.wire().status, 404);
        assert_eq!(RejectionKind::OriginNotAllowed.wire().status, 403);
        assert_eq!(RejectionKind::Overloaded.wire().retry_after, Some(1));
        assert_eq!(
            RejectionKind::MethodNotAllowed.wire().allow,
            Some("GET, POST, DELETE")
        );
    }

    #[test]
    fn input_guards_mapping() {
        for k in [
            RejectionKind::PathNotAllowed,
            RejectionKind::UrlNotAllowed,
            RejectionKind::InvalidArguments,
        ] {
            let w = k.wire();
            assert_eq!(
                (w.status, w.code, w.message),
                (400, -32602, "Invalid params")
            );
            assert!(!w.close);
        }
        assert_eq!(RejectionKind::HeaderTooLarge.wire().status, 431);
        for k in [
            RejectionKind::HeaderInjection,
            RejectionKind::HeaderTooLarge,
            RejectionKind::AmbiguousFraming,
            RejectionKind::PayloadTooLarge,
        ] {
            assert!(k.wire().close, "{k:?} must close the connection");
        }
        assert!(!RejectionKind::MalformedHeader.wire().close);
    }

    #[test]
    fn body_echoes_id_and_data() {
        let mut r = Rejection::new(RejectionKind::UnsupportedModernVersion, "x")
            .with_data(serde_json::json!({"supported": ["2026-07-28"]}))
            .with_at("header:mcp-protocol-version");
        r.id = Some(RequestId::Number(7.into()));
        let v: Value = serde_json::from_slice(&r.json_body()).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["code"], -32022);
        assert_eq!(v["error"]["data"]["supported"][0], "2026-07-28");
        assert_eq!(v["error"]["data"]["rule"], "unsupported-protocol-version");
        assert_eq!(v["error"]["data"]["at"], "header:mcp-protocol-version");
    }

    fn data(r: &Rejection) -> Value {
        let v: Value = serde_json::from_slice(&r.json_body()).unwrap();
        v["error"]["data"].clone()
    }

    #[test]
    fn every_body_names_its_rule() {
        let r = Rejection::new(RejectionKind::Overloaded, "session table full");
        assert_eq!(r.rule, "overloaded");
        assert_eq!(data(&r), serde_json::json!({"rule": "overloaded"}));
        let r = Rejection::new(RejectionKind::PathNotAllowed, "dot-dot-segment in ...")
            .with_rule("dot-dot-segment")
            .with_at("params.uri");
        assert_eq!(
            data(&r),
            serde_json::json!({"rule": "dot-dot-segment", "at": "params.uri"})
        );
        assert!(
            !String::from_utf8(r.json_body()).unwrap().contains("..."),
            "the log detail stays out of the body"
        );
    }

    #[test]
    fn batch_items_prefix_the_location() {
        let r = Rejection::new(RejectionKind::InvalidRequest, "x");
        assert_eq!(r.clone().in_item(2).at(), Some("[2]"));
        assert_eq!(r.clone().with_at("id").in_item(1).at(), Some("[1].id"));
        assert_eq!(r.with_at("[0]").in_item(3).at(), Some("[3][0]"));
    }

    #[test]
    fn default_rules_are_kebab_case() {
        use RejectionKind as K;
        for k in [
            K::PathNotFound,
            K::MethodNotAllowed,
            K::NotAcceptable,
            K::UnsupportedMediaType,
            K::PayloadTooLarge,
            K::HostNotAllowed,
            K::OriginNotAllowed,
            K::MalformedHeader,
            K::Unauthenticated,
            K::ParseError,
            K::InvalidRequest,
            K::BatchNotAllowed,
            K::NestingTooDeep,
            K::DuplicateRequestId,
            K::SessionRequired,
            K::SessionNotFound,
            K::NotInitialized,
            K::AlreadyInitialized,
            K::UnsupportedLegacyVersion,
            K::ProtocolVersionMismatch,
            K::HeaderMismatch,
            K::EraConflict,
            K::MissingMeta,
            K::UnsupportedModernVersion,
            K::ResponseNotAllowed,
            K::MethodNotFound,
            K::Overloaded,
            K::RateLimited,
            K::CircuitOpen,
            K::UpstreamUnavailable,
            K::UpstreamTimeout,
            K::HeaderInjection,
            K::HeaderTooLarge,
            K::AmbiguousFraming,
            K::PathNotAllowed,
            K::UrlNotAllowed,
            K::InsufficientScope,
            K::UnknownTarget,
            K::InvalidArguments,
            K::ResponseTooLarge,
            K::DefinitionNotApproved,
            K::ContentBlocked,
            K::UnsolicitedResponse,
            K::ResultOverCap,
        ] {
            let rule = k.default_rule();
            assert!(
                !rule.is_empty()
                    && rule
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{k:?}: {rule}"
            );
        }
    }

    #[test]
    fn stays_small() {
        // Every filter returns it; clippy's result_large_err starts at 128.
        assert!(std::mem::size_of::<Rejection>() < 128);
    }
}
