//! Identity at the edge: `[auth.oauth]` (RFC 9728 protected resource
//! metadata), `[auth.scopes]` (scopes each method or tool needs) and the
//! identity keys of `[tenants.NAME]` (`client_cert`, `jwt_subjects`,
//! `auth_methods`). `[auth.jwt]` is read by [`super::jwt`].
//!
//! ```toml
//! [auth.oauth]
//! resource = "https://mcp.example.org/mcp"        # the URL clients use
//! authorization_servers = ["https://auth.example.org"]
//! scopes_supported = ["files:read", "files:write"]
//! [auth.scopes]
//! "tools/call" = ["files:read"]
//! "tools/call:delete_*" = ["files:write"]
//! [tenants.acme]
//! client_cert = ["spiffe://example.org/ns/acme/*"]
//! jwt_subjects = ["acme-*"]
//! auth_methods = ["jwt", "client_cert"]
//! ```
//!
//! Globs (`client_cert`, `jwt_subjects`, scope targets): `*` matches any run
//! of characters (`/` and `.` included), every other character itself.

use std::collections::BTreeSet;
use std::net::IpAddr;

use toml_edit::TableLike;

use super::jwt::is_token;
use crate::model::{Auth, Policy, Tenant, TenantName};
use crate::reader::{join, Reader};
use crate::{ClientAuth, JwtPolicy, TlsListen};

/// A way a caller proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// `Authorization: Bearer <key>`, matched against `api_keys_sha256`.
    ApiKey,
    /// A verified JWT access token (`[auth.jwt]`).
    Jwt,
    /// A verified TLS client certificate (`[listen.tls] client_auth`).
    ClientCert,
}

impl AuthMethod {
    /// The policy spelling: `api_key`, `jwt`, `client_cert`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Jwt => "jwt",
            Self::ClientCert => "client_cert",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        [Self::ApiKey, Self::Jwt, Self::ClientCert]
            .into_iter()
            .find(|m| m.name() == s)
    }
}

/// The compiled `[auth.oauth]` section: what mcpgate publishes as an OAuth
/// 2.1 protected resource (RFC 9728).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthResource {
    /// The MCP endpoint URL exactly as clients use it (RFC 9728 §3.3).
    pub resource: String,
    /// Issuer identifiers of the authorization servers (never empty).
    pub authorization_servers: Vec<String>,
    /// Scopes advertised (never `offline_access`).
    pub scopes_supported: Vec<String>,
    /// A page for people about this resource.
    pub resource_documentation: Option<String>,
}

impl OAuthResource {
    /// Path of the metadata document for this resource (RFC 9728 §3.1:
    /// the well-known part between host and path), e.g.
    /// `/.well-known/oauth-protected-resource/mcp`. The root form
    /// `/.well-known/oauth-protected-resource` is served too.
    pub fn metadata_path(&self) -> String {
        format!("{WELL_KNOWN}{}", split_url(&self.resource).1)
    }

    /// Absolute URL of the metadata document, for `resource_metadata` in
    /// `WWW-Authenticate` challenges.
    pub fn metadata_url(&self) -> String {
        let (origin, path) = split_url(&self.resource);
        format!("{origin}{WELL_KNOWN}{path}")
    }
}

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// (`scheme://authority`, path) of a checked absolute URL.
fn split_url(url: &str) -> (&str, &str) {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(i) => url.split_at(after + i),
        None => (url, ""),
    }
}

/// One `[auth.scopes]` entry: the scopes a method (or a method on matching
/// targets) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRule {
    /// The JSON-RPC method (`tools/call`, `resources/list`, ...).
    pub method: String,
    /// Glob over the target: the tool name (`tools/call`), the prompt name
    /// (`prompts/get`) or the URI (`resources/read`); `None`: every call.
    pub target_glob: Option<String>,
    /// Every one of these is needed.
    pub scopes: Vec<String>,
}

/// Methods whose rules may name a target (`METHOD:GLOB`).
const TARGETED: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

