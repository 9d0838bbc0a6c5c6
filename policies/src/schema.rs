//! Every table the loader reads and the keys it accepts there.
//!
//! This one list is what [`Reader::deny_unknown`](crate::reader::Reader)
//! checks a table against, and what the test of `config.example.toml` checks
//! the example against, so a key cannot be accepted without being documented.
//!
//! Tables are written as patterns: `*` stands for a name the file chooses (a
//! tenant, a pool, a tool). A table whose keys are `["*"]` takes any name.
//! `[upstreams.NAME]` is read exactly like `[upstream]` (same keys, same
//! sub-tables), so its pattern is `upstream` ([`table_pattern`]).

/// (table pattern, accepted keys), root (`""`) first.
const TABLES: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "listen",
            "upstream",
            "limits",
            "protocol",
            "origin",
            "auth",
            "tenants",
            "sessions",
            "admin",
            "paths",
            "ssrf",
            "headers",
            "upstreams",
            "admission",
            "rate_limits",
            "shutdown",
            "access",
            "tools",
            "content",
            "audit",
            "traces",
        ],
    ),
    (
        "listen",
        &["address", "path", "threads", "expose_worker_header", "tls"],
    ),
    (
        "listen.tls",
        &[
            "cert_file",
            "key_file",
            "min_version",
            "client_ca_file",
            "client_auth",
            "handshake_timeout_ms",
            "certificates",
        ],
    ),
    (
        "listen.tls.certificates",
        &["server_names", "cert_file", "key_file"],
    ),
    (
        "upstream",
        &[
            "url",
            "endpoints",
            "pool_size",
            "pool_idle_secs",
            "http2",
            "http2_max_streams",
            "connect_timeout_ms",
            "first_byte_timeout_ms",
            "request_timeout_ms",
            "max_request_ms",
            "health",
            "breaker",
            "tools",
            "auth",
            // Stdio pools (sections::stdio): `command` and every key after
            // it belong to them only.
            "command",
            "cwd",
            "env",
            "env_passthrough",
            "mode",
            "min_idle",
            "max_workers",
            "idle_timeout_secs",
            "max_requests_per_worker",
            "spawn_timeout_ms",
            "kill_grace_ms",
            "max_line_bytes",
            "limits",
            "sandbox",
            "sandbox_network",
            "sandbox_writable",
        ],
    ),
    ("upstream.env", &["*"]),
    (
        "upstream.limits",
        &["memory_mb", "cpu_secs", "open_files", "processes"],
    ),
    (
        "upstream.health",
        &[
            "interval_ms",
            "timeout_ms",
            "unhealthy_after",
            "healthy_after",
        ],
    ),
    (
        "upstream.breaker",
        &[
            "consecutive_failures",
            "failure_rate_percent",
            "window_ms",
            "min_requests",
            "cooldown_ms",
            "half_open_probes",
            "count_internal_errors",
        ],
    ),
    (
        "upstream.auth",
        &[
            "bearer_file",
            "bearer_env",
            "header",
            "value_file",
            "value_env",
            "mint",
            "mint_key_file",
            "mint_algorithm",
            "mint_audience",
            "mint_issuer",
            "mint_ttl_secs",
            "mint_kid",
        ],
    ),
    ("upstream.tools", &["*"]),
    (
        "upstream.tools.*",
        &[
            "first_byte_timeout_ms",
            "request_timeout_ms",
            "max_request_ms",
        ],
    ),
    // Each name is a pool read as `upstream` (see `table_pattern`).
    ("upstreams", &["*"]),
    (
        "limits",
        &[
            "max_body_bytes",
            "max_json_depth",
            "allow_batches",
            "max_session_id_bytes",
        ],
    ),
    (
        "protocol",
        &[
            "legacy_versions",
            "modern_versions",
            "session_version_header",
        ],
    ),
    ("origin", &["allowed_hosts", "allowed_origins"]),
    (
        "auth",
        &["anonymous_tenant", "jwt", "oauth", "scopes", "scopes_mode"],
    ),
    (
        "auth.jwt",
        &[
            "issuer",
            "audiences",
            "jwks_file",
            "jwks_url",
            "allow_insecure_jwks_url",
            "jwks_refresh_secs",
            "jwks_min_interval_secs",
            "algorithms",
            "hmac_secret_file",
            "leeway_secs",
            "required_claims",
            "tenant_claim",
            "accepted_types",
            "accept_any_type",
            "max_token_bytes",
        ],
    ),
    (
        "auth.oauth",
        &[
            "resource",
            "authorization_servers",
            "scopes_supported",
            "resource_documentation",
        ],
    ),
    // "METHOD" or "METHOD:GLOB" = scopes (values, not tables).
    ("auth.scopes", &["*"]),
    ("tenants", &["*"]),
    (
        "tenants.*",
        &[
            "api_keys_sha256",
            // Identity: sections::auth::read_tenant_identity.
            "client_cert",
            "jwt_subjects",
            "auth_methods",
            "paths",
            // Routing and limits: sections::admission::read_tenant_limits.
            "upstream",
            "max_in_flight",
            "max_concurrent_upstream",
            "rate_per_sec",
            "rate_burst",
        ],
    ),
    ("tenants.*.paths", &["allowed_schemes", "allowed_roots"]),
    (
        "sessions",
        &[
            "max_sessions",
            "idle_timeout_secs",
            "max_in_flight_per_session",
            "keys",
            "key_file",
        ],
    ),
    ("admin", &["address"]),
    (
        "admission",
        &[
            "global_max_in_flight",
            "tenant_max_in_flight",
            "tenant_max_concurrent_upstream",
            "queue_timeout_ms",
            "max_streams",
            "slow_client_timeout_ms",
            "fair_queueing",
        ],
    ),
    (
        "rate_limits",
        &[
            "tenant_per_sec",
            "tenant_burst",
            "session_per_sec",
            "session_burst",
            "tools",
        ],
    ),
    ("rate_limits.tools", &["*"]),
    ("rate_limits.tools.*", &["per_sec", "burst"]),
    (
        "paths",
        &[
            "allowed_schemes",
            "allowed_roots",
            "heuristic",
            "mode",
            "tools",
            "upstreams",
        ],
    ),
    // Tool name = JSON pointers (values, not tables).
    ("paths.tools", &["*"]),
    ("paths.upstreams", &["*"]),
    ("paths.upstreams.*", &["allowed_schemes", "allowed_roots"]),
    (
        "ssrf",
        &[
            "enabled",
            "allowed_schemes",
            "allow_hosts",
            "allow_cidrs",
            "heuristic",
            "mode",
            "tools",
        ],
    ),
    // Tool name = JSON pointers (values, not tables).
    ("ssrf.tools", &["*"]),
    (
        "headers",
        &["max_block_bytes", "max_field_bytes", "max_count"],
    ),
    ("shutdown", &["grace_secs"]),
    ("access", &["default", "mode", "rules"]),
    (
        "tools",
        &[
            "validate_arguments",
            "on_uncompilable",
            "mode",
            "lock_file",
            "on_change",
            "pin",
            "state_file",
        ],
    ),
    (
        "content",
        &["poisoning", "output_schema", "secrets", "pii", "limits"],
    ),
    (
        "traces",
        &[
            "endpoint",
            "service_name",
            "sample_ratio",
            "queue",
            "export_timeout_ms",
        ],
    ),
    (
        "audit",
        &[
            "path",
            "on_full",
            "queue",
            "rotate_bytes",
            "rotate_secs",
            "arguments",
        ],
    ),
    (
        "content.limits",
        &["max_result_bytes", "max_stream_events", "tools"],
    ),
    // Tool name = its table.
    ("content.limits.tools", &["*"]),
    (
        "content.limits.tools.*",
        &["max_result_bytes", "max_stream_events"],
    ),
    ("content.output_schema", &["action", "mode"]),
    (
        "content.poisoning",
        &[
            "action",
            "mode",
            "max_description_bytes",
            "whitespace_run",
            "rules",
        ],
    ),
    // Rule name = its override table.
    ("content.poisoning.rules", &["*"]),
    ("content.poisoning.rules.*", &["action"]),
    // `[content.pii]` is read with the same keys (sections::content).
    (
        "content.secrets",
        &[
            "action",
            "mode",
            "in_arguments",
            "min_entropy_centibits",
            "allow_values",
            "allow_tools",
            "allow_tenants",
            "rules",
        ],
    ),
    ("content.secrets.rules", &["*"]),
    (
        "content.secrets.rules.*",
        &["action", "allow_values", "allow_tools", "allow_tenants"],
    ),
    (
        "content.pii",
        &[
            "action",
            "mode",
            "in_arguments",
            "allow_values",
            "allow_tools",
            "allow_tenants",
            "rules",
        ],
    ),
    ("content.pii.rules", &["*"]),
    (
        "content.pii.rules.*",
        &["action", "allow_values", "allow_tools", "allow_tenants"],
    ),
    (
        "access.rules",
        &[
            "tenants",
            "scopes",
            "tools",
            "prompts",
            "resources",
            "action",
            "mode",
        ],
    ),
];

