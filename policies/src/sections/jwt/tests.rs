use crate::testutil::{error_at, errors, ok};
use crate::{JwtAlgorithm, JwtPolicy};

const BASE: &str = "[auth.jwt]\nissuer = \"https://as.example\"\n\
                    audiences = [\"https://mcp.example/mcp\"]\n";

fn jwt(src: &str) -> JwtPolicy {
    ok(src).auth.jwt.expect("[auth.jwt] read")
}

#[test]
fn absent_means_no_tokens() {
    let p = ok("");
    assert!(p.auth.jwt.is_none());
    assert_eq!(p.auth.anonymous_tenant.as_deref(), Some("anonymous"));
}

#[test]
fn defaults() {
    let j = jwt(&format!("{BASE}jwks_url = \"https://as.example/jwks\"\n"));
    assert_eq!(j.issuer, "https://as.example");
    assert_eq!(j.audiences, ["https://mcp.example/mcp"]);
    assert_eq!(j.jwks_url.as_deref(), Some("https://as.example/jwks"));
    assert_eq!(j.jwks_file, None);
    assert!(!j.allow_insecure_jwks_url);
    assert_eq!((j.jwks_refresh_secs, j.jwks_min_interval_secs), (300, 10));
    assert_eq!(j.algorithms, [JwtAlgorithm::RS256, JwtAlgorithm::ES256]);
    assert_eq!(j.leeway_secs, 60);
    assert_eq!(j.required_claims, ["exp"]);
    assert_eq!(j.tenant_claim, None);
    assert_eq!(j.accepted_types, ["at+jwt", "application/at+jwt"]);
    assert!(!j.accept_any_type);
    assert_eq!(j.max_token_bytes, 8192);
    let mut expected = JwtPolicy::new("https://as.example", vec!["https://mcp.example/mcp".into()]);
    expected.jwks_url = j.jwks_url.clone();
    assert_eq!(j, expected, "JwtPolicy::new holds the documented defaults");
}

#[test]
fn with_jwt_there_is_no_implicit_anonymous_tenant() {
    let p = ok(&format!("{BASE}jwks_file = \"jwks.json\"\n"));
    assert_eq!(p.auth.anonymous_tenant, None);
    let p = ok(&format!(
        "[auth]\nanonymous_tenant = \"guest\"\n{BASE}jwks_file = \"jwks.json\"\n"
    ));
    assert_eq!(p.auth.anonymous_tenant.as_deref(), Some("guest"));
}

#[test]
fn every_key() {
    let j = jwt(&format!(
        "{BASE}jwks_url = \"http://127.0.0.1:9000/jwks\"\nallow_insecure_jwks_url = true\n\
         jwks_refresh_secs = 600\njwks_min_interval_secs = 30\n\
         algorithms = [\"PS256\", \"EdDSA\", \"ES384\", \"PS256\"]\nleeway_secs = 0\n\
         required_claims = [\"sub\", \"client_id\"]\ntenant_claim = \"org\"\n\
         accepted_types = [\"AT+JWT\"]\naccept_any_type = true\nmax_token_bytes = 16384\n"
    ));
    assert_eq!(j.jwks_url.as_deref(), Some("http://127.0.0.1:9000/jwks"));
    assert!(j.allow_insecure_jwks_url);
    assert_eq!((j.jwks_refresh_secs, j.jwks_min_interval_secs), (600, 30));
    assert_eq!(
        j.algorithms,
        [
            JwtAlgorithm::PS256,
            JwtAlgorithm::EdDSA,
            JwtAlgorithm::ES384
        ]
    );
    assert_eq!(j.leeway_secs, 0);
    assert_eq!(j.required_claims, ["exp", "sub", "client_id"], "exp always");
    assert_eq!(j.tenant_claim.as_deref(), Some("org"));
    assert_eq!(j.accepted_types, ["at+jwt"]);
    assert!(j.accept_any_type && j.accepts_type(Some("JWT")) && j.accepts_type(None));
    assert_eq!(j.max_token_bytes, 16384);
}