impl Auth {
    /// Every scope the call `method` on `target` needs: the union of the
    /// scopes of every matching `[auth.scopes]` rule, sorted, without
    /// duplicates (empty: no scope needed).
    pub fn scopes_needed(&self, method: &str, target: Option<&str>) -> Vec<String> {
        let mut out = BTreeSet::new();
        for rule in &self.scopes {
            let hit = rule.method == method
                && match &rule.target_glob {
                    None => true,
                    Some(g) => target.is_some_and(|t| glob_match(g, t)),
                };
            if hit {
                out.extend(rule.scopes.iter().cloned());
            }
        }
        out.into_iter().collect()
    }

    /// The first tenant (file order) with a `jwt_subjects` glob matching `sub`.
    pub fn tenant_for_subject(&self, sub: &str) -> Option<TenantName> {
        self.tenants
            .iter()
            .find(|t| t.jwt_subjects.iter().any(|g| glob_match(g, sub)))
            .map(|t| t.name.clone())
    }

    /// The first tenant (file order) with a `client_cert` glob matching one
    /// of `ids`, the identities of a verified client certificate: each URI
    /// SAN, each DNS SAN, and `cn:` + the subject CN. DNS names compare
    /// case-insensitively.
    pub fn tenant_for_client_cert(&self, ids: &[String]) -> Option<TenantName> {
        let ids: Vec<String> = ids
            .iter()
            .map(|id| match cert_id_kind(id) {
                CertId::Dns => id.to_ascii_lowercase(),
                _ => id.clone(),
            })
            .collect();
        self.tenants
            .iter()
            .find(|t| {
                t.client_cert
                    .iter()
                    .any(|g| ids.iter().any(|id| glob_match(g, id)))
            })
            .map(|t| t.name.clone())
    }
}

impl Policy {
    /// See [`Auth::tenant_for_subject`].
    pub fn tenant_for_subject(&self, sub: &str) -> Option<TenantName> {
        self.auth.tenant_for_subject(sub)
    }

    /// See [`Auth::tenant_for_client_cert`].
    pub fn tenant_for_client_cert(&self, ids: &[String]) -> Option<TenantName> {
        self.auth.tenant_for_client_cert(ids)
    }
}

impl Tenant {
    /// Whether this tenant may identify with `method` (`auth_methods`
    /// empty: any method that identifies it).
    pub fn accepts(&self, method: AuthMethod) -> bool {
        self.auth_methods.is_empty() || self.auth_methods.contains(&method)
    }
}

