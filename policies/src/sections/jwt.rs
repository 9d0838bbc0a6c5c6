//! `[auth.jwt]`: JWT bearer access tokens (RFC 9068), verified by the
//! `filters::jwt` module against keys from a JWKS (file or URL) or, for the
//! HMAC algorithms only, a shared secret file.
//!
//! ```toml
//! [auth.jwt]
//! issuer = "https://auth.example.org"            # exact `iss`
//! audiences = ["https://mcp.example.org/mcp"]     # `aud` must name one
//! jwks_url = "https://auth.example.org/jwks"      # or jwks_file
//! algorithms = ["RS256", "ES256"]
//! ```
//!
//! The loader checks the shape only: files are read and URLs fetched by the
//! proxy, so `mcpgate check` needs neither.

use std::path::PathBuf;

use toml_edit::TableLike;

use super::auth::{check_url, UrlRule};
use crate::reader::{join, Reader};

/// A JWS signature algorithm mcpgate can verify (RFC 7518 §3, RFC 8037).
/// `none` is not one: an unsigned token is never accepted.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl JwtAlgorithm {
    /// Every algorithm, in the order of the JOSE registry.
    pub const ALL: [JwtAlgorithm; 12] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
        Self::HS256,
        Self::HS384,
        Self::HS512,
    ];

    /// The `alg` name (case-sensitive, as in a JOSE header).
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
        }
    }

    /// The algorithm named `name` exactly, if mcpgate knows it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// HS256/HS384/HS512: a shared secret, not a public key.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }
}

impl std::fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The compiled `[auth.jwt]` section: how bearer tokens are verified.
///
/// Exactly one key source is set: `jwks_file`, `jwks_url`, or (when the
/// algorithms are HMAC ones, and then only those) `hmac_secret_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtPolicy {
    /// The exact `iss` every token must carry.
    pub issuer: String,
    /// A token's `aud` must name at least one of these (never empty).
    pub audiences: Vec<String>,
    /// A JWKS document on disk (read at start and when it changes).
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL, fetched at start, every `jwks_refresh_secs` and on an
    /// unknown `kid`. https, or http to a loopback host with
    /// `allow_insecure_jwks_url`.
    pub jwks_url: Option<String>,
    /// Whether an `http://` loopback `jwks_url` is accepted.
    pub allow_insecure_jwks_url: bool,
    /// Period of the JWKS refresh.
    pub jwks_refresh_secs: u64,
    /// Least time between two fetches, also those caused by unknown `kid`s.
    pub jwks_min_interval_secs: u64,
    /// The `alg` values accepted (never `none`; HMAC ones never mixed with
    /// public-key ones).
    pub algorithms: Vec<JwtAlgorithm>,
    /// The shared secret of HS256/HS384/HS512 (the file's bytes as they are).
    pub hmac_secret_file: Option<PathBuf>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (at most 600).
    pub leeway_secs: u64,
    /// Claims every token must carry; always includes `exp`.
    pub required_claims: Vec<String>,
    /// A claim whose string value names the caller's tenant.
    pub tenant_claim: Option<String>,
    /// Accepted `typ` header values, lower case (RFC 9068 §4).
    pub accepted_types: Vec<String>,
    /// Accept any `typ`, or none (issuers that send `typ: JWT`).
    pub accept_any_type: bool,
    /// Longest token accepted, in bytes; longer ones are refused unread.
    pub max_token_bytes: usize,
}

impl JwtPolicy {
    /// Default `algorithms`.
    pub const DEFAULT_ALGORITHMS: [JwtAlgorithm; 2] = [JwtAlgorithm::RS256, JwtAlgorithm::ES256];
    /// Default `accepted_types` (RFC 9068 §2.1).
    pub const DEFAULT_TYPES: [&'static str; 2] = ["at+jwt", "application/at+jwt"];

    /// A policy with `issuer` and `audiences` and every other key at its
    /// default (no key source: for tests and tools that hold keys already).
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            jwks_file: None,
            jwks_url: None,
            allow_insecure_jwks_url: false,
            jwks_refresh_secs: 300,
            jwks_min_interval_secs: 10,
            algorithms: Self::DEFAULT_ALGORITHMS.to_vec(),
            hmac_secret_file: None,
            leeway_secs: 60,
            required_claims: vec!["exp".to_string()],
            tenant_claim: None,
            accepted_types: Self::DEFAULT_TYPES.iter().map(|s| s.to_string()).collect(),
            accept_any_type: false,
            max_token_bytes: 8192,
        }
    }

    /// Whether the `typ` header value `typ` is accepted (case-insensitive).
    pub fn accepts_type(&self, typ: Option<&str>) -> bool {
        self.accept_any_type
            || typ.is_some_and(|t| {
                self.accepted_types
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(t))
            })
    }
}