#[test]
fn hmac_with_a_secret_file() {
    let j = jwt(&format!(
        "{BASE}algorithms = [\"HS256\", \"HS512\"]\nhmac_secret_file = \"secret\"\n"
    ));
    assert_eq!(j.algorithms, [JwtAlgorithm::HS256, JwtAlgorithm::HS512]);
    assert_eq!(j.hmac_secret_file.as_deref(), Some("secret".as_ref()));
    assert!(j.jwks_file.is_none() && j.jwks_url.is_none());
}

#[test]
fn types_compare_without_case() {
    let j = jwt(&format!("{BASE}jwks_file = \"k\"\n"));
    assert!(j.accepts_type(Some("at+jwt")));
    assert!(j.accepts_type(Some("Application/AT+JWT")));
    assert!(!j.accepts_type(Some("JWT")));
    assert!(!j.accepts_type(None));
}

#[test]
fn issuer_and_audiences_are_required() {
    let (line, msg) = error_at("[auth.jwt]\njwks_file = \"k\"\n", "auth.jwt.issuer");
    assert_eq!(line, 3);
    assert!(msg.contains("required"), "{msg}");
    let (_, msg) = error_at("[auth.jwt]\njwks_file = \"k\"\n", "auth.jwt.audiences");
    assert!(msg.contains("required"), "{msg}");
    let src = "[auth.jwt]\nissuer = \"i\"\naudiences = []\njwks_file = \"k\"\n";
    let (line, msg) = error_at(src, "auth.jwt.audiences");
    assert_eq!(line, 5);
    assert!(msg.contains("at least one"), "{msg}");
    let src = "[auth.jwt]\nissuer = \"\"\naudiences = [\"a\", \"\"]\njwks_file = \"k\"\n";
    error_at(src, "auth.jwt.issuer");
    error_at(src, "auth.jwt.audiences");
}

#[test]
fn none_is_refused_with_its_reason() {
    let src = format!("{BASE}jwks_file = \"k\"\nalgorithms = [\"RS256\", \"none\"]\n");
    let (line, msg) = error_at(&src, "auth.jwt.algorithms");
    assert_eq!(line, 7);
    assert!(msg.contains("unsigned"), "{msg}");
    let src = format!("{BASE}jwks_file = \"k\"\nalgorithms = [\"NONE\"]\n");
    assert!(errors(&src).iter().any(|(_, _, m)| m.contains("unsigned")));
}

#[test]
fn unknown_and_empty_algorithm_lists() {
    let src = format!("{BASE}jwks_file = \"k\"\nalgorithms = [\"rs256\"]\n");
    let all = errors(&src);
    assert!(
        all.iter()
            .any(|(p, _, m)| p == "auth.jwt.algorithms" && m.contains("`rs256`")),
        "{all:?}"
    );
    let src = format!("{BASE}jwks_file = \"k\"\nalgorithms = []\n");
    let (_, msg) = error_at(&src, "auth.jwt.algorithms");
    assert!(msg.contains("at least one"), "{msg}");
}

#[test]
fn hmac_rules_against_algorithm_confusion() {
    // Mixed families.
    let src = format!(
        "{BASE}algorithms = [\"RS256\", \"HS256\"]\nhmac_secret_file = \"s\"\njwks_file = \"k\"\n"
    );
    let all = errors(&src);
    assert!(
        all.iter()
            .any(|(p, _, m)| p == "auth.jwt.algorithms" && m.contains("algorithm confusion")),
        "{all:?}"
    );
    // HS* without the secret.
    let (_, msg) = error_at(
        &format!("{BASE}algorithms = [\"HS256\"]\n"),
        "auth.jwt.hmac_secret_file",
    );
    assert!(msg.contains("need hmac_secret_file"), "{msg}");
    // HS* with a JWKS.
    let src = format!(
        "{BASE}algorithms = [\"HS384\"]\nhmac_secret_file = \"s\"\njwks_url = \"https://a/k\"\n"
    );
    let (line, _) = error_at(&src, "auth.jwt.jwks_url");
    assert_eq!(line, 8);
    // A secret without HS*.
    let src = format!("{BASE}jwks_file = \"k\"\nhmac_secret_file = \"s\"\n");
    let (_, msg) = error_at(&src, "auth.jwt.hmac_secret_file");
    assert!(msg.contains("only for HS256"), "{msg}");
}

