//! The compiled, immutable policy the proxy and the filters read.

use std::net::SocketAddr;
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use crate::sections::{
    AccessAction, AccessKind, AccessPolicy, AccessRule, AccessVerdict, RuleMode,
};
pub use crate::sections::{
    Admission, BreakerPolicy, Cidr, Endpoint, HeaderPolicy, HealthCheck, HostRule, PathPolicy,
    Rate, RateLimits, RootGlob, SsrfPolicy, TenantLimits, Timeouts, Transport, UpstreamPool,
    UriScope, DEFAULT_POOL, DEFAULT_UPSTREAM,
};
pub use crate::sections::{AuditArguments, AuditPolicy, OnFull, TracesPolicy};
pub use crate::sections::{AuthMethod, JwtAlgorithm, JwtPolicy, OAuthResource, ScopeRule};
pub use crate::sections::{ClientAuth, TlsCertificate, TlsListen, TlsVersion};
pub use crate::sections::{
    ContentPolicy, ContractAction, DataAction, DataAllow, DataGuardPolicy, DataRule,
    OutputSchemaPolicy, PoisonAction, PoisonRule, PoisoningPolicy, PII_RULES, SECRET_RULES,
};
pub use crate::sections::{LimitsPolicy, ResultCaps, MAX_RESULT_BYTES};
pub use crate::sections::{MintAlgorithm, UpstreamCredential};
pub use crate::sections::{OnChange, OnUncompilable, PinMode, ToolsPolicy};
pub use crate::sections::{Sandbox, StdioLimits, StdioMode, StdioSpec};

/// Name of a tenant, shared cheaply between sessions.
pub type TenantName = Arc<str>;

/// A whole validated policy file.
#[derive(Debug, Clone)]
pub struct Policy {
    pub listen: Listen,
    /// Upstream pools in file order (`[upstream]` is the pool `default`).
    pub upstreams: Vec<UpstreamPool>,
    /// Admission caps (`[admission]`).
    pub admission: Admission,
    /// Rate limits (`[rate_limits]`).
    pub rate_limits: RateLimits,
    pub limits: Limits,
    pub protocol: Protocol,
    pub origin: OriginPolicy,
    pub auth: Auth,
    pub sessions: SessionPolicy,
    /// Metrics and health listener; `None` when not configured.
    pub admin: Option<AdminListen>,
    /// Path-traversal guard (`[paths]`, `[tenants.NAME.paths]`).
    pub paths: PathPolicy,
    /// SSRF guard for URL arguments (`[ssrf]`; off by default).
    pub ssrf: SsrfPolicy,
    /// Request-head limits of the header-injection guard (`[headers]`).
    pub headers: HeaderPolicy,
    /// Graceful shutdown (`[shutdown]`).
    pub shutdown: Shutdown,
    /// Which tools, prompts and resources each caller may see and use
    /// (`[access]`; when absent, everything, unjudged).
    pub access: AccessPolicy,
    /// What is checked of tools and their calls (`[tools]`; argument
    /// validation is off by default).
    pub tools: ToolsPolicy,
    /// Guards on what servers send (`[content]`; off when absent).
    pub content: ContentPolicy,
    /// The audit trail (`[audit]`; off when absent).
    pub audit: Option<AuditPolicy>,
    /// OpenTelemetry spans over OTLP (`[traces]`; off when absent).
    pub traces: Option<TracesPolicy>,
}

/// Where mcpgate accepts clients.
#[derive(Debug, Clone)]
pub struct Listen {
    pub address: SocketAddr,
    /// The one MCP endpoint path; every other path gets 404.
    pub path: String,
    /// Worker threads of the event loop.
    pub threads: usize,
    /// Add `x-mcpgate-worker: <index>` to responses (a debugging aid).
    pub expose_worker_header: bool,
    /// TLS termination (`[listen.tls]`); `None`: plain HTTP.
    pub tls: Option<crate::TlsListen>,
}

/// Size and shape limits on client messages.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted; larger gets 413.
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted.
    pub max_json_depth: usize,
    /// Whether a JSON array of messages is accepted (pre-2025-06-18 peers).
    pub allow_batches: bool,
    /// Longest `Mcp-Session-Id` accepted, in bytes.
    pub max_session_id_bytes: usize,
}

/// Protocol versions mcpgate lets through.
#[derive(Debug, Clone)]
pub struct Protocol {
    /// Versions a legacy (stateful) `initialize` may request.
    pub legacy_versions: Vec<String>,
    /// Versions a stateless request may carry in `_meta`.
    pub modern_versions: Vec<String>,
    /// What `MCP-Protocol-Version` a legacy session's requests may carry
    /// (`allowlisted` unless the file says `negotiated`).
    pub session_version_header: SessionVersionHeader,
}

