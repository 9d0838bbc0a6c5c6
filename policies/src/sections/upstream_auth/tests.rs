use std::path::PathBuf;

use crate::testutil::{ok, policy_errors};
use crate::{parse_policy, MintAlgorithm, UpstreamCredential};

/// The credential of the default pool of `[upstream]` + `src`.
fn auth(src: &str) -> Option<UpstreamCredential> {
    ok(src).upstreams[0].auth.clone()
}

/// The one error of `[upstream]` + `src`: (key path, message).
fn error(src: &str) -> (String, String) {
    let errs = policy_errors(src);
    assert_eq!(errs.len(), 1, "{src}: {errs:?}");
    (errs[0].key_path.clone(), errs[0].message.clone())
}

/// Asserts that the one error is at `path` and its message contains `part`.
#[track_caller]
fn assert_error(src: &str, path: &str, part: &str) {
    let (p, m) = error(src);
    assert_eq!(p, path, "{src}: {m}");
    assert!(m.contains(part), "{src}: `{m}` lacks `{part}`");
}

fn bearer(file: Option<&str>, env: Option<&str>) -> UpstreamCredential {
    UpstreamCredential::Static {
        header: "authorization".into(),
        prefix: "Bearer ".into(),
        file: file.map(PathBuf::from),
        env: env.map(String::from),
    }
}

#[test]
fn absent_means_no_credential() {
    assert_eq!(auth(""), None);
}

#[test]
fn bearer_from_a_file_or_the_environment() {
    assert_eq!(
        auth("[upstream.auth]\nbearer_file = \"/run/secrets/up\"\n"),
        Some(bearer(Some("/run/secrets/up"), None))
    );
    assert_eq!(
        auth("[upstream.auth]\nbearer_env = \"UPSTREAM_TOKEN\"\n"),
        Some(bearer(None, Some("UPSTREAM_TOKEN")))
    );
    // Dotted keys and an inline table are the same table.
    let dotted = "[upstream]\nurl = \"http://127.0.0.1:1/mcp\"\nauth.bearer_env = \"_T1\"\n";
    let p = parse_policy("t.toml", dotted).unwrap();
    assert_eq!(p.upstreams[0].auth, Some(bearer(None, Some("_T1"))));
    let inline = "[upstream]\nurl = \"http://127.0.0.1:1/mcp\"\nauth = { bearer_env = \"T\" }\n";
    let p = parse_policy("t.toml", inline).unwrap();
    assert_eq!(p.upstreams[0].auth, Some(bearer(None, Some("T"))));
}

#[test]
fn a_named_header_lower_cased_without_prefix() {
    assert_eq!(
        auth("[upstream.auth]\nheader = \"X-Api-Key\"\nvalue_file = \"key.txt\"\n"),
        Some(UpstreamCredential::Static {
            header: "x-api-key".into(),
            prefix: String::new(),
            file: Some("key.txt".into()),
            env: None,
        })
    );
    assert_eq!(
        auth("[upstream.auth]\nheader = \"authorization\"\nvalue_env = \"RAW\"\n"),
        Some(UpstreamCredential::Static {
            header: "authorization".into(),
            prefix: String::new(),
            file: None,
            env: Some("RAW".into()),
        })
    );
}

#[test]
fn mint_with_defaults() {
    assert_eq!(
        auth(
            "[upstream.auth]\nmint = true\nmint_key_file = \"mint.pem\"\n\
             mint_audience = \"https://up.example/mcp\"\n"
        ),
        Some(UpstreamCredential::Mint {
            key_file: "mint.pem".into(),
            algorithm: MintAlgorithm::Es256,
            audience: "https://up.example/mcp".into(),
            issuer: "mcpgate".into(),
            ttl_secs: 300,
            kid: None,
        })
    );
}

#[test]
fn mint_with_every_key() {
    assert_eq!(
        auth(
            "[upstream.auth]\nmint = true\nmint_key_file = \"ed.pem\"\nmint_algorithm = \"EdDSA\"\n\
             mint_audience = \"up\"\nmint_issuer = \"https://gate.example\"\n\
             mint_ttl_secs = 60\nmint_kid = \"k1\"\n"
        ),
        Some(UpstreamCredential::Mint {
            key_file: "ed.pem".into(),
            algorithm: MintAlgorithm::EdDsa,
            audience: "up".into(),
            issuer: "https://gate.example".into(),
            ttl_secs: 60,
            kid: Some("k1".into()),
        })
    );
    assert_eq!(MintAlgorithm::Es256.name(), "ES256");
    assert_eq!(MintAlgorithm::EdDsa.name(), "EdDSA");
    let mint = |ttl: i64| {
        format!(
            "[upstream.auth]\nmint = true\nmint_key_file = \"k\"\nmint_audience = \"a\"\n\
             mint_ttl_secs = {ttl}\n"
        )
    };
    for ttl in [30, 3600] {
        assert!(
            matches!(auth(&mint(ttl)), Some(UpstreamCredential::Mint { ttl_secs, .. }) if ttl_secs == ttl as u64)
        );
    }
    for ttl in [0, 29, 3601] {
        assert_error(
            &mint(ttl),
            "upstream.auth.mint_ttl_secs",
            "out of range (30..=3600)",
        );
    }
}