/// Whether `s` is a claim or scope name: printable ASCII, no space, `"`, `\`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

/// Reads `[auth.jwt]` of `auth` (`None` when absent).
pub(crate) fn read_jwt(r: &mut Reader, auth: &dyn TableLike) -> Option<JwtPolicy> {
    const P: &str = "auth.jwt";
    let t = r.table(auth, "jwt", "auth")?;
    r.deny_unknown(t, P, P);
    let table_span = Reader::span_of(auth, "jwt");
    let mut out = JwtPolicy::new(String::new(), Vec::new());

    match r.opt_string(t, "issuer", P) {
        Some(i) if !i.is_empty() && !i.contains(char::is_whitespace) => out.issuer = i,
        Some(_) => r.error(
            Reader::span_of(t, "issuer"),
            &join(P, "issuer"),
            "must be the issuer identifier tokens carry as `iss` (no blanks)",
        ),
        None if t.get("issuer").is_none() => r.error(
            table_span.clone(),
            &join(P, "issuer"),
            "required: the exact `iss` of accepted tokens",
        ),
        None => {}
    }
    match r.strings(t, "audiences", P) {
        Some(list) if !list.is_empty() => {
            for (a, span) in list {
                if a.is_empty() || a.contains(char::is_whitespace) {
                    r.error(
                        span,
                        &join(P, "audiences"),
                        "an audience is a non-blank string",
                    );
                } else if !out.audiences.contains(&a) {
                    out.audiences.push(a);
                }
            }
        }
        Some(_) => r.error(
            Reader::span_of(t, "audiences"),
            &join(P, "audiences"),
            "must name at least one audience (a token for another resource is refused)",
        ),
        None if t.get("audiences").is_none() => r.error(
            table_span.clone(),
            &join(P, "audiences"),
            "required: the `aud` values that name this resource (RFC 8707)",
        ),
        None => {}
    }

    out.jwks_file = r.opt_string(t, "jwks_file", P).map(PathBuf::from);
    out.allow_insecure_jwks_url = r.boolean(t, "allow_insecure_jwks_url", P, false);
    if let Some(url) = r.opt_string(t, "jwks_url", P) {
        let rule = if out.allow_insecure_jwks_url {
            UrlRule::HttpsOrLoopbackHttp
        } else {
            UrlRule::HttpsOnly("or set allow_insecure_jwks_url = true for a loopback http:// URL")
        };
        match check_url(&url, rule) {
            Ok(_) => out.jwks_url = Some(url),
            Err(why) => r.error(Reader::span_of(t, "jwks_url"), &join(P, "jwks_url"), why),
        }
    }
    out.jwks_refresh_secs = r.integer(t, "jwks_refresh_secs", P, 300, 10..=86_400) as u64;
    out.jwks_min_interval_secs = r.integer(t, "jwks_min_interval_secs", P, 10, 1..=3_600) as u64;
    if out.jwks_min_interval_secs > out.jwks_refresh_secs {
        r.error(
            Reader::span_of(t, "jwks_min_interval_secs"),
            &join(P, "jwks_min_interval_secs"),
            format!(
                "the floor between fetches ({}) exceeds jwks_refresh_secs ({})",
                out.jwks_min_interval_secs, out.jwks_refresh_secs
            ),
        );
    }
    out.hmac_secret_file = r.opt_string(t, "hmac_secret_file", P).map(PathBuf::from);
    if let Some(list) = read_algorithms(r, t, P) {
        out.algorithms = list;
    }
    check_key_source(r, t, table_span.clone(), &out);

    out.leeway_secs = r.integer(t, "leeway_secs", P, 60, 0..=600) as u64;
    if let Some(list) = r.strings(t, "required_claims", P) {
        let mut claims = vec!["exp".to_string()];
        for (c, span) in list {
            if !is_token(&c) {
                r.error(
                    span,
                    &join(P, "required_claims"),
                    format!("`{c}` is not a claim name"),
                );
            } else if !claims.contains(&c) {
                claims.push(c);
            }
        }
        out.required_claims = claims;
    }
    if let Some(c) = r.opt_string(t, "tenant_claim", P) {
        if is_token(&c) {
            out.tenant_claim = Some(c);
        } else {
            r.error(
                Reader::span_of(t, "tenant_claim"),
                &join(P, "tenant_claim"),
                format!("`{c}` is not a claim name"),
            );
        }
    }
    out.accept_any_type = r.boolean(t, "accept_any_type", P, false);
    if let Some(list) = r.strings(t, "accepted_types", P) {
        out.accepted_types.clear();
        for (v, span) in list {
            let v = v.to_ascii_lowercase();
            if !is_token(&v) {
                r.error(
                    span,
                    &join(P, "accepted_types"),
                    format!("`{v}` is not a media type"),
                );
            } else if !out.accepted_types.contains(&v) {
                out.accepted_types.push(v);
            }
        }
        if out.accepted_types.is_empty() && !out.accept_any_type {
            r.error(
                Reader::span_of(t, "accepted_types"),
                &join(P, "accepted_types"),
                "empty: no token would be accepted (set accept_any_type = true instead)",
            );
        }
    }
    out.max_token_bytes = r.integer(t, "max_token_bytes", P, 8192, 256..=65_536) as usize;
    Some(out)
}

