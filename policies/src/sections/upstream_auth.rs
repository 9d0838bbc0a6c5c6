//! `[upstream.auth]` (and `[upstreams.NAME.auth]`): how mcpgate authenticates
//! itself to an upstream pool.
//!
//! No token passthrough (MCP authorization specification, "Token
//! Passthrough"): a client's credential is for mcpgate and never goes
//! upstream; the upstream's credential comes from mcpgate. Either a fixed
//! secret, or a short-lived JWT that mcpgate mints for each caller.
//!
//! ```toml
//! [upstream.auth]
//! bearer_file = "/run/secrets/upstream-token"   # Authorization: Bearer <file>
//! ```
//!
//! The loader checks the shape only: the secret file, the environment variable
//! and the signing key are read by the proxy when it starts, so `mcpgate check`
//! needs none of them.

use std::path::PathBuf;

use toml_edit::TableLike;

use crate::reader::{join, Reader};

/// How mcpgate authenticates itself to an upstream pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamCredential {
    /// A fixed secret: header `header` (lower case) carries `prefix` + the value,
    /// read from `file` (trimmed of surrounding whitespace) or from environment variable `env`.
    Static {
        header: String,
        prefix: String,
        file: Option<PathBuf>,
        env: Option<String>,
    },
    /// A short-lived JWT minted by mcpgate per caller, signed with `key_file` (PEM PKCS#8 private key).
    Mint {
        key_file: PathBuf,
        algorithm: MintAlgorithm,
        audience: String,
        issuer: String,
        ttl_secs: u64,
        kid: Option<String>,
    },
}

/// The algorithm mcpgate signs minted tokens with. Never RSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MintAlgorithm {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

impl MintAlgorithm {
    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }
}

/// Header of the `bearer_*` keys, and the prefix of its value.
const BEARER_HEADER: &str = "authorization";
const BEARER_PREFIX: &str = "Bearer ";

/// The keys that each give one credential source (`mint` when true).
const SOURCES: [&str; 5] = [
    "bearer_file",
    "bearer_env",
    "value_file",
    "value_env",
    "mint",
];