#[test]
fn named_pools_take_the_same_table() {
    let src = "[upstreams.main]\nurl = \"http://127.0.0.1:1/mcp\"\n\
               [upstreams.main.auth]\nbearer_env = \"MAIN\"\n\
               [upstreams.side]\nurl = \"http://127.0.0.1:2/mcp\"\n";
    let p = parse_policy("t.toml", src).unwrap();
    let pool = |n: &str| p.upstreams.iter().find(|u| u.name == n).unwrap();
    assert_eq!(pool("main").auth, Some(bearer(None, Some("MAIN"))));
    assert_eq!(pool("side").auth, None);

    let bad = "[upstreams.main]\nurl = \"http://127.0.0.1:1/mcp\"\n\
               [upstreams.main.auth]\nbearer_env = \"MAIN\"\ntoken = \"x\"\n";
    let errs = parse_policy("t.toml", bad).unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key_path, "upstreams.main.auth.token");
    assert_eq!((errs[0].line, errs[0].column), (5, 1));
    assert!(errs[0].message.contains("unknown key"));
}

#[test]
fn errors_are_located() {
    let errs = policy_errors("[upstream.auth]\nbearer_env = \"A\"\nbearer_file = \"f\"\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = &errs[0];
    assert_eq!(
        (e.key_path.as_str(), e.line, e.column),
        ("upstream.auth.bearer_env", 4, 14)
    );
    assert_eq!(e.file, "t.toml");
    let errs = policy_errors("[upstream.auth]\n");
    assert_eq!(
        (errs[0].key_path.as_str(), errs[0].line),
        ("upstream.auth", 3)
    );
}

#[test]
fn unknown_keys_and_wrong_types() {
    assert_error(
        "[upstream.auth]\nbearer_env = \"A\"\ntoken = \"x\"\n",
        "upstream.auth.token",
        "unknown key (expected one of: bearer_file,",
    );
    assert_error(
        "[upstream.auth]\nbearer_file = 1\n",
        "upstream.auth.bearer_file",
        "expected a string",
    );
    // A mistyped `mint` is one error, not also "only with mint = true".
    assert_error(
        "[upstream.auth]\nmint = \"yes\"\nmint_key_file = \"k\"\nmint_audience = \"a\"\n",
        "upstream.auth.mint",
        "expected a boolean",
    );
    let src = "[upstream]\nurl = \"http://127.0.0.1:1/mcp\"\nauth = \"Bearer x\"\n";
    let errs = parse_policy("t.toml", src).unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key_path, "upstream.auth");
    assert!(errs[0].message.contains("expected a table"));
}

#[test]
fn exactly_one_source() {
    for none in ["[upstream.auth]\n", "[upstream.auth]\nmint = false\n"] {
        assert_error(none, "upstream.auth", "no credential");
    }
    for (src, second) in [
        ("bearer_file = \"f\"\nbearer_env = \"E\"\n", "bearer_env"),
        (
            "bearer_env = \"E\"\nmint = true\nmint_key_file = \"k\"\nmint_audience = \"a\"\n",
            "mint",
        ),
        (
            "header = \"x-key\"\nvalue_file = \"f\"\nvalue_env = \"E\"\n",
            "value_env",
        ),
    ] {
        assert_error(
            &format!("[upstream.auth]\n{src}"),
            &format!("upstream.auth.{second}"),
            "give exactly one credential source, not both",
        );
    }
    // Three sources: the second and the third are reported.
    let errs = policy_errors("[upstream.auth]\nbearer_file = \"f\"\nbearer_env = \"E\"\nmint = true\nmint_key_file = \"k\"\nmint_audience = \"a\"\n");
    let paths: Vec<&str> = errs.iter().map(|e| e.key_path.as_str()).collect();
    assert_eq!(paths, ["upstream.auth.bearer_env", "upstream.auth.mint"]);
}

#[test]
fn header_and_value_go_together() {
    assert_error(
        "[upstream.auth]\nheader = \"x-key\"\n",
        "upstream.auth.header",
        "needs value_file or value_env",
    );
    assert_error(
        "[upstream.auth]\nheader = \"x-key\"\nbearer_env = \"E\"\n",
        "upstream.auth.header",
        "needs value_file or value_env",
    );
    for key in ["value_file", "value_env"] {
        let src = format!("[upstream.auth]\n{key} = \"V\"\n");
        assert_error(&src, &format!("upstream.auth.{key}"), "needs `header`");
    }
}

