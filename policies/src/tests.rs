use super::*;

fn errors(src: &str) -> Vec<PolicyError> {
    parse_policy("p.toml", src)
        .expect_err("policy should be invalid")
        .0
}

const MINIMAL: &str = "[upstream]\nurl = \"http://127.0.0.1:9100/mcp\"\n";

#[test]
fn minimal_file_gets_safe_defaults() {
    let p = parse_policy("p.toml", MINIMAL).unwrap();
    assert_eq!(p.listen.address.to_string(), "127.0.0.1:8080");
    assert_eq!(p.listen.path, "/mcp");
    let pool = p.pool_for("anonymous");
    assert_eq!(pool.name, "default");
    assert_eq!(
        pool.endpoints[0].transport,
        Transport::Http {
            tls: false,
            host: "127.0.0.1".into(),
            port: 9100,
            path: "/mcp".into()
        }
    );
    assert_eq!(p.limits.max_body_bytes, 4 * 1024 * 1024);
    assert!(!p.limits.allow_batches);
    assert_eq!(p.auth.anonymous_tenant.as_deref(), Some("anonymous"));
    assert!(p
        .origin
        .allowed_hosts
        .iter()
        .any(|h| h.matches("localhost", Some(1))));
}

#[test]
fn every_error_is_reported_at_once_with_location() {
    let src = "[listen]\naddress = 12\nbogus = true\n\n[upstream]\nurl = \"ftp://x/\"\n\n[limits]\nmax_json_depth = 0\n";
    let errs = errors(src);
    let paths: Vec<_> = errs
        .iter()
        .map(|e| (e.key_path.as_str(), e.line, e.column))
        .collect();
    assert!(paths.contains(&("listen.address", 2, 11)), "{paths:?}");
    assert!(paths.contains(&("listen.bogus", 3, 1)), "{paths:?}");
    assert!(paths.contains(&("upstream.url", 6, 7)), "{paths:?}");
    assert!(
        paths.contains(&("limits.max_json_depth", 9, 18)),
        "{paths:?}"
    );
    assert_eq!(errs.len(), 4);
}

#[test]
fn unknown_top_level_table_and_missing_upstream() {
    let errs = errors("[lisen]\naddress = \"127.0.0.1:1\"\n");
    assert!(errs.iter().any(|e| e.key_path == "lisen" && e.line == 1));
    assert!(errs
        .iter()
        .any(|e| e.key_path == "upstream" && e.message.contains("missing")));
}

#[test]
fn syntax_error_has_line_and_column() {
    let errs = errors("[upstream]\nurl = \"http://a\nx = 1\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, 2);
    assert!(errs[0].message.contains("invalid TOML"));
}

#[test]
fn tenants_keys_are_checked() {
    let src = format!("{MINIMAL}[tenants.acme]\napi_keys_sha256 = [\"zz\"]\nextra = 1\n");
    let errs = errors(&src);
    assert!(errs
        .iter()
        .any(|e| e.key_path == "tenants.acme.api_keys_sha256"));
    assert!(errs.iter().any(|e| e.key_path == "tenants.acme.extra"));
}

#[test]
fn tenant_lookup_by_key_hash() {
    let hash = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"; // sha256("foo")
    let src = format!("{MINIMAL}[tenants.acme]\napi_keys_sha256 = [\"{hash}\"]\n");
    let p = parse_policy("p.toml", &src).unwrap();
    assert_eq!(p.auth.tenant_for_key(b"foo").map(|t| &**t), Some("acme"));
    assert!(p.auth.tenant_for_key(b"bar").is_none());
    assert!(
        p.auth.anonymous_tenant.is_none(),
        "tenants configured: no implicit anonymous tenant"
    );
}

#[test]
fn version_lists_are_validated() {
    let src = format!("{MINIMAL}[protocol]\nmodern_versions = [\"2026-7-28\", 3]\n");
    let errs = errors(&src);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key_path, "protocol.modern_versions[1]");
}

#[test]
fn host_patterns() {
    use crate::compile::parse_host_pattern;
    assert_eq!(
        parse_host_pattern("LocalHost:8080").unwrap(),
        HostPattern {
            host: "localhost".into(),
            port: Some(8080)
        }
    );
    assert_eq!(parse_host_pattern("[::1]").unwrap().host, "[::1]");
    assert!(parse_host_pattern("a b").is_none());
    assert!(parse_host_pattern("host:99999").is_none());
}

#[test]
fn the_example_config_is_valid_and_documents_every_section() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.example.toml");
    let p = parse_policy_file(std::path::Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
    assert!(p.admin.is_some());
    assert_eq!(p.auth.tenants.len(), 1);
    let src = std::fs::read_to_string(path).unwrap();
    for section in [
        "[listen]",
        "[upstream]",
        "[limits]",
        "[protocol]",
        "[origin]",
        "[auth]",
        "[sessions]",
        "[admin]",
        "[paths]",
        "[paths.tools]",
        "[headers]",
        "[ssrf]",
        "[ssrf.tools]",
    ] {
        assert!(src.contains(section), "{section} missing from the example");
    }
}