/// `algorithms`: known names, never `none`, HMAC never mixed with public keys.
fn read_algorithms(r: &mut Reader, t: &dyn TableLike, p: &str) -> Option<Vec<JwtAlgorithm>> {
    let path = join(p, "algorithms");
    let list = r.strings(t, "algorithms", p)?;
    let mut out = Vec::new();
    for (name, span) in list {
        if name.eq_ignore_ascii_case("none") {
            r.error(
                span,
                &path,
                "`none` means an unsigned token, which anyone can forge: never accepted",
            );
            continue;
        }
        match JwtAlgorithm::from_name(&name) {
            Some(a) if !out.contains(&a) => out.push(a),
            Some(_) => {}
            None => {
                let known: Vec<&str> = JwtAlgorithm::ALL.iter().map(|a| a.name()).collect();
                r.error(
                    span,
                    &path,
                    format!("`{name}` is not one of: {}", known.join(", ")),
                );
            }
        }
    }
    let span = Reader::span_of(t, "algorithms");
    if out.is_empty() {
        r.error(span, &path, "at least one algorithm must be allowed");
        return None;
    }
    let hmac = out.iter().any(|a| a.is_hmac());
    if hmac && out.iter().any(|a| !a.is_hmac()) {
        r.error(
            span,
            &path,
            "HMAC (HS*) and public-key algorithms cannot be mixed: a public key would then \
             verify as an HMAC secret (algorithm confusion)",
        );
    }
    Some(out)
}

/// Exactly one key source, the one the algorithms need.
fn check_key_source(
    r: &mut Reader,
    t: &dyn TableLike,
    table_span: Option<std::ops::Range<usize>>,
    jwt: &JwtPolicy,
) {
    const P: &str = "auth.jwt";
    let hmac = jwt.algorithms.iter().any(|a| a.is_hmac());
    let span = |k: &str| Reader::span_of(t, k);
    if hmac {
        if jwt.hmac_secret_file.is_none() && t.get("hmac_secret_file").is_none() {
            r.error(
                span("algorithms"),
                &join(P, "hmac_secret_file"),
                "HS256/HS384/HS512 need hmac_secret_file (the shared secret)",
            );
        }
        for k in ["jwks_file", "jwks_url"] {
            if t.get(k).is_some() {
                r.error(
                    span(k),
                    &join(P, k),
                    "HMAC tokens are verified with hmac_secret_file only; remove this key",
                );
            }
        }
        return;
    }
    if t.get("hmac_secret_file").is_some() {
        r.error(
            span("hmac_secret_file"),
            &join(P, "hmac_secret_file"),
            "only for HS256/HS384/HS512 in algorithms (public-key algorithms use a JWKS)",
        );
    }
    match (t.get("jwks_file").is_some(), t.get("jwks_url").is_some()) {
        (true, true) => r.error(
            span("jwks_url"),
            &join(P, "jwks_url"),
            "give jwks_file or jwks_url, not both",
        ),
        (false, false) => r.error(
            table_span,
            &join(P, "jwks_url"),
            "the verification keys are needed: set jwks_url or jwks_file",
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
