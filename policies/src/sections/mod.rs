//! Policy sections, one file each, with its `read_*` function and the
//! compiled types it produces. Input guards: `[paths]` (path traversal),
//! `[ssrf]` (URL arguments), `[headers]` (header injection and request
//! smuggling); `pointer` reads their `tools` tables. Identity: `[listen.tls]`
//! (`tls`), `[auth.jwt]` (`jwt`), `[auth.oauth]`, `[auth.scopes]` and the
//! tenants' identity keys (`auth`). Authorization: `[access]` (which tools,
//! prompts and resources each tenant and scope may see and use). Tools:
//! `[tools]` (validating call arguments against the listed schemas).
//! Content guards: `[content]` (poisoned definitions). Operations:
//! `[audit]` (the audit trail), `[traces]` (OpenTelemetry spans).

pub(crate) mod access;
pub(crate) mod admission;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod content;
pub(crate) mod headers;
pub(crate) mod jwt;
pub(crate) mod paths;
pub(crate) mod pointer;
pub(crate) mod ssrf;
pub(crate) mod stdio;
pub(crate) mod tls;
pub(crate) mod tools;
pub(crate) mod traces;
pub(crate) mod upstream_auth;
pub(crate) mod upstreams;

#[cfg(test)]
mod guard_tests;

pub use access::{AccessAction, AccessKind, AccessPolicy, AccessRule, AccessVerdict, RuleMode};
pub use admission::{Admission, Rate, RateLimits, TenantLimits};
pub use audit::{AuditArguments, AuditPolicy, OnFull};
pub use auth::{AuthMethod, OAuthResource, ScopeRule};
pub use content::limits::{LimitsPolicy, ResultCaps, MAX_RESULT_BYTES};
pub use content::{
    ContentPolicy, ContractAction, DataAction, DataAllow, DataGuardPolicy, DataRule,
    OutputSchemaPolicy, PoisonAction, PoisonRule, PoisoningPolicy, PII_RULES, SECRET_RULES,
};
pub use headers::HeaderPolicy;
pub use jwt::{JwtAlgorithm, JwtPolicy};
pub use paths::{PathPolicy, RootGlob, UriScope, DEFAULT_UPSTREAM};
pub use ssrf::{Cidr, HostRule, SsrfPolicy};
pub use stdio::{Sandbox, StdioLimits, StdioMode, StdioSpec};
pub use tls::{ClientAuth, TlsCertificate, TlsListen, TlsVersion};
pub use tools::{OnChange, OnUncompilable, PinMode, ToolsPolicy};
pub use traces::TracesPolicy;
pub use upstream_auth::{MintAlgorithm, UpstreamCredential};
pub use upstreams::{
    BreakerPolicy, Endpoint, HealthCheck, Timeouts, Transport, UpstreamPool, DEFAULT_POOL,
};