#[test]
fn hop_by_hop_framing_and_invalid_headers_are_refused() {
    for h in [
        "connection",
        "Keep-Alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "Host",
        "content-length",
        "proxy-authorization",
        "Proxy-Connection",
    ] {
        assert_error(
            &format!("[upstream.auth]\nheader = \"{h}\"\nvalue_env = \"V\"\n"),
            "upstream.auth.header",
            "hop-by-hop or framing header",
        );
    }
    for h in ["", "x key", "x-key:", "bearer\\n", "é"] {
        assert_error(
            &format!("[upstream.auth]\nheader = \"{h}\"\nvalue_env = \"V\"\n"),
            "upstream.auth.header",
            "is not a valid header name",
        );
    }
}

#[test]
fn environment_variable_names() {
    for key in ["bearer_env", "value_env"] {
        let header = if key == "value_env" {
            "header = \"x-key\"\n"
        } else {
            ""
        };
        for good in ["A", "_", "a_1", "UPSTREAM_TOKEN_2"] {
            let src = format!("[upstream.auth]\n{header}{key} = \"{good}\"\n");
            assert!(auth(&src).is_some(), "{src}");
        }
        for bad in ["", "1A", "A-B", "A B", "$A", "A=B"] {
            assert_error(
                &format!("[upstream.auth]\n{header}{key} = \"{bad}\"\n"),
                &format!("upstream.auth.{key}"),
                "is not an environment variable name",
            );
        }
    }
}

#[test]
fn empty_values_are_refused() {
    assert_error(
        "[upstream.auth]\nbearer_file = \"\"\n",
        "upstream.auth.bearer_file",
        "must not be empty",
    );
    assert_error(
        "[upstream.auth]\nheader = \"x-key\"\nvalue_file = \"\"\n",
        "upstream.auth.value_file",
        "must not be empty",
    );
    for (key, value) in [
        (
            "mint_key_file",
            "mint_key_file = \"\"\nmint_audience = \"a\"\n",
        ),
        (
            "mint_audience",
            "mint_key_file = \"k\"\nmint_audience = \"\"\n",
        ),
        (
            "mint_issuer",
            "mint_key_file = \"k\"\nmint_audience = \"a\"\nmint_issuer = \"\"\n",
        ),
        (
            "mint_kid",
            "mint_key_file = \"k\"\nmint_audience = \"a\"\nmint_kid = \"\"\n",
        ),
    ] {
        assert_error(
            &format!("[upstream.auth]\nmint = true\n{value}"),
            &format!("upstream.auth.{key}"),
            "must not be empty",
        );
    }
}

#[test]
fn mint_needs_its_key_file_and_audience() {
    assert_error(
        "[upstream.auth]\nmint = true\nmint_audience = \"a\"\n",
        "upstream.auth.mint_key_file",
        "missing required key",
    );
    assert_error(
        "[upstream.auth]\nmint = true\nmint_key_file = \"k\"\n",
        "upstream.auth.mint_audience",
        "missing required key",
    );
    let errs = policy_errors("[upstream.auth]\nmint = true\n");
    let paths: Vec<&str> = errs.iter().map(|e| e.key_path.as_str()).collect();
    assert_eq!(
        paths,
        ["upstream.auth.mint_key_file", "upstream.auth.mint_audience"]
    );
}

#[test]
fn mint_never_signs_with_rsa() {
    let mint = |alg: &str| {
        format!(
            "[upstream.auth]\nmint = true\nmint_key_file = \"k\"\nmint_audience = \"a\"\n\
             mint_algorithm = \"{alg}\"\n"
        )
    };
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
        assert_error(
            &mint(alg),
            "upstream.auth.mint_algorithm",
            "mcpgate never signs with RSA",
        );
    }
    for alg in ["HS256", "ES384", "es256", "none", ""] {
        assert_error(
            &mint(alg),
            "upstream.auth.mint_algorithm",
            "is not one of \"ES256\", \"EdDSA\"",
        );
    }
}

#[test]
fn mint_keys_only_with_mint() {
    for (key, value) in [
        ("mint_key_file", "\"k\""),
        ("mint_algorithm", "\"ES256\""),
        ("mint_audience", "\"a\""),
        ("mint_issuer", "\"i\""),
        ("mint_ttl_secs", "60"),
        ("mint_kid", "\"k1\""),
    ] {
        for mint in ["", "mint = false\n"] {
            let src = format!("[upstream.auth]\nbearer_env = \"E\"\n{mint}{key} = {value}\n");
            assert_error(
                &src,
                &format!("upstream.auth.{key}"),
                "only with mint = true",
            );
        }
    }
}
