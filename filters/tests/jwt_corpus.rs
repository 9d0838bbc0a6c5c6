//! Builds every token of the JWT corpus (`conformance/corpora/jwt.jsonl`,
//! format in `conformance/corpora/README.md`) from its recipe with the
//! committed test-only keys, and judges it with `filters::jwt::verify` under
//! `jwt-keys/auth.toml` at a fixed time: each refusal must name the expected
//! rule, each control must pass. The same corpus goes through the real binary
//! in the end-to-end tests.

use std::collections::BTreeSet;
use std::path::PathBuf;

use base64::Engine;
use filters::jwt::{verify, JwtError, KeySet};
use jsonwebtoken::{Algorithm, EncodingKey};
use policies::JwtPolicy;
use serde_json::{json, Map, Value};

/// The corpus clock: tokens are built and judged at this time.
const NOW: u64 = 1_900_000_000;

/// Every field a recipe may have (a typo is an error, not a silent default).
const FIELDS: [&str; 10] = [
    "name",
    "key",
    "alg",
    "header",
    "claims",
    "times",
    "pad_bytes",
    "mutate",
    "expect_rule",
    "reason",
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/corpora")
}

fn read(rel: &str) -> Vec<u8> {
    let path = dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn policy() -> JwtPolicy {
    let auth = String::from_utf8(read("jwt-keys/auth.toml")).unwrap();
    let src = format!("[upstream]\nurl = \"http://127.0.0.1:9/mcp\"\n{auth}");
    let p = policies::parse_policy("jwt-keys/auth.toml", &src).unwrap_or_else(|e| panic!("{e}"));
    p.auth.jwt.expect("auth.toml has [auth.jwt]")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Sets each key of `over` in `base`; `null` removes it.
fn merge(base: &mut Map<String, Value>, over: Option<&Value>, name: &str) {
    let Some(over) = over else { return };
    let over = over
        .as_object()
        .unwrap_or_else(|| panic!("{name}: overrides must be an object"));
    for (k, v) in over {
        if v.is_null() {
            base.remove(k);
        } else {
            base.insert(k.clone(), v.clone());
        }
    }
}

/// The signing key, its default algorithm and its default `kid`.
fn signer(key: &str, name: &str) -> (Option<EncodingKey>, &'static str, Option<String>) {
    let pem = |k: &str| read(&format!("jwt-keys/test-only-{k}.pem"));
    match key {
        "rsa-1" | "rsa-other" => (
            Some(EncodingKey::from_rsa_pem(&pem(key)).unwrap()),
            "RS256",
            Some(key.into()),
        ),
        "ec-1" => (
            Some(EncodingKey::from_ec_pem(&pem(key)).unwrap()),
            "ES256",
            Some(key.into()),
        ),
        "ed-1" => (
            Some(EncodingKey::from_ed_pem(&pem(key)).unwrap()),
            "EdDSA",
            Some(key.into()),
        ),
        "none" => (None, "none", None),
        _ => match key.strip_prefix("hmac:") {
            Some(file) => (
                Some(EncodingKey::from_secret(&read(&format!("jwt-keys/{file}"))).unwrap()),
                "HS256",
                None,
            ),
            None => panic!("{name}: unknown key `{key}`"),
        },
    }
}

/// The compact token a recipe describes.
fn build(case: &Value) -> String {
    let obj = case.as_object().expect("a recipe is an object");
    let name = obj["name"].as_str().expect("name");
    for k in obj.keys() {
        assert!(FIELDS.contains(&k.as_str()), "{name}: unknown field `{k}`");
    }
    let (key, default_alg, kid) = signer(obj["key"].as_str().expect("key"), name);
    let alg = obj
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or(default_alg);

    let mut header = Map::new();
    header.insert("alg".into(), json!(alg));
    header.insert("typ".into(), json!("at+jwt"));
    if let Some(kid) = kid {
        header.insert("kid".into(), json!(kid));
    }
    merge(&mut header, obj.get("header"), name);

    let mut claims = json!({
        "iss": "https://issuer.corpus.test",
        "aud": "https://mcp.corpus.test/mcp",
        "sub": "corpus-user",
        "client_id": "corpus-client",
        "scope": "files:read",
    })
    .as_object()
    .cloned()
    .unwrap();
    let mut times = json!({"iat": 0, "exp": 600}).as_object().cloned().unwrap();
    merge(&mut times, obj.get("times"), name);
    for (k, offset) in times {
        let at = NOW as i64 + offset.as_i64().expect("times are integers");
        claims.insert(k, json!(at));
    }
    merge(&mut claims, obj.get("claims"), name);
    if let Some(n) = obj.get("pad_bytes") {
        let n = n.as_u64().expect("pad_bytes") as usize;
        claims.insert("pad".into(), json!("x".repeat(n)));
    }

    let input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(&header).unwrap()),
        b64(&serde_json::to_vec(&claims).unwrap())
    );
    let signature = match key {
        None => String::new(),
        Some(key) => {
            let a: Algorithm = alg
                .parse()
                .unwrap_or_else(|_| panic!("{name}: alg `{alg}`"));
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, a).unwrap()
        }
    };
    let token = format!("{input}.{signature}");
    match obj.get("mutate").map(|m| m.as_str().expect("mutate")) {
        None => token,
        Some("tamper-signature") => {
            let first = if signature.starts_with('A') { "B" } else { "A" };
            format!("{input}.{first}{}", signature.get(1..).unwrap_or_default())
        }
        Some("bad-base64") => {
            let (h, rest) = token.split_once('.').unwrap();
            format!("{h}.{}*{}", &rest[..1], &rest[1..])
        }
        Some("two-parts") => input,
        Some(m) => match m.strip_prefix("append:") {
            Some(text) => format!("{token}{text}"),
            None => panic!("{name}: unknown mutate `{m}`"),
        },
    }
}

