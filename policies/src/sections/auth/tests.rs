use super::glob_match;
use crate::testutil::{error_at, errors, ok, UP};
use crate::{AuthMethod, ScopeRule};

const JWT: &str = "[auth.jwt]\nissuer = \"https://as.example\"\n\
                   audiences = [\"https://mcp.example/mcp\"]\njwks_file = \"jwks.json\"\n";
const OAUTH: &str = "[auth.oauth]\nresource = \"https://mcp.example/mcp\"\n\
                     authorization_servers = [\"https://as.example\"]\n";
const MTLS: &str = "[listen.tls]\ncert_file = \"c\"\nkey_file = \"k\"\n\
                    client_ca_file = \"ca\"\nclient_auth = \"optional\"\n";

/// Line (1-based) of the first line of `src` (after the upstream) containing `needle`.
fn line_of(src: &str, needle: &str) -> usize {
    format!("{UP}{src}")
        .lines()
        .position(|l| l.contains(needle))
        .expect("needle")
        + 1
}

// === glob ===

#[test]
fn globs() {
    assert!(glob_match("delete_*", "delete_file"));
    assert!(glob_match("delete_*", "delete_"));
    assert!(!glob_match("delete_*", "undelete_file"));
    assert!(glob_match("*", ""));
    assert!(glob_match("a*b*c", "a-b-b-c"));
    assert!(!glob_match("a*b*c", "a-b-b-d"));
    assert!(glob_match(
        "spiffe://e.org/ns/a/*",
        "spiffe://e.org/ns/a/sa/b"
    ));
    assert!(!glob_match(
        "spiffe://e.org/ns/a/*",
        "spiffe://e.org/ns/ab/sa/b"
    ));
    assert!(
        glob_match("file:///srv/*.txt", "file:///srv/a/b.txt"),
        "* crosses /"
    );
    assert!(!glob_match("a?c", "abc"), "? is not special");
    assert!(glob_match("a?c", "a?c"));
    assert!(glob_match("**x", "yyx"));
    assert!(!glob_match("exact", "exactly"));
}

// === [auth.oauth] ===

#[test]
fn oauth_resource() {
    let src = format!(
        "{JWT}{OAUTH}scopes_supported = [\"files:read\", \"files:write\"]\n\
         resource_documentation = \"https://mcp.example/docs\"\n"
    );
    let o = ok(&src).auth.oauth.unwrap();
    assert_eq!(o.resource, "https://mcp.example/mcp");
    assert_eq!(o.authorization_servers, ["https://as.example"]);
    assert_eq!(o.scopes_supported, ["files:read", "files:write"]);
    assert_eq!(
        o.resource_documentation.as_deref(),
        Some("https://mcp.example/docs")
    );
    assert_eq!(
        o.metadata_path(),
        "/.well-known/oauth-protected-resource/mcp"
    );
    assert_eq!(
        o.metadata_url(),
        "https://mcp.example/.well-known/oauth-protected-resource/mcp"
    );
}

#[test]
fn oauth_resource_on_loopback_http_and_other_paths() {
    let src = format!(
        "[listen]\npath = \"/public/mcp\"\n{JWT}[auth.oauth]\n\
         resource = \"http://127.0.0.1:8080/public/mcp\"\n\
         authorization_servers = [\"https://as.example\", \"http://localhost:9/\"]\n"
    );
    let o = ok(&src).auth.oauth.unwrap();
    assert_eq!(
        o.metadata_url(),
        "http://127.0.0.1:8080/.well-known/oauth-protected-resource/public/mcp"
    );
}

