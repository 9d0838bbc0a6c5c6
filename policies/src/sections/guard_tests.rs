//! The input-guard sections through the whole loader: `[paths]`, `[ssrf]`,
//! `[headers]` and `[tenants.NAME.paths]`.

use crate::{parse_policy, PolicyError, DEFAULT_UPSTREAM};

const MINIMAL: &str = "[upstream]\nurl = \"http://127.0.0.1:9100/mcp\"\n";

fn errors(extra: &str) -> Vec<PolicyError> {
    parse_policy("p.toml", &format!("{MINIMAL}{extra}"))
        .expect_err("policy should be invalid")
        .0
}

#[test]
fn defaults_guard_headers_and_leave_paths_open() {
    let p = parse_policy("p.toml", MINIMAL).unwrap();
    assert!(p.paths.scope.schemes.is_empty() && p.paths.scope.roots.is_empty());
    assert!(!p.paths.heuristic && p.paths.tools.is_empty());
    assert!(!p.ssrf.enabled);
    assert_eq!(p.ssrf.allowed_schemes, ["http", "https"]);
    assert_eq!(p.headers.max_block_bytes, 32 * 1024);
    assert_eq!(p.headers.max_field_bytes, 8 * 1024);
}

#[test]
fn paths_tenants_and_upstreams() {
    let src = format!(
        "{MINIMAL}[paths]\nallowed_schemes = [\"FILE\", \"demo\"]\nallowed_roots = [\"file:///srv/data/**\"]\nheuristic = true\n\
         [paths.tools]\nread_file = [\"/path\", \"/dest/0\"]\n\
         [paths.upstreams.default]\nallowed_roots = [\"file:///srv/**\"]\n\
         [tenants.acme]\napi_keys_sha256 = []\n[tenants.acme.paths]\nallowed_roots = [\"file:///srv/data/acme/**\"]\n"
    );
    let p = parse_policy("p.toml", &src).unwrap();
    assert_eq!(p.paths.scope.schemes, ["file", "demo"]);
    assert!(p.paths.heuristic);
    assert_eq!(p.paths.tools["read_file"], ["/path", "/dest/0"]);
    let acme = &p.paths.tenants["acme"];
    assert_eq!(acme.schemes, ["file", "demo"], "inherited from [paths]");
    assert_eq!(acme.roots[0].as_str(), "file:///srv/data/acme/**");
    let [own, up] = p.paths.scopes(Some("acme"), DEFAULT_UPSTREAM);
    assert_eq!(own, Some(acme));
    assert_eq!(up.unwrap().roots[0].as_str(), "file:///srv/**");
    let [own, _] = p.paths.scopes(Some("other"), DEFAULT_UPSTREAM);
    assert_eq!(own, Some(&p.paths.scope));
}

#[test]
fn guard_errors_are_located() {
    let errs = errors(
        "[paths]\nallowed_roots = [\"/srv/**\"]\nallowed_schemes = [\"1x\"]\nheuristics = true\n\
         [paths.tools]\nread_file = [\"path\"]\n[paths.upstreams.nope]\nallowed_roots = []\n\
         [ssrf]\nenabled = \"yes\"\nallow_cidrs = [\"10.0.0.0/33\"]\nallow_hosts = [\"a b\"]\n\
         [headers]\nmax_block_bytes = 10\n",
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.key_path.as_str()).collect();
    for want in [
        "paths.allowed_roots",
        "paths.allowed_schemes",
        "paths.heuristics",
        "paths.tools.read_file",
        "paths.upstreams.nope",
        "ssrf.enabled",
        "ssrf.allow_cidrs",
        "ssrf.allow_hosts",
        "headers.max_block_bytes",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
    assert!(errs.iter().all(|e| e.line > 2), "{errs:?}");
    let errs = errors("[tenants.acme]\napi_keys_sha256 = []\n[tenants.acme.paths]\nroots = []\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key_path, "tenants.acme.paths.roots");
    let errs = errors("[headers]\nmax_block_bytes = 2048\nmax_field_bytes = 4096\n");
    assert_eq!(errs[0].key_path, "headers.max_field_bytes");
}
