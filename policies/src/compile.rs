//! Reads a policy document section by section into a [`Policy`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use toml_edit::{Document, TableLike};

use crate::error::{line_col, syntax_error_offset, PolicyError, PolicyErrors};
use crate::model::*;
use crate::reader::{join, Reader};
use crate::sections::access::read_access;
use crate::sections::admission::{read_admission, read_rate_limits, read_tenant_limits};
use crate::sections::auth::{
    check_auth, check_tenant_identity, read_oauth, read_scopes, read_tenant_identity,
};
use crate::sections::content::read_content;
use crate::sections::headers::read_headers;
use crate::sections::jwt::read_jwt;
use crate::sections::paths::read_paths;
use crate::sections::ssrf::read_ssrf;
use crate::sections::tools::read_tools;
use crate::sections::upstreams::read_upstreams;

/// Versions of the stateful revision accepted by default.
pub const DEFAULT_LEGACY_VERSIONS: &[&str] =
    &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Versions of the stateless revision accepted by default.
pub const DEFAULT_MODERN_VERSIONS: &[&str] = &["2026-07-28"];

/// Reads and validates the policy file at `path`.
pub fn parse_policy_file(path: &Path) -> Result<Policy, PolicyErrors> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(src) => parse_policy(&name, &src),
        Err(e) => Err(PolicyErrors(vec![PolicyError {
            file: name,
            line: 1,
            column: 1,
            key_path: String::new(),
            message: format!("cannot read file: {e}"),
        }])),
    }
}

/// Parses and validates policy text; `file` names it in errors.
pub fn parse_policy(file: &str, src: &str) -> Result<Policy, PolicyErrors> {
    let doc = match Document::parse(src) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().map_or(0, |s| syntax_error_offset(src, s));
            let (line, column) = line_col(src, at);
            return Err(PolicyErrors(vec![PolicyError {
                file: file.to_string(),
                line,
                column,
                key_path: String::new(),
                message: format!("invalid TOML: {}", e.message()),
            }]));
        }
    };
    let mut r = Reader::new(file, src);
    let root = doc.as_table();
    r.deny_unknown(root, "", "");
    let empty = toml_edit::Table::new();
    let listen_t = r.table(root, "listen", "");
    let listen = read_listen(&mut r, listen_t.unwrap_or(&empty));
    let upstream_t = r.table(root, "upstream", "");
    let upstreams_t = r.table(root, "upstreams", "");
    let upstreams = read_upstreams(&mut r, upstream_t, upstreams_t);
    let admission_t = r.table(root, "admission", "");
    let admission = read_admission(&mut r, admission_t);
    let rate_limits_t = r.table(root, "rate_limits", "");
    let rate_limits = read_rate_limits(&mut r, rate_limits_t);
    let limits_t = r.table(root, "limits", "");
    let limits = read_limits(&mut r, limits_t.unwrap_or(&empty));
    let protocol_t = r.table(root, "protocol", "");
    let protocol = read_protocol(&mut r, protocol_t.unwrap_or(&empty));
    let origin_t = r.table(root, "origin", "");
    let origin = read_origin(&mut r, origin_t.unwrap_or(&empty));
    let auth_t = r.table(root, "auth", "");
    let tenants_t = r.table(root, "tenants", "");
    let auth = read_auth(&mut r, auth_t.unwrap_or(&empty), tenants_t, &listen);
    check_tenant_routes(&mut r, &auth, tenants_t, &upstreams);
    let sessions_t = r.table(root, "sessions", "");
    let sessions = read_sessions(&mut r, sessions_t.unwrap_or(&empty));
    let admin_t = r.table(root, "admin", "");
    let admin = admin_t.and_then(|t| read_admin(&mut r, t));
    // Input guards (issue 3): sections::{paths, ssrf, headers}.
    let paths_t = r.table(root, "paths", "");
    let pool_names: Vec<&str> = upstreams.iter().map(|p| p.name.as_str()).collect();
    let paths = read_paths(&mut r, paths_t, tenants_t, &pool_names);
    let ssrf_t = r.table(root, "ssrf", "");
    let ssrf = read_ssrf(&mut r, ssrf_t);
    let headers_t = r.table(root, "headers", "");
    let headers = read_headers(&mut r, headers_t);
    let shutdown_t = r.table(root, "shutdown", "");
    let shutdown = shutdown_t.map_or_else(Shutdown::default, |t| read_shutdown(&mut r, t));
    let access_t = r.table(root, "access", "");
    let access = read_access(&mut r, access_t, &auth);
    let tools_t = r.table(root, "tools", "");
    let tools = read_tools(&mut r, tools_t);
    let content_t = r.table(root, "content", "");
    let content = read_content(&mut r, content_t);
    let audit_t = r.table(root, "audit", "");
    let audit = crate::sections::audit::read_audit(&mut r, audit_t);
    let traces_t = r.table(root, "traces", "");
    let traces = crate::sections::traces::read_traces(&mut r, traces_t);
    let mut errors = r.into_errors();
    errors.sort_by_key(|e| (e.line, e.column));
    if !errors.is_empty() {
        return Err(PolicyErrors(errors));
    }
    Ok(Policy {
        listen,
        upstreams,
        admission,
        rate_limits,
        limits,
        protocol,
        origin,
        auth,
        sessions,
        admin,
        paths,
        ssrf,
        headers,
        shutdown,
        access,
        tools,
        content,
        audit,
        traces,
    })
}