#[test]
fn oauth_errors() {
    let path = "auth.oauth.resource";
    let (line, msg) = error_at(
        &format!("{JWT}[auth.oauth]\nauthorization_servers = [\"https://as.example\"]\n"),
        path,
    );
    assert_eq!(line, 7, "at the table header");
    assert!(msg.contains("required"), "{msg}");
    for (resource, why) in [
        ("http://mcp.example/mcp", "loopback"),
        ("https://mcp.example/other", "listen.path"),
        ("https://mcp.example/mcp?x=1", "no query"),
        ("https://mcp.example", "listen.path"),
        ("mcp.example/mcp", "absolute"),
    ] {
        let src = format!(
            "{JWT}[auth.oauth]\nresource = \"{resource}\"\nauthorization_servers = [\"https://as.example\"]\n"
        );
        let (line, msg) = error_at(&src, path);
        assert_eq!(line, line_of(&src, "resource ="), "{resource}");
        assert!(msg.contains(why), "{resource}: {msg}");
    }
    let path = "auth.oauth.authorization_servers";
    let src = format!("{JWT}[auth.oauth]\nresource = \"https://mcp.example/mcp\"\n");
    assert!(error_at(&src, path).1.contains("required"));
    let src = format!("{JWT}{OAUTH}").replace("[\"https://as.example\"]", "[]");
    assert!(error_at(&src, path).1.contains("at least one"));
    let src = format!("{JWT}{OAUTH}").replace(
        "[\"https://as.example\"]",
        "[\"https://as.example\", \"http://evil.example\"]",
    );
    assert!(error_at(&src, path).1.contains("loopback"));
    let src = format!("{JWT}{OAUTH}scopes_supported = [\"files:read\", \"offline_access\"]\n");
    let (line, msg) = error_at(&src, "auth.oauth.scopes_supported");
    assert_eq!(line, line_of(&src, "offline_access"));
    assert!(msg.contains("offline_access"), "{msg}");
    let src = format!("{JWT}{OAUTH}resource_documentation = \"docs\"\n");
    error_at(&src, "auth.oauth.resource_documentation");
    let src = format!("{JWT}{OAUTH}jwks_uri = \"https://x/\"\n");
    assert!(error_at(&src, "auth.oauth.jwks_uri")
        .1
        .contains("unknown key"));
}

#[test]
fn oauth_needs_jwt_and_its_issuer() {
    let (line, msg) = error_at(OAUTH, "auth.oauth");
    assert_eq!(line, 3);
    assert!(msg.contains("[auth.jwt]"), "{msg}");
    let src =
        format!("{JWT}{OAUTH}").replace("[\"https://as.example\"]", "[\"https://other.example\"]");
    let (line, msg) = error_at(&src, "auth.oauth.authorization_servers");
    assert_eq!(line, line_of(&src, "other.example"));
    assert!(msg.contains("auth.jwt.issuer"), "{msg}");
}

// === [auth.scopes] ===

#[test]
fn scope_rules_in_file_order_and_their_union() {
    let src = format!(
        "{JWT}[auth.scopes]\n\"tools/call\" = [\"mcp:tools\"]\n\
         \"tools/call:delete_*\" = [\"files:write\", \"files:read\"]\n\
         \"tools/call:delete_all\" = [\"admin\", \"files:write\"]\n\
         \"resources/read:file:///srv/*\" = [\"files:read\"]\n\
         \"resources/list\" = [\"files:read\"]\n"
    );
    let auth = ok(&src).auth;
    assert_eq!(
        auth.scopes[1],
        ScopeRule {
            method: "tools/call".into(),
            target_glob: Some("delete_*".into()),
            scopes: vec!["files:write".into(), "files:read".into()],
        }
    );
    let methods: Vec<_> = auth.scopes.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "tools/call",
            "tools/call",
            "tools/call",
            "resources/read",
            "resources/list"
        ]
    );
    assert_eq!(
        auth.scopes_needed("tools/call", Some("delete_all")),
        ["admin", "files:read", "files:write", "mcp:tools"]
    );
    assert_eq!(
        auth.scopes_needed("tools/call", Some("echo")),
        ["mcp:tools"]
    );
    assert_eq!(auth.scopes_needed("tools/call", None), ["mcp:tools"]);
    assert_eq!(
        auth.scopes_needed("resources/read", Some("file:///srv/a/b")),
        ["files:read"],
        "the URI after the first `:` is the glob"
    );
    assert!(auth
        .scopes_needed("resources/read", Some("file:///etc/x"))
        .is_empty());
    assert!(auth.scopes_needed("tools/list", None).is_empty());
}