#[test]
fn jwt_corpus() {
    let policy = policy();
    let keys = KeySet::from_jwks(&read("jwt-keys/jwks.json"), &policy)
        .unwrap_or_else(|e| panic!("jwks.json: {e}"));
    assert_eq!(keys.len(), 3, "rsa-1, ec-1, ed-1 (enc-1 skipped): {keys:?}");

    let text = String::from_utf8(read("jwt.jsonl")).unwrap();
    let cases: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("jwt.jsonl:{}: {e}", i + 1))
        })
        .collect();
    let mut names = BTreeSet::new();
    let (mut refused, mut attacks, mut accepted, mut controls) = (0, 0, 0, 0);
    let mut rules_seen = BTreeSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        assert!(names.insert(name), "duplicate name {name}");
        assert!(case["reason"].is_string(), "{name}: no reason");
        let token = build(case);
        let got = verify(&token, &keys, &policy, NOW);
        match case["expect_rule"].as_str() {
            None => {
                assert!(case["expect_rule"].is_null(), "{name}: expect_rule");
                controls += 1;
                match got {
                    Ok(_) => accepted += 1,
                    Err(e) => failures.push(format!("{name}: control refused ({})", e.rule())),
                }
            }
            Some(want) => {
                assert!(
                    JwtError::RULES.contains(&want),
                    "{name}: unknown rule {want}"
                );
                rules_seen.insert(want);
                attacks += 1;
                match got {
                    Err(e) if e.rule() == want => refused += 1,
                    Err(e) => failures.push(format!("{name}: refused as {} not {want}", e.rule())),
                    Ok(_) => failures.push(format!("{name}: accepted, want {want}")),
                }
            }
        }
    }
    println!("jwt corpus: refused {refused}/{attacks}, controls accepted {accepted}/{controls}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(controls >= 3 && attacks >= 12);
    let missing: Vec<&str> = JwtError::RULES
        .iter()
        .copied()
        .filter(|r| !rules_seen.contains(r))
        .collect();
    assert!(
        missing.is_empty(),
        "rules without a corpus case: {missing:?}"
    );
    for required in [
        "alg-none",
        "alg-confusion-hs256-with-rsa-public-key",
        "bad-signature-tampered",
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "wrong-audience",
        "unknown-kid",
        "oversized",
        "malformed-base64",
        "extra-dot",
        "typ-jwt",
    ] {
        assert!(names.contains(required), "the corpus lacks {required}");
    }
}