/// `*` matches any run of bytes, every other byte itself.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Position after the last `*` and the text position it matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if p.get(pi) == Some(&b'*') {
            pi += 1;
            star = Some((pi, ti));
        } else if p.get(pi) == Some(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

// === URLs ===

/// Which schemes [`check_url`] accepts.
pub(crate) enum UrlRule {
    /// https only; the text says what to do instead.
    HttpsOnly(&'static str),
    /// https, or http to a loopback host.
    HttpsOrLoopbackHttp,
    /// http or https.
    AnyHttp,
}

/// An absolute http(s) URL with a host, no user info and no fragment.
pub(crate) fn check_url(raw: &str, rule: UrlRule) -> Result<http::Uri, String> {
    let bad = || format!("`{raw}` is not an absolute http(s) URL");
    if raw.contains(['#', ' ']) {
        return Err(bad());
    }
    let uri: http::Uri = raw.parse().map_err(|_| bad())?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(bad());
    };
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(format!("`{raw}`: no user info, and a host"));
    }
    match (scheme, rule) {
        ("https", _) | ("http", UrlRule::AnyHttp) => Ok(uri),
        ("http", UrlRule::HttpsOnly(hint)) => Err(format!("`{raw}`: must be https:// ({hint})")),
        ("http", UrlRule::HttpsOrLoopbackHttp) if is_loopback(authority.host()) => Ok(uri),
        ("http", UrlRule::HttpsOrLoopbackHttp) => Err(format!(
            "`{raw}`: http:// only for a loopback host (127.0.0.1, [::1], localhost); use https://"
        )),
        _ => Err(bad()),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

// === [auth.oauth] ===

/// Reads `[auth.oauth]` of `auth`; `listen_path` is the MCP endpoint path.
pub(crate) fn read_oauth(
    r: &mut Reader,
    auth: &dyn TableLike,
    listen_path: &str,
) -> Option<OAuthResource> {
    const P: &str = "auth.oauth";
    let t = r.table(auth, "oauth", "auth")?;
    r.deny_unknown(t, P, P);
    let table_span = Reader::span_of(auth, "oauth");
    let mut out = OAuthResource {
        resource: String::new(),
        authorization_servers: Vec::new(),
        scopes_supported: Vec::new(),
        resource_documentation: None,
    };
    let path = join(P, "resource");
    match r.opt_string(t, "resource", P) {
        Some(raw) => {
            let span = Reader::span_of(t, "resource");
            match check_url(&raw, UrlRule::HttpsOrLoopbackHttp) {
                Err(why) => r.error(span, &path, why),
                Ok(uri) if uri.query().is_some() => r.error(
                    span,
                    &path,
                    "no query: the resource is the MCP endpoint URL",
                ),
                Ok(uri) if uri.path() != listen_path || !raw.ends_with(listen_path) => r.error(
                    span,
                    &path,
                    format!(
                        "its path must be the MCP endpoint path `{listen_path}` (listen.path): \
                         the resource is exactly the URL clients use (RFC 9728 §3.3)"
                    ),
                ),
                Ok(_) => out.resource = raw,
            }
        }
        None if t.get("resource").is_none() => r.error(
            table_span.clone(),
            &path,
            "required: the MCP endpoint URL clients use, e.g. https://mcp.example.org/mcp",
        ),
        None => {}
    }
    let path = join(P, "authorization_servers");
    match r.strings(t, "authorization_servers", P) {
        Some(list) if !list.is_empty() => {
            for (raw, span) in list {
                match check_url(&raw, UrlRule::HttpsOrLoopbackHttp) {
                    Ok(uri) if uri.query().is_none() => {
                        if !out.authorization_servers.contains(&raw) {
                            out.authorization_servers.push(raw);
                        }
                    }
                    Ok(_) => r.error(span, &path, format!("`{raw}`: an issuer has no query")),
                    Err(why) => r.error(span, &path, why),
                }
            }
        }
        Some(_) => r.error(
            Reader::span_of(t, "authorization_servers"),
            &path,
            "must list at least one authorization server",
        ),
        None if t.get("authorization_servers").is_none() => r.error(
            table_span,
            &path,
            "required: the issuer URL of at least one authorization server",
        ),
        None => {}
    }
    let path = join(P, "scopes_supported");
    for (s, span) in r.strings(t, "scopes_supported", P).unwrap_or_default() {
        if s == "offline_access" {
            r.error(
                span,
                &path,
                "`offline_access` must not be advertised (MCP authorization: a resource \
                 does not ask for refresh tokens)",
            );
        } else if !is_token(&s) {
            r.error(span, &path, format!("`{s}` is not a scope token"));
        } else if !out.scopes_supported.contains(&s) {
            out.scopes_supported.push(s);
        }
    }
    if let Some(raw) = r.opt_string(t, "resource_documentation", P) {
        match check_url(&raw, UrlRule::AnyHttp) {
            Ok(_) => out.resource_documentation = Some(raw),
            Err(why) => r.error(
                Reader::span_of(t, "resource_documentation"),
                &join(P, "resource_documentation"),
                why,
            ),
        }
    }
    Some(out)
}

// === [auth.scopes] ===

/// Reads `[auth.scopes]` of `auth`, rules in file order.
pub(crate) fn read_scopes(r: &mut Reader, auth: &dyn TableLike) -> Vec<ScopeRule> {
    const P: &str = "auth.scopes";
    let Some(t) = r.table(auth, "scopes", "auth") else {
        return Vec::new();
    };
    // Any key is a rule (`*` in schema): judged below, not by deny_unknown.
    let mut out = Vec::new();
    for (key, _) in t.iter() {
        let path = join(P, key);
        let key_span = t.get_key_value(key).and_then(|(k, _)| k.span());
        let (method, target_glob) = match key.split_once(':') {
            Some((m, g)) => (m, Some(g)),
            None => (key, None),
        };
        let method_ok = !method.is_empty()
            && method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'));
        if !method_ok {
            r.error(
                key_span,
                &path,
                format!("`{method}` is not an MCP method name"),
            );
            continue;
        }
        if let Some(g) = target_glob {
            if !TARGETED.contains(&method) {
                r.error(
                    key_span,
                    &path,
                    format!("only {} take a `:GLOB` target", TARGETED.join(", ")),
                );
                continue;
            }
            if g.is_empty() || g.chars().any(char::is_control) {
                r.error(
                    key_span,
                    &path,
                    "the target glob after `:` is empty or has control characters",
                );
                continue;
            }
        }
        let Some(list) = r.strings(t, key, P) else {
            continue;
        };
        let empty = list.is_empty();
        let mut scopes = Vec::new();
        for (s, span) in list {
            if !is_token(&s) {
                r.error(span, &path, format!("`{s}` is not a scope token"));
            } else if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        if empty {
            r.error(
                Reader::span_of(t, key),
                &path,
                "name at least one scope (a rule without scopes requires nothing)",
            );
            continue;
        }
        if scopes.is_empty() {
            continue;
        }
        out.push(ScopeRule {
            method: method.to_string(),
            target_glob: target_glob.map(str::to_string),
            scopes,
        });
    }
    out
}

// === [tenants.NAME] identity ===

/// The identity keys of one tenant.
pub(crate) struct TenantIdentity {
    pub client_cert: Vec<String>,
    pub jwt_subjects: Vec<String>,
    pub auth_methods: Vec<AuthMethod>,
}

enum CertId {
    Cn,
    Uri,
    Dns,
}

fn cert_id_kind(s: &str) -> CertId {
    if s.starts_with("cn:") {
        CertId::Cn
    } else if s.contains("://") {
        CertId::Uri
    } else {
        CertId::Dns
    }
}

/// Whether `g` is a `client_cert` glob; DNS globs come back lower-cased.
fn client_cert_glob(g: &str) -> Option<String> {
    let printable = g.len() <= 2048 && !g.chars().any(|c| c.is_control() || c.is_whitespace());
    match cert_id_kind(g) {
        CertId::Cn => (printable && g.len() > 3).then(|| g.to_string()),
        CertId::Uri => {
            let (scheme, rest) = g.split_once("://")?;
            let ok = printable
                && !rest.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
            ok.then(|| g.to_string())
        }
        CertId::Dns => {
            let ok = !g.is_empty()
                && g.len() <= 253
                && g.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*'));
            ok.then(|| g.to_ascii_lowercase())
        }
    }
}

/// Reads `client_cert`, `jwt_subjects` and `auth_methods` of the tenant at
/// `path` (the caller checks unknown keys).
pub(crate) fn read_tenant_identity(
    r: &mut Reader,
    t: &dyn TableLike,
    path: &str,
) -> TenantIdentity {
    let mut client_cert = Vec::new();
    for (g, span) in r.strings(t, "client_cert", path).unwrap_or_default() {
        match client_cert_glob(&g) {
            Some(g) => client_cert.push(g),
            None => r.error(
                span,
                &join(path, "client_cert"),
                format!(
                    "`{g}` is not a certificate identity glob: a URI SAN \
                     (spiffe://example.org/ns/a/*), a DNS SAN, or cn:NAME"
                ),
            ),
        }
    }
    let mut jwt_subjects = Vec::new();
    for (g, span) in r.strings(t, "jwt_subjects", path).unwrap_or_default() {
        if g.is_empty() || g.len() > 1024 || g.chars().any(char::is_control) {
            r.error(
                span,
                &join(path, "jwt_subjects"),
                "a subject glob is a non-empty string without control characters",
            );
        } else {
            jwt_subjects.push(g);
        }
    }
    let mut auth_methods = Vec::new();
    for (m, span) in r.strings(t, "auth_methods", path).unwrap_or_default() {
        match AuthMethod::from_name(&m) {
            Some(m) if !auth_methods.contains(&m) => auth_methods.push(m),
            Some(_) => {}
            None => r.error(
                span,
                &join(path, "auth_methods"),
                format!("`{m}` is not one of: api_key, jwt, client_cert"),
            ),
        }
    }
    TenantIdentity {
        client_cert,
        jwt_subjects,
        auth_methods,
    }
}

/// A tenant's identity keys against each other and against `[auth.jwt]` and
/// `[listen.tls]`: every way it may identify must be able to, and every way
/// it is given must be allowed.
pub(crate) fn check_tenant_identity(
    r: &mut Reader,
    t: &dyn TableLike,
    path: &str,
    tenant: &Tenant,
    jwt: Option<&JwtPolicy>,
    tls: Option<&TlsListen>,
) {
    let mtls = tls.is_some_and(|t| t.client_auth != ClientAuth::Off);
    let span = |k: &str| Reader::span_of(t, k);
    for m in &tenant.auth_methods {
        let why = match m {
            AuthMethod::Jwt if jwt.is_none() => Some("`jwt` needs an [auth.jwt] section"),
            AuthMethod::ClientCert if !mtls => Some(
                "`client_cert` needs [listen.tls] with client_auth = \"optional\" or \"required\"",
            ),
            AuthMethod::ApiKey if tenant.key_hashes.is_empty() => {
                Some("`api_key` needs api_keys_sha256 in this tenant")
            }
            AuthMethod::Jwt
                if tenant.jwt_subjects.is_empty()
                    && jwt.is_some_and(|j| j.tenant_claim.is_none()) =>
            {
                Some("`jwt` needs jwt_subjects in this tenant, or [auth.jwt] tenant_claim")
            }
            AuthMethod::ClientCert if tenant.client_cert.is_empty() => {
                Some("`client_cert` needs client_cert globs in this tenant")
            }
            _ => None,
        };
        if let Some(why) = why {
            r.error(span("auth_methods"), &join(path, "auth_methods"), why);
        }
    }
    let given = [
        (
            "api_keys_sha256",
            AuthMethod::ApiKey,
            !tenant.key_hashes.is_empty(),
        ),
        (
            "jwt_subjects",
            AuthMethod::Jwt,
            !tenant.jwt_subjects.is_empty(),
        ),
        (
            "client_cert",
            AuthMethod::ClientCert,
            !tenant.client_cert.is_empty(),
        ),
    ];
    for (key, method, present) in given {
        if present && !tenant.accepts(method) {
            r.error(
                span(key),
                &join(path, key),
                format!("set, but auth_methods does not allow `{}`", method.name()),
            );
        }
    }
    if !tenant.jwt_subjects.is_empty() && jwt.is_none() {
        r.error(
            span("jwt_subjects"),
            &join(path, "jwt_subjects"),
            "needs an [auth.jwt] section (tokens are verified there)",
        );
    }
    if !tenant.client_cert.is_empty() && !mtls {
        r.error(
            span("client_cert"),
            &join(path, "client_cert"),
            "needs [listen.tls] with client_auth = \"optional\" or \"required\"",
        );
    }
}

/// `[auth.oauth]` and `[auth.scopes]` against `[auth.jwt]`.
pub(crate) fn check_auth(r: &mut Reader, t: &dyn TableLike, auth: &Auth) {
    let Some(jwt) = &auth.jwt else {
        for (key, what) in [
            (
                "oauth",
                "a protected resource needs [auth.jwt] to verify the tokens it asks for",
            ),
            (
                "scopes",
                "scopes come from tokens: [auth.scopes] needs [auth.jwt]",
            ),
        ] {
            if t.get(key).is_some() {
                r.error(Reader::span_of(t, key), &join("auth", key), what);
            }
        }
        return;
    };
    if let Some(oauth) = &auth.oauth {
        if !oauth.authorization_servers.is_empty()
            && !jwt.issuer.is_empty()
            && !oauth.authorization_servers.contains(&jwt.issuer)
        {
            let span = t
                .get("oauth")
                .and_then(|o| o.as_table_like())
                .and_then(|o| Reader::span_of(o, "authorization_servers"));
            r.error(
                span,
                "auth.oauth.authorization_servers",
                format!(
                    "must include auth.jwt.issuer `{}`: clients get their tokens from these \
                     servers, and only tokens with that `iss` are accepted",
                    jwt.issuer
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests;