#[test]
fn scope_rule_errors() {
    for (rule, why) in [
        ("\"tools call\" = [\"a\"]", "not an MCP method"),
        ("\"tools/list:x*\" = [\"a\"]", "take a `:GLOB`"),
        ("\"tools/call:\" = [\"a\"]", "empty"),
        ("\"tools/call\" = []", "at least one scope"),
        ("\"tools/call\" = [\"a b\"]", "scope token"),
        ("\"tools/call\" = \"a\"", "array"),
    ] {
        let src = format!("{JWT}[auth.scopes]\n{rule}\n");
        let all = errors(&src);
        assert_eq!(all.len(), 1, "{rule}: {all:?}");
        let (path, line, msg) = &all[0];
        assert!(path.starts_with("auth.scopes."), "{rule}: {path}");
        assert_eq!(*line, 8, "{rule}");
        assert!(msg.contains(why), "{rule}: {msg}");
    }
    let (line, msg) = error_at("[auth.scopes]\n\"tools/call\" = [\"a\"]\n", "auth.scopes");
    assert_eq!(line, 3);
    assert!(msg.contains("[auth.jwt]"), "{msg}");
}

// === [tenants.NAME] ===

#[test]
fn tenant_identities() {
    let src = format!(
        "{MTLS}{JWT}\
         [tenants.a]\nclient_cert = [\"spiffe://example.org/ns/a/*\", \"cn:Alpha\"]\n\
         jwt_subjects = [\"user-a-*\"]\nauth_methods = [\"jwt\", \"client_cert\", \"jwt\"]\n\
         [tenants.b]\nclient_cert = [\"*.B.Example.org\"]\njwt_subjects = [\"user-*\"]\n\
         [tenants.c]\napi_keys_sha256 = []\n"
    );
    let p = ok(&src);
    let a = &p.auth.tenants[0];
    assert_eq!(a.client_cert, ["spiffe://example.org/ns/a/*", "cn:Alpha"]);
    assert_eq!(a.auth_methods, [AuthMethod::Jwt, AuthMethod::ClientCert]);
    assert!(a.accepts(AuthMethod::Jwt) && !a.accepts(AuthMethod::ApiKey));
    assert!(p.auth.tenants[2].accepts(AuthMethod::ApiKey), "empty: any");
    assert_eq!(p.auth.tenants[1].client_cert, ["*.b.example.org"]);

    let sub = |s: &str| p.tenant_for_subject(s).map(|t| t.to_string());
    assert_eq!(sub("user-a-1").as_deref(), Some("a"), "first in file order");
    assert_eq!(sub("user-b").as_deref(), Some("b"));
    assert_eq!(sub("admin"), None);

    let cert = |ids: &[&str]| {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        p.tenant_for_client_cert(&ids).map(|t| t.to_string())
    };
    assert_eq!(
        cert(&["spiffe://example.org/ns/a/sa/x"]).as_deref(),
        Some("a")
    );
    assert_eq!(cert(&["x.example", "cn:Alpha"]).as_deref(), Some("a"));
    assert_eq!(cert(&["cn:alpha"]), None, "CN is compared exactly");
    assert_eq!(
        cert(&["Host.B.EXAMPLE.org"]).as_deref(),
        Some("b"),
        "DNS ignores case"
    );
    assert_eq!(cert(&["spiffe://example.org/ns/b/sa/x"]), None);
    assert_eq!(cert(&[]), None);
}