/// The keys accepted in the table `pattern`, `None` for no such table.
pub(crate) fn keys(pattern: &str) -> Option<&'static [&'static str]> {
    TABLES.iter().find(|(t, _)| *t == pattern).map(|(_, k)| *k)
}

/// Every (table pattern, key) the loader accepts, root keys under `""`.
/// A key that is itself a table (`upstream.health`) is listed in its parent
/// and as a table of its own; `*` is any name.
pub fn accepted_keys() -> impl Iterator<Item = (&'static str, &'static str)> {
    TABLES
        .iter()
        .flat_map(|(table, keys)| keys.iter().map(move |k| (*table, *k)))
}

/// The pattern of the table named by `path` (its keys as written, e.g.
/// `["tenants", "acme", "paths"]` gives `tenants.*.paths`); `None` when the
/// loader reads no such table. `[upstreams.NAME]` gives `upstream`.
pub fn table_pattern(path: &[&str]) -> Option<String> {
    let mut pattern = String::new();
    for key in path {
        let accepted = keys(&pattern)?;
        let step = if accepted.contains(key) { key } else { "*" };
        if !accepted.contains(&step) {
            return None;
        }
        pattern = crate::reader::join(&pattern, step);
        if pattern == "upstreams.*" {
            pattern = "upstream".to_string();
        }
        keys(&pattern)?;
    }
    Some(pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(table_pattern(&[]).as_deref(), Some(""));
        assert_eq!(
            table_pattern(&["tenants", "acme", "paths"]).as_deref(),
            Some("tenants.*.paths")
        );
        assert_eq!(
            table_pattern(&["upstreams", "main", "tools", "slow"]).as_deref(),
            Some("upstream.tools.*")
        );
        assert_eq!(
            table_pattern(&["upstreams", "main", "auth"]).as_deref(),
            Some("upstream.auth")
        );
        assert_eq!(table_pattern(&["listen", "address"]), None);
        assert_eq!(table_pattern(&["paths", "tools", "read_file"]), None);
        assert_eq!(table_pattern(&["lisen"]), None);
    }

    #[test]
    fn every_table_is_reachable_from_the_root() {
        for (table, _) in TABLES {
            let path: Vec<&str> = table.split('.').filter(|s| !s.is_empty()).collect();
            assert_eq!(table_pattern(&path).as_deref(), Some(*table), "{table}");
        }
    }
}