/// Headers a credential may not be carried in: hop-by-hop and framing
/// headers (plus `proxy-*`), which mcpgate sets or strips itself.
const FORBIDDEN_HEADERS: [&str; 8] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Reads `auth` of the pool table `pool` at `pool_path`; `None` when absent
/// (the upstream gets no credential) or invalid (reported).
pub(crate) fn read_upstream_auth(
    r: &mut Reader,
    pool: &dyn TableLike,
    pool_path: &str,
) -> Option<UpstreamCredential> {
    let t = r.table(pool, "auth", pool_path)?;
    let p = join(pool_path, "auth");
    let errors_before = r.error_count();
    r.deny_unknown(t, &p, "upstream.auth");
    let fail = |r: &mut Reader, key: &str, message: String| {
        r.error(Reader::span_of(t, key), &join(&p, key), message);
    };

    // Every key is read (and type-checked) whatever the shape.
    let bearer_file = r.opt_string(t, "bearer_file", &p);
    let bearer_env = r.opt_string(t, "bearer_env", &p);
    let header = r.opt_string(t, "header", &p);
    let value_file = r.opt_string(t, "value_file", &p);
    let value_env = r.opt_string(t, "value_env", &p);
    r.boolean(t, "mint", &p, false);
    let key_file = r.opt_string(t, "mint_key_file", &p);
    let algorithm = r.opt_string(t, "mint_algorithm", &p);
    let audience = r.opt_string(t, "mint_audience", &p);
    let issuer = r.string(t, "mint_issuer", &p, "mcpgate");
    let ttl_secs = r.integer(t, "mint_ttl_secs", &p, 300, 30..=3_600) as u64;
    let kid = r.opt_string(t, "mint_kid", &p);

    // Exactly one source. A key of the wrong type still counts as given, so
    // that one mistake is not reported twice.
    let given: Vec<&str> = SOURCES
        .into_iter()
        .filter(|k| match t.get(k) {
            None => false,
            Some(item) => *k != "mint" || item.as_bool() != Some(false),
        })
        .collect();
    for extra in given.iter().skip(1) {
        fail(
            r,
            extra,
            format!(
                "give exactly one credential source, not both `{}` and `{extra}`",
                given[0]
            ),
        );
    }
    let mint = given.contains(&"mint");
    let has_header = t.get("header").is_some();
    for key in ["value_file", "value_env"] {
        if t.get(key).is_some() && !has_header {
            fail(
                r,
                key,
                "needs `header`, the header that carries the value".into(),
            );
        }
    }
    if has_header && t.get("value_file").is_none() && t.get("value_env").is_none() {
        fail(
            r,
            "header",
            "needs value_file or value_env (bearer_file and bearer_env always use \
             `authorization`, and a minted token too)"
                .into(),
        );
    }
    if given.is_empty() && !has_header {
        r.error(
            Reader::span_of(pool, "auth")
                .or_else(|| pool.get_key_value("auth").and_then(|(k, _)| k.span())),
            &p,
            "no credential: give bearer_file, bearer_env, header with value_file or \
             value_env, or mint = true",
        );
    }
    if !mint {
        // The `mint_*` keys only mean something with `mint = true`.
        let mint_keys = crate::schema::keys("upstream.auth")
            .unwrap_or_default()
            .iter()
            .filter(|k| k.starts_with("mint_"));
        for &key in mint_keys {
            if t.get(key).is_some() {
                fail(r, key, "only with mint = true".into());
            }
        }
    }

    // Each value on its own.
    for (key, value) in [
        ("bearer_file", &bearer_file),
        ("value_file", &value_file),
        ("mint_key_file", &key_file),
    ] {
        if value.as_deref() == Some("") {
            fail(r, key, "must not be empty".into());
        }
    }
    for (key, value) in [("bearer_env", &bearer_env), ("value_env", &value_env)] {
        if let Some(name) = value.as_deref().filter(|n| !is_env_name(n)) {
            fail(
                r,
                key,
                format!("`{name}` is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
            );
        }
    }
    let header = match header.map(|h| check_header(&h)) {
        Some(Err(why)) => {
            fail(r, "header", why);
            None
        }
        Some(Ok(h)) => Some(h),
        None => None,
    };
    let algorithm = match algorithm.as_deref() {
        None | Some("ES256") => MintAlgorithm::Es256,
        Some("EdDSA") => MintAlgorithm::EdDsa,
        Some(other) => {
            let why = if other.starts_with("RS") || other.starts_with("PS") {
                format!("`{other}`: mcpgate never signs with RSA; use \"ES256\" or \"EdDSA\"")
            } else {
                format!("`{other}` is not one of \"ES256\", \"EdDSA\"")
            };
            fail(r, "mint_algorithm", why);
            MintAlgorithm::Es256
        }
    };
    for (key, value) in [("mint_audience", &audience), ("mint_kid", &kid)] {
        if value.as_deref() == Some("") {
            fail(r, key, "must not be empty".into());
        }
    }
    if t.get("mint_issuer").is_some() && issuer.is_empty() {
        fail(r, "mint_issuer", "must not be empty".into());
    }
    if mint {
        for key in ["mint_key_file", "mint_audience"] {
            if t.get(key).is_none() {
                r.error(
                    Reader::span_of(pool, "auth"),
                    &join(&p, key),
                    "missing required key (with mint = true)",
                );
            }
        }
    }
    if r.error_count() != errors_before || given.len() != 1 {
        return None;
    }

    let static_with = |header: String, prefix: &str, file: Option<String>, env| {
        Some(UpstreamCredential::Static {
            header,
            prefix: prefix.to_string(),
            file: file.map(PathBuf::from),
            env,
        })
    };
    match given[0] {
        "bearer_file" | "bearer_env" => static_with(
            BEARER_HEADER.to_string(),
            BEARER_PREFIX,
            bearer_file,
            bearer_env,
        ),
        "value_file" | "value_env" => static_with(header?, "", value_file, value_env),
        _ => Some(UpstreamCredential::Mint {
            key_file: key_file?.into(),
            algorithm,
            audience: audience?,
            issuer,
            ttl_secs,
            kid,
        }),
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The header name in lower case, unless it is not a valid one or is a
/// hop-by-hop or framing header.
fn check_header(name: &str) -> Result<String, String> {
    let parsed = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))?;
    let lower = parsed.as_str().to_string();
    if FORBIDDEN_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-") {
        return Err(format!(
            "`{lower}` is a hop-by-hop or framing header, which cannot carry a credential"
        ));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests;