/// Rule for the `MCP-Protocol-Version` header on an established legacy session.
///
/// The 2025-11-25 transport says a client SHOULD send the negotiated version
/// and a server MUST refuse the header only when it is invalid or
/// unsupported, so the default accepts any allowlisted version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionVersionHeader {
    /// Exactly the version negotiated in `initialize`: stricter than the
    /// spec, a hardening option for fleets of known clients.
    Negotiated,
    /// Any version in `legacy_versions` not newer than the negotiated one
    /// (the default, what the spec requires of a server; the official
    /// conformance suite sends 2025-03-26 on a 2025-11-25 session).
    Allowlisted,
}

/// A `Host` or `Origin` allowlist entry: a host, with or without a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower-case host name or IP literal (IPv6 in brackets).
    pub host: String,
    /// `None` matches any port.
    pub port: Option<u16>,
}

impl HostPattern {
    /// Whether `host`, in any case, with `port` matches this entry.
    pub fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.host.eq_ignore_ascii_case(host) && (self.port.is_none() || self.port == port)
    }
}

/// An allowed browser origin: scheme plus host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    /// `http` or `https`.
    pub scheme: String,
    pub host: HostPattern,
}

/// DNS-rebinding defence: which `Host` and `Origin` values are accepted.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    pub allowed_hosts: Vec<HostPattern>,
    pub allowed_origins: Vec<OriginPattern>,
}

/// One tenant and the ways a caller proves it is this tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub name: TenantName,
    pub key_hashes: Vec<[u8; 32]>,
    /// Routing and limits of this tenant (`[tenants.NAME]` keys).
    pub limits: TenantLimits,
    /// Globs over a verified client certificate's identities: URI SAN
    /// (`spiffe://example.org/ns/a/*`), DNS SAN (lower case) or `cn:NAME`.
    pub client_cert: Vec<String>,
    /// Globs over a verified token's `sub`.
    pub jwt_subjects: Vec<String>,
    /// The methods this tenant may use; empty: any that identifies it
    /// ([`Tenant::accepts`]).
    pub auth_methods: Vec<AuthMethod>,
}

/// How a caller is mapped to a tenant.
#[derive(Debug, Clone)]
pub struct Auth {
    pub tenants: Vec<Tenant>,
    /// Tenant for callers that present no credential; `None` means one is
    /// required.
    pub anonymous_tenant: Option<TenantName>,
    /// JWT bearer tokens (`[auth.jwt]`); `None`: not accepted.
    pub jwt: Option<JwtPolicy>,
    /// RFC 9728 protected resource metadata (`[auth.oauth]`).
    pub oauth: Option<OAuthResource>,
    /// Scopes needed per method or tool (`[auth.scopes]`), in file order
    /// ([`Auth::scopes_needed`]).
    pub scopes: Vec<ScopeRule>,
    /// `shadow`: a token lacking a scope of `[auth.scopes]` is logged and
    /// counted, not refused (`[auth] scopes_mode`).
    pub scopes_mode: crate::RuleMode,
}

impl Auth {
    /// The tenant whose key hashes to the SHA-256 of `key`.
    pub fn tenant_for_key(&self, key: &[u8]) -> Option<&TenantName> {
        let digest: [u8; 32] = Sha256::digest(key).into();
        self.tenants
            .iter()
            .find(|t| t.key_hashes.iter().any(|h| h == &digest))
            .map(|t| &t.name)
    }
}

/// Limits on legacy sessions held by the proxy.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// Most sessions held at once; new `initialize` past it gets 503.
    pub max_sessions: usize,
    /// A session unused this long is forgotten (then 404).
    pub idle_timeout_secs: u64,
    /// Most requests in flight at once on one session.
    pub max_in_flight_per_session: usize,
    /// Session-id encryption keys, newest first (`keys`).
    pub keys: Vec<[u8; 32]>,
    /// A file with one base64 key per line, newest first, read at start.
    pub key_file: Option<std::path::PathBuf>,
}

/// Graceful shutdown (`[shutdown]`): on SIGTERM or SIGINT mcpgate stops
/// accepting, lets in-flight requests finish for up to `grace_secs`, ends held
/// streams cleanly, then exits 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// Longest wait for in-flight requests, in seconds (0: do not wait).
    pub grace_secs: u64,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self { grace_secs: 30 }
    }
}

/// The admin listener (`/metrics`, `/healthz`).
#[derive(Debug, Clone)]
pub struct AdminListen {
    pub address: SocketAddr,
}

impl Policy {
    /// The pool a tenant's requests go to: its own `upstream`, else the pool
    /// named `default`, else the first pool in the file.
    pub fn pool_for(&self, tenant: &str) -> &UpstreamPool {
        let wanted = self
            .tenant_limits(tenant)
            .and_then(|l| l.upstream.as_deref());
        wanted
            .and_then(|w| self.upstreams.iter().find(|p| p.name == w))
            .or_else(|| self.upstreams.iter().find(|p| p.name == DEFAULT_POOL))
            .unwrap_or(&self.upstreams[0])
    }

    /// A configured tenant's own limits (`None` for the anonymous tenant).
    pub fn tenant_limits(&self, tenant: &str) -> Option<&TenantLimits> {
        self.auth
            .tenants
            .iter()
            .find(|t| &*t.name == tenant)
            .map(|t| &t.limits)
    }
}