#[test]
fn exactly_one_key_source() {
    let (line, msg) = error_at(BASE, "auth.jwt.jwks_url");
    assert_eq!(line, 3, "at the table");
    assert!(msg.contains("jwks_url or jwks_file"), "{msg}");
    let src = format!("{BASE}jwks_file = \"k\"\njwks_url = \"https://a/k\"\n");
    let (_, msg) = error_at(&src, "auth.jwt.jwks_url");
    assert!(msg.contains("not both"), "{msg}");
}

#[test]
fn jwks_url_is_https_unless_loopback_is_allowed() {
    let src = format!("{BASE}jwks_url = \"http://127.0.0.1/jwks\"\n");
    let (_, msg) = error_at(&src, "auth.jwt.jwks_url");
    assert!(msg.contains("allow_insecure_jwks_url"), "{msg}");
    let src =
        format!("{BASE}jwks_url = \"http://as.example/jwks\"\nallow_insecure_jwks_url = true\n");
    let (_, msg) = error_at(&src, "auth.jwt.jwks_url");
    assert!(msg.contains("loopback"), "{msg}");
    for ok_url in [
        "http://localhost:8/k",
        "http://[::1]:8/k",
        "http://127.1.2.3/k",
    ] {
        jwt(&format!(
            "{BASE}jwks_url = \"{ok_url}\"\nallow_insecure_jwks_url = true\n"
        ));
    }
    for bad in [
        "as.example/jwks",
        "ftp://as.example/k",
        "https://u:p@as.example/k",
        "https://a/k#f",
    ] {
        let src = format!("{BASE}jwks_url = \"{bad}\"\n");
        error_at(&src, "auth.jwt.jwks_url");
    }
}

#[test]
fn ranges_and_shapes() {
    let cases = [
        ("leeway_secs = 601", "auth.jwt.leeway_secs"),
        ("max_token_bytes = 100", "auth.jwt.max_token_bytes"),
        ("jwks_refresh_secs = 5", "auth.jwt.jwks_refresh_secs"),
        (
            "jwks_min_interval_secs = 0",
            "auth.jwt.jwks_min_interval_secs",
        ),
        ("required_claims = [\"a b\"]", "auth.jwt.required_claims"),
        ("tenant_claim = \"\"", "auth.jwt.tenant_claim"),
        ("accepted_types = []", "auth.jwt.accepted_types"),
        ("accept_any_type = \"yes\"", "auth.jwt.accept_any_type"),
        ("audience = [\"x\"]", "auth.jwt.audience"),
    ];
    for (line, path) in cases {
        let src = format!("{BASE}jwks_file = \"k\"\n{line}\n");
        let (at, _) = error_at(&src, path);
        assert_eq!(at, 7, "{line}");
    }
    let src =
        format!("{BASE}jwks_file = \"k\"\njwks_refresh_secs = 20\njwks_min_interval_secs = 30\n");
    let (_, msg) = error_at(&src, "auth.jwt.jwks_min_interval_secs");
    assert!(msg.contains("exceeds"), "{msg}");
    // An empty type list is fine when any type is accepted.
    jwt(&format!(
        "{BASE}jwks_file = \"k\"\naccepted_types = []\naccept_any_type = true\n"
    ));
}

#[test]
fn algorithm_names_round_trip() {
    for a in JwtAlgorithm::ALL {
        assert_eq!(JwtAlgorithm::from_name(a.name()), Some(a));
        assert_eq!(a.to_string(), a.name());
    }
    assert_eq!(JwtAlgorithm::from_name("none"), None);
    assert!(JwtAlgorithm::HS384.is_hmac() && !JwtAlgorithm::EdDSA.is_hmac());
}