#[test]
fn a_tenant_identified_by_the_tenant_claim_alone() {
    let src = format!("{JWT}tenant_claim = \"org\"\n[tenants.acme]\nauth_methods = [\"jwt\"]\n");
    let p = ok(&src);
    assert_eq!(p.auth.tenants[0].auth_methods, [AuthMethod::Jwt]);
    let (line, msg) = error_at("[tenants.acme]\nrate_per_sec = 1\n", "tenants.acme");
    assert_eq!(line, 3);
    assert!(msg.contains("jwt_subjects"), "{msg}");
}

#[test]
fn tenant_identity_errors() {
    let hash = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "[tenants.t]\napi_keys_sha256 = []\nauth_methods = [\"password\"]\n".into(),
            "tenants.t.auth_methods",
            "not one of",
        ),
        (
            format!("[tenants.t]\napi_keys_sha256 = [\"{hash}\"]\nauth_methods = [\"jwt\"]\n"),
            "tenants.t.auth_methods",
            "[auth.jwt]",
        ),
        (
            "[tenants.t]\nclient_cert = [\"cn:x\"]\nauth_methods = [\"client_cert\"]\n".into(),
            "tenants.t.auth_methods",
            "client_auth",
        ),
        (
            format!("[listen.tls]\ncert_file = \"c\"\nkey_file = \"k\"\n[tenants.t]\napi_keys_sha256 = [\"{hash}\"]\nauth_methods = [\"client_cert\"]\n"),
            "tenants.t.auth_methods",
            "client_auth",
        ),
        (
            format!("{JWT}[tenants.t]\napi_keys_sha256 = [\"{hash}\"]\nauth_methods = [\"api_key\", \"jwt\"]\n"),
            "tenants.t.auth_methods",
            "jwt_subjects in this tenant",
        ),
        (
            format!("{MTLS}[tenants.t]\napi_keys_sha256 = []\nauth_methods = [\"client_cert\"]\n"),
            "tenants.t.auth_methods",
            "client_cert globs",
        ),
        (
            format!("{JWT}[tenants.t]\njwt_subjects = [\"s\"]\nauth_methods = [\"api_key\", \"jwt\"]\n"),
            "tenants.t.auth_methods",
            "api_keys_sha256",
        ),
        (
            format!("{JWT}[tenants.t]\napi_keys_sha256 = [\"{hash}\"]\njwt_subjects = [\"s\"]\nauth_methods = [\"jwt\"]\n"),
            "tenants.t.api_keys_sha256",
            "does not allow `api_key`",
        ),
        (
            format!("{MTLS}{JWT}[tenants.t]\nclient_cert = [\"cn:x\"]\njwt_subjects = [\"s\"]\nauth_methods = [\"jwt\"]\n"),
            "tenants.t.client_cert",
            "does not allow `client_cert`",
        ),
        (
            "[tenants.t]\njwt_subjects = [\"s\"]\n".into(),
            "tenants.t.jwt_subjects",
            "[auth.jwt]",
        ),
        (
            "[tenants.t]\nclient_cert = [\"spiffe://e.org/*\"]\n".into(),
            "tenants.t.client_cert",
            "client_auth",
        ),
        (
            format!("{MTLS}[tenants.t]\nclient_cert = [\"spiffe://e.org/*\", \"bad name!\"]\n"),
            "tenants.t.client_cert",
            "not a certificate identity",
        ),
        (
            format!("{MTLS}[tenants.t]\nclient_cert = [\"cn:\"]\n"),
            "tenants.t.client_cert",
            "not a certificate identity",
        ),
        (
            format!("{JWT}[tenants.t]\njwt_subjects = [\"\"]\n"),
            "tenants.t.jwt_subjects",
            "non-empty",
        ),
    ];
    for (src, path, why) in cases {
        let all = errors(&src);
        let hits: Vec<_> = all.iter().filter(|(p, _, _)| p == path).collect();
        assert_eq!(hits.len(), 1, "{src}: {all:?}");
        let (_, line, msg) = hits[0];
        let key = path.rsplit('.').next().unwrap();
        assert_eq!(*line, line_of(&src, &format!("{key} =")), "{src}");
        assert!(msg.contains(why), "{src}: {msg}");
    }
}