#[test]
fn named_pools_tenant_routes_and_limits() {
    let src = r#"
[upstreams.main]
endpoints = ["http://127.0.0.1:9101/mcp", "http://127.0.0.1:9102/mcp"]
request_timeout_ms = 5000
[upstreams.main.breaker]
consecutive_failures = 3
[upstreams.main.tools.slow]
request_timeout_ms = 20000
[upstreams.side]
url = "http://127.0.0.1:9200/mcp"
[tenants.acme]
api_keys_sha256 = ["2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"]
upstream = "side"
max_in_flight = 10
rate_per_sec = 5
[rate_limits]
session_per_sec = 2
[rate_limits.tools.get-env]
per_sec = 1
"#;
    let p = parse_policy("p.toml", src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.upstreams.len(), 2);
    assert_eq!(p.pool_for("acme").name, "side");
    assert_eq!(
        p.pool_for("someone-else").name,
        "main",
        "no default pool: the first one"
    );
    let main = &p.upstreams[0];
    assert_eq!(main.endpoints.len(), 2);
    assert_eq!(main.breaker.consecutive_failures, 3);
    assert_eq!(main.timeouts_for(Some("slow")).request_ms, 20_000);
    assert_eq!(main.timeouts_for(Some("fast")).request_ms, 5_000);
    let acme = p.tenant_limits("acme").unwrap();
    assert_eq!(acme.max_in_flight, Some(10));
    assert_eq!(
        acme.rate,
        Some(Rate {
            per_sec: 5,
            burst: 5
        })
    );
    assert_eq!(
        p.rate_limits.session,
        Rate {
            per_sec: 2,
            burst: 2
        }
    );
    assert_eq!(p.rate_limits.tools["get-env"].per_sec, 1);
}

#[test]
fn pool_errors_are_located() {
    let src = "[upstreams.a]\nendpoints = [\"ftp://x\"]\nbogus = 1\n[upstreams.a.breaker]\nfailure_rate_percent = 150\n[tenants.t]\napi_keys_sha256 = []\nupstream = \"nope\"\n";
    let errs = errors(src);
    let paths: Vec<_> = errs.iter().map(|e| e.key_path.as_str()).collect();
    assert!(paths.contains(&"upstreams.a.url"), "{paths:?}");
    assert!(paths.contains(&"upstreams.a.bogus"), "{paths:?}");
    assert!(
        paths.contains(&"upstreams.a.breaker.failure_rate_percent"),
        "{paths:?}"
    );
    assert!(paths.contains(&"tenants.t.upstream"), "{paths:?}");
}

#[test]
fn session_version_header_defaults_to_allowlisted() {
    let p = parse_policy("p.toml", MINIMAL).unwrap();
    assert_eq!(
        p.protocol.session_version_header,
        SessionVersionHeader::Allowlisted
    );
    let strict = format!("{MINIMAL}[protocol]\nsession_version_header = \"negotiated\"\n");
    let p = parse_policy("p.toml", &strict).unwrap();
    assert_eq!(
        p.protocol.session_version_header,
        SessionVersionHeader::Negotiated
    );
    let errs = errors(&format!(
        "{MINIMAL}[protocol]\nsession_version_header = \"exact\"\n"
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        (errs[0].key_path.as_str(), errs[0].line, errs[0].column),
        ("protocol.session_version_header", 4, 26)
    );
}

#[test]
fn shutdown_grace_secs() {
    let p = parse_policy("p.toml", MINIMAL).unwrap();
    assert_eq!(p.shutdown, Shutdown { grace_secs: 30 });
    assert_eq!(Shutdown::default().grace_secs, 30);
    for (value, want) in [(0, 0), (5, 5), (3600, 3600)] {
        let src = format!("{MINIMAL}[shutdown]\ngrace_secs = {value}\n");
        let p = parse_policy("p.toml", &src).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.shutdown.grace_secs, want);
    }
    let errs = errors(&format!(
        "{MINIMAL}[shutdown]\ngrace_secs = 3601\ngrace = 1\n"
    ));
    let got: Vec<_> = errs
        .iter()
        .map(|e| (e.file.as_str(), e.key_path.as_str(), e.line, e.column))
        .collect();
    assert_eq!(
        got,
        [
            ("p.toml", "shutdown.grace_secs", 4, 14),
            ("p.toml", "shutdown.grace", 5, 1)
        ]
    );
    let errs = errors(&format!("{MINIMAL}[shutdown]\ngrace_secs = \"30s\"\n"));
    assert_eq!(errs[0].key_path, "shutdown.grace_secs");
    let errs = errors(&format!("shutdown = 30\n{MINIMAL}"));
    assert_eq!(errs[0].key_path, "shutdown");
}