fn read_shutdown(r: &mut Reader, t: &dyn TableLike) -> Shutdown {
    const P: &str = "shutdown";
    r.deny_unknown(t, P, P);
    let d = Shutdown::default();
    Shutdown {
        grace_secs: r.integer(t, "grace_secs", P, d.grace_secs as i64, 0..=3_600) as u64,
    }
}

fn read_admin(r: &mut Reader, t: &dyn TableLike) -> Option<AdminListen> {
    const P: &str = "admin";
    r.deny_unknown(t, P, P);
    let raw = r.opt_string(t, "address", P)?;
    match raw.parse::<SocketAddr>() {
        Ok(address) => Some(AdminListen { address }),
        Err(_) => {
            r.error(
                Reader::span_of(t, "address"),
                &join(P, "address"),
                format!("`{raw}` is not an IP:port socket address"),
            );
            None
        }
    }
}

fn read_listen(r: &mut Reader, t: &dyn TableLike) -> Listen {
    const P: &str = "listen";
    r.deny_unknown(t, P, P);
    let raw = r.string(t, "address", P, "127.0.0.1:8080");
    let address = raw.parse::<SocketAddr>().unwrap_or_else(|_| {
        r.error(
            Reader::span_of(t, "address"),
            &join(P, "address"),
            format!("`{raw}` is not an IP:port socket address"),
        );
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let path = r.string(t, "path", P, "/mcp");
    if !path.starts_with('/') || path.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
        r.error(
            Reader::span_of(t, "path"),
            &join(P, "path"),
            "must start with `/` and contain only visible ASCII",
        );
    }
    let threads = r.integer(t, "threads", P, 1, 1..=256) as usize;
    let expose_worker_header = r.boolean(t, "expose_worker_header", P, false);
    let tls = crate::sections::tls::read_tls(r, t);
    Listen {
        expose_worker_header,
        tls,
        address,
        path,
        threads,
    }
}

fn read_limits(r: &mut Reader, t: &dyn TableLike) -> Limits {
    const P: &str = "limits";
    r.deny_unknown(t, P, P);
    Limits {
        max_body_bytes: r.integer(
            t,
            "max_body_bytes",
            P,
            4 * 1024 * 1024,
            64..=256 * 1024 * 1024,
        ) as usize,
        max_json_depth: r.integer(t, "max_json_depth", P, 64, 2..=512) as usize,
        allow_batches: r.boolean(t, "allow_batches", P, false),
        max_session_id_bytes: r.integer(t, "max_session_id_bytes", P, 256, 16..=4096) as usize,
    }
}

fn read_protocol(r: &mut Reader, t: &dyn TableLike) -> Protocol {
    const P: &str = "protocol";
    r.deny_unknown(t, P, P);
    let versions = |r: &mut Reader, key: &str, default: &[&str]| -> Vec<String> {
        match r.strings(t, key, P) {
            None => default.iter().map(|s| s.to_string()).collect(),
            Some(list) => {
                for (v, span) in &list {
                    if !is_version_date(v) {
                        r.error(
                            span.clone(),
                            &join(P, key),
                            format!("`{v}` is not a YYYY-MM-DD protocol version"),
                        );
                    }
                }
                list.into_iter().map(|(v, _)| v).collect()
            }
        }
    };
    let legacy_versions = versions(r, "legacy_versions", DEFAULT_LEGACY_VERSIONS);
    let modern_versions = versions(r, "modern_versions", DEFAULT_MODERN_VERSIONS);
    if legacy_versions.is_empty() && modern_versions.is_empty() {
        r.error(
            Reader::span_of(t, "legacy_versions"),
            P,
            "at least one protocol version must be allowed",
        );
    }
    // Default `allowlisted`: the spec refuses only invalid or unsupported
    // versions (see SessionVersionHeader); `negotiated` is opt-in hardening.
    let session_version_header = r.choice(
        t,
        "session_version_header",
        P,
        "allowlisted",
        &[
            ("allowlisted", SessionVersionHeader::Allowlisted),
            ("negotiated", SessionVersionHeader::Negotiated),
        ],
    );
    Protocol {
        session_version_header,
        legacy_versions,
        modern_versions,
    }
}

/// Whether `v` is shaped like a protocol version: `YYYY-MM-DD`.
pub fn is_version_date(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

fn read_origin(r: &mut Reader, t: &dyn TableLike) -> OriginPolicy {
    const P: &str = "origin";
    r.deny_unknown(t, P, P);
    let loopback = ["127.0.0.1", "localhost", "[::1]"];
    let allowed_hosts = match r.strings(t, "allowed_hosts", P) {
        None => loopback
            .iter()
            .map(|h| HostPattern {
                host: h.to_string(),
                port: None,
            })
            .collect(),
        Some(list) => list
            .into_iter()
            .filter_map(|(v, span)| match parse_host_pattern(&v) {
                Some(p) => Some(p),
                None => {
                    r.error(
                        span,
                        &join(P, "allowed_hosts"),
                        format!("`{v}` is not a host or host:port"),
                    );
                    None
                }
            })
            .collect(),
    };
    let allowed_origins = match r.strings(t, "allowed_origins", P) {
        None => loopback
            .iter()
            .map(|h| OriginPattern {
                scheme: "http".into(),
                host: HostPattern {
                    host: h.to_string(),
                    port: None,
                },
            })
            .collect(),
        Some(list) => list
            .into_iter()
            .filter_map(|(v, span)| match parse_origin_pattern(&v) {
                Some(p) => Some(p),
                None => {
                    r.error(
                        span,
                        &join(P, "allowed_origins"),
                        format!("`{v}` is not an origin like http://host:port"),
                    );
                    None
                }
            })
            .collect(),
    };
    OriginPolicy {
        allowed_hosts,
        allowed_origins,
    }
}

/// Parses `host`, `host:port`, `[v6]` or `[v6]:port` (lower-cased).
pub fn parse_host_pattern(s: &str) -> Option<HostPattern> {
    let (host, port) = split_host(s)?;
    Some(HostPattern {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port` into the host (its case
/// kept, IPv6 in brackets) and the port, without copying: the transport
/// filter reads every request's `Host` with it.
pub fn split_host(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &s[..end + 2];
        match &rest[end + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?.parse().ok()?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse().ok()?)),
            None => (s, None),
        }
    };
    let valid = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        });
    valid.then_some((host, port))
}

fn parse_origin_pattern(s: &str) -> Option<OriginPattern> {
    let (scheme, rest) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    Some(OriginPattern {
        scheme,
        host: parse_host_pattern(rest.trim_end_matches('/'))?,
    })
}

fn read_auth(
    r: &mut Reader,
    t: &dyn TableLike,
    tenants: Option<&dyn TableLike>,
    listen: &Listen,
) -> Auth {
    const P: &str = "auth";
    r.deny_unknown(t, P, P);
    // Identity at the edge (issue 11): sections::{jwt, auth}.
    let jwt = read_jwt(r, t);
    let oauth = read_oauth(r, t, &listen.path);
    let scopes = read_scopes(r, t);
    let mut out = Vec::new();
    if let Some(tenants) = tenants {
        for (name, _) in tenants.iter() {
            let path = join("tenants", name);
            let Some(tt) = r.table(tenants, name, "tenants") else {
                continue;
            };
            // `paths`: [tenants.NAME.paths], read by sections::paths.
            r.deny_unknown(tt, &path, "tenants.*");
            let limits = read_tenant_limits(r, tt, &path);
            let mut key_hashes = Vec::new();
            for (hexkey, span) in r.strings(tt, "api_keys_sha256", &path).unwrap_or_default() {
                let mut h = [0u8; 32];
                match hex::decode_to_slice(hexkey.trim(), &mut h) {
                    Ok(()) => key_hashes.push(h),
                    Err(_) => r.error(
                        span,
                        &join(&path, "api_keys_sha256"),
                        "expected 64 hex digits (SHA-256 of the API key)",
                    ),
                }
            }
            let id = read_tenant_identity(r, tt, &path);
            let identified = tt.get("api_keys_sha256").is_some()
                || !id.client_cert.is_empty()
                || !id.jwt_subjects.is_empty()
                || jwt.as_ref().is_some_and(|j| j.tenant_claim.is_some());
            if key_hashes.is_empty() && !identified {
                r.error(
                    tenants.get_key_value(name).and_then(|(k, _)| k.span()),
                    &path,
                    "a tenant needs `api_keys_sha256`, `client_cert` or `jwt_subjects` \
                     (or [auth.jwt] tenant_claim); use auth.anonymous_tenant for callers \
                     without credentials",
                );
            }
            let tenant = Tenant {
                name: Arc::from(name),
                key_hashes,
                limits,
                client_cert: id.client_cert,
                jwt_subjects: id.jwt_subjects,
                auth_methods: id.auth_methods,
            };
            check_tenant_identity(r, tt, &path, &tenant, jwt.as_ref(), listen.tls.as_ref());
            out.push(tenant);
        }
    }
    let mut anonymous_tenant = r.opt_string(t, "anonymous_tenant", P).map(Arc::from);
    if anonymous_tenant.is_none()
        && out.is_empty()
        && jwt.is_none()
        && t.get("anonymous_tenant").is_none()
    {
        // No tenants and no anonymous tenant would refuse every caller: default to an
        // anonymous tenant named "anonymous" so a minimal file works. Not with
        // [auth.jwt]: a token is then required unless anonymous_tenant is set.
        anonymous_tenant = Some(Arc::from("anonymous"));
    }
    let auth = Auth {
        tenants: out,
        anonymous_tenant,
        jwt,
        oauth,
        scopes,
        scopes_mode: r.choice(
            t,
            "scopes_mode",
            P,
            "enforce",
            &crate::sections::access::MODES,
        ),
    };
    check_auth(r, t, &auth);
    auth
}

/// Every tenant's `upstream` names a defined pool.
fn check_tenant_routes(
    r: &mut Reader,
    auth: &Auth,
    tenants: Option<&dyn TableLike>,
    pools: &[UpstreamPool],
) {
    for t in &auth.tenants {
        let Some(want) = &t.limits.upstream else {
            continue;
        };
        if !pools.iter().any(|p| &p.name == want) {
            let span = tenants
                .and_then(|tt| tt.get(&t.name))
                .and_then(|i| i.as_table_like())
                .and_then(|tt| Reader::span_of(tt, "upstream"));
            r.error(
                span,
                &format!("tenants.{}.upstream", t.name),
                format!("no upstream pool named `{want}`"),
            );
        }
    }
}

fn read_sessions(r: &mut Reader, t: &dyn TableLike) -> SessionPolicy {
    const P: &str = "sessions";
    r.deny_unknown(t, P, P);
    let mut keys = Vec::new();
    for (k, span) in r.strings(t, "keys", P).unwrap_or_default() {
        match decode_session_key(&k) {
            Some(key) => keys.push(key),
            None => r.error(
                span,
                &join(P, "keys"),
                "expected the base64 of 32 random bytes",
            ),
        }
    }
    let key_file = r.opt_string(t, "key_file", P).map(std::path::PathBuf::from);
    SessionPolicy {
        keys,
        key_file,
        max_sessions: r.integer(t, "max_sessions", P, 100_000, 1..=10_000_000) as usize,
        idle_timeout_secs: r.integer(t, "idle_timeout_secs", P, 1_800, 1..=7 * 24 * 3600) as u64,
        max_in_flight_per_session: r.integer(t, "max_in_flight_per_session", P, 64, 1..=100_000)
            as usize,
    }
}

/// A session key: the base64 (standard or URL-safe) of exactly 32 bytes.
pub fn decode_session_key(s: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    let s = s.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
        .ok()?;
    bytes.try_into().ok()
}
