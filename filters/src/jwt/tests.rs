//! Tokens signed in the test with committed test-only keys
//! (`testdata/`, made with openssl), one outcome each.

use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use policies::{JwtAlgorithm as A, JwtPolicy};
use serde_json::{json, Value};

use super::*;

const NOW: u64 = 1_900_000_000;
const ISS: &str = "https://issuer.test";
const AUD: &str = "https://mcp.test/mcp";

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(include_bytes!("testdata/rsa-2048.pem")).unwrap()
}
fn rsa_weak() -> EncodingKey {
    EncodingKey::from_rsa_pem(include_bytes!("testdata/rsa-1024.pem")).unwrap()
}
fn ec256() -> EncodingKey {
    EncodingKey::from_ec_pem(include_bytes!("testdata/ec-p256.pem")).unwrap()
}
fn ec384() -> EncodingKey {
    EncodingKey::from_ec_pem(include_bytes!("testdata/ec-p384.pem")).unwrap()
}
fn ed() -> EncodingKey {
    EncodingKey::from_ed_pem(include_bytes!("testdata/ed25519.pem")).unwrap()
}

/// The public JWK of `key`, with `kid` (none when empty).
fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut j = Jwk::from_encoding_key(key, alg).unwrap();
    j.common.key_id = (!kid.is_empty()).then(|| kid.to_string());
    serde_json::to_value(j).unwrap()
}

fn jwks(keys: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "keys": keys })).unwrap()
}

fn policy() -> JwtPolicy {
    let mut p = JwtPolicy::new(ISS, vec![AUD.into(), "urn:other".into()]);
    p.algorithms = vec![A::RS256, A::PS256, A::ES256, A::ES384, A::EdDSA];
    p
}

fn keys() -> KeySet {
    // The RSA key without `alg`: it serves RS256 and PS256.
    let mut rsa_any = jwk(&rsa(), Algorithm::RS256, "rsa");
    rsa_any.as_object_mut().unwrap().remove("alg");
    let doc = jwks(&[
        rsa_any,
        jwk(&ec256(), Algorithm::ES256, "ec"),
        jwk(&ec384(), Algorithm::ES384, "ec384"),
        jwk(&ed(), Algorithm::EdDSA, "ed"),
    ]);
    KeySet::from_jwks(&doc, &policy()).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "exp": NOW + 600, "iat": NOW,
        "client_id": "app", "scope": "files:read files:write"
    })
}

/// `v` with `key` set to `value` (removed when null).
fn with(mut v: Value, key: &str, value: Value) -> Value {
    let m = v.as_object_mut().unwrap();
    if value.is_null() {
        m.remove(key);
    } else {
        m.insert(key.into(), value);
    }
    v
}

fn header(alg: &str, kid: &str) -> Value {
    let h = json!({"alg": alg, "typ": "at+jwt"});
    if kid.is_empty() {
        h
    } else {
        with(h, "kid", json!(kid))
    }
}

/// A compact JWS of exactly `header` and `claims`, signed with `key`.
fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let msg = format!(
        "{}.{}",
        b64(&serde_json::to_vec(header).unwrap()),
        b64(&serde_json::to_vec(claims).unwrap())
    );
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, alg).unwrap();
    format!("{msg}.{sig}")
}

/// An RS256 token with `claims`.
fn rs(claims: &Value) -> String {
    sign(&header("RS256", "rsa"), claims, &rsa(), Algorithm::RS256)
}

fn check(token: &str) -> Result<VerifiedToken, JwtError> {
    verify(token, &keys(), &policy(), NOW)
}

fn refused(token: &str) -> JwtError {
    check(token).expect_err("token should be refused")
}

#[test]
fn every_algorithm_family_verifies() {
    let cases = [
        ("RS256", "rsa", rsa(), Algorithm::RS256),
        ("PS256", "rsa", rsa(), Algorithm::PS256),
        ("ES256", "ec", ec256(), Algorithm::ES256),
        ("ES384", "ec384", ec384(), Algorithm::ES384),
        ("EdDSA", "ed", ed(), Algorithm::EdDSA),
    ];
    for (alg, kid, key, a) in cases {
        let t = sign(&header(alg, kid), &claims(), &key, a);
        let v = check(&t).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(v.subject, "alice");
        assert_eq!(v.issuer, ISS);
        assert_eq!(v.expires_at, NOW + 600);
        assert_eq!(v.scopes, ["files:read", "files:write"]);
        assert_eq!(v.claim_str("client_id"), Some("app"));
    }
}

#[test]
fn a_token_from_the_crates_own_encoder() {
    let mut h = Header::new(Algorithm::ES256);
    h.typ = Some("at+jwt".into());
    h.kid = Some("ec".into());
    let t = jsonwebtoken::encode(&h, &claims(), &ec256()).unwrap();
    assert_eq!(check(&t).unwrap().subject, "alice");
}

#[test]
fn alg_none_is_refused_first() {
    let body = b64(&serde_json::to_vec(&claims()).unwrap());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64(&serde_json::to_vec(&json!({"alg": alg, "typ": "JWT"})).unwrap());
        assert_eq!(refused(&format!("{h}.{body}.")), JwtError::AlgNone, "{alg}");
        // With a signature, a wrong type and an expired body: still alg-none.
        let late = b64(&serde_json::to_vec(&with(claims(), "exp", json!(1))).unwrap());
        assert_eq!(refused(&format!("{h}.{late}.c2ln")), JwtError::AlgNone);
    }
}

#[test]
fn algorithms_outside_the_allowlist() {
    let t = sign(&header("RS512", "rsa"), &claims(), &rsa(), Algorithm::RS512);
    assert_eq!(refused(&t), JwtError::AlgNotAllowed);
    let h = b64(br#"{"alg":"XY256","typ":"at+jwt"}"#);
    assert_eq!(refused(&format!("{h}.e30.e30")), JwtError::AlgNotAllowed);
}

#[test]
fn algorithm_confusion_rsa_public_key_as_hmac_secret() {
    // The classic attack: HS256 keyed with the RSA public key's text.
    let pem = b"-----BEGIN PUBLIC KEY-----\nnot needed: refused before any key is used\n";
    let secret = EncodingKey::from_secret(pem).unwrap();
    let t = sign(
        &header("HS256", "rsa"),
        &claims(),
        &secret,
        Algorithm::HS256,
    );
    assert_eq!(refused(&t), JwtError::AlgNotAllowed);
    // Even if a policy allowed HS256 next to a JWKS (the loader refuses
    // that), the RSA key is not an HMAC key: no key for HS256.
    let mut p = policy();
    p.algorithms.push(A::HS256);
    let set = KeySet::from_jwks(&jwks(&[jwk(&rsa(), Algorithm::RS256, "rsa")]), &p).unwrap();
    assert_eq!(verify(&t, &set, &p, NOW), Err(JwtError::BadSignature));
}

#[test]
fn hmac_with_a_configured_secret() {
    let secret = b"0123456789abcdef0123456789abcdef";
    let mut p = policy();
    p.algorithms = vec![A::HS256, A::HS512];
    let set = KeySet::with_hmac(secret).unwrap();
    let key = EncodingKey::from_secret(secret).unwrap();
    for (name, alg) in [("HS256", Algorithm::HS256), ("HS512", Algorithm::HS512)] {
        for kid in ["", "any-kid"] {
            let t = sign(&header(name, kid), &claims(), &key, alg);
            assert_eq!(verify(&t, &set, &p, NOW).unwrap().subject, "alice");
        }
    }
    let wrong = EncodingKey::from_secret(b"another secret of thirty-two by!").unwrap();
    let t = sign(&header("HS256", ""), &claims(), &wrong, Algorithm::HS256);
    assert_eq!(verify(&t, &set, &p, NOW), Err(JwtError::BadSignature));
    let t = sign(&header("HS384", ""), &claims(), &key, Algorithm::HS384);
    assert_eq!(verify(&t, &set, &p, NOW), Err(JwtError::AlgNotAllowed));
    assert!(KeySet::with_hmac(b"short").is_err());
}

#[test]
fn keys_by_kid() {
    let t = sign(
        &header("RS256", "rotated"),
        &claims(),
        &rsa(),
        Algorithm::RS256,
    );
    assert_eq!(refused(&t), JwtError::UnknownKid);
    // A kid of another family's key cannot have signed it.
    let t = sign(&header("RS256", "ec"), &claims(), &rsa(), Algorithm::RS256);
    assert_eq!(refused(&t), JwtError::BadSignature);
    // ES384 under the P-256 key's kid.
    let t = sign(
        &header("ES384", "ec"),
        &claims(),
        &ec384(),
        Algorithm::ES384,
    );
    assert_eq!(refused(&t), JwtError::BadSignature);
    // No kid: the single key of the family.
    let t = sign(&header("EdDSA", ""), &claims(), &ed(), Algorithm::EdDSA);
    assert!(check(&t).is_ok());
    // No kid, two keys that could serve RS256.
    let mut p = policy();
    p.algorithms = vec![A::RS256];
    let two = jwks(&[
        jwk(&rsa(), Algorithm::RS256, "a"),
        jwk(&rsa(), Algorithm::RS256, "b"),
    ]);
    let set = KeySet::from_jwks(&two, &p).unwrap();
    let t = sign(&header("RS256", ""), &claims(), &rsa(), Algorithm::RS256);
    assert_eq!(verify(&t, &set, &p, NOW), Err(JwtError::UnknownKid));
    // A JWK whose `alg` is RS256 does not verify PS256.
    let t = sign(&header("PS256", "rsa"), &claims(), &rsa(), Algorithm::PS256);
    let mut p = policy();
    p.algorithms = vec![A::RS256, A::PS256];
    let pinned = jwks(&[jwk(&rsa(), Algorithm::RS256, "rsa")]);
    let set = KeySet::from_jwks(&pinned, &p).unwrap();
    assert_eq!(verify(&t, &set, &p, NOW), Err(JwtError::BadSignature));
}

#[test]
fn bad_signatures() {
    let good = rs(&claims());
    let (msg, _) = good.rsplit_once('.').unwrap();
    // The payload changed after signing.
    let forged_body = b64(&serde_json::to_vec(&with(claims(), "sub", json!("root"))).unwrap());
    let head = msg.split('.').next().unwrap();
    let sig = good.rsplit('.').next().unwrap();
    assert_eq!(
        refused(&format!("{head}.{forged_body}.{sig}")),
        JwtError::BadSignature
    );
    // Another key under the right kid.
    let other = sign(
        &header("RS256", "rsa"),
        &claims(),
        &rsa_weak(),
        Algorithm::RS256,
    );
    assert_eq!(refused(&other), JwtError::BadSignature);
    // No signature at all.
    assert_eq!(refused(&format!("{msg}.")), JwtError::BadSignature);
}

#[test]
fn time_is_the_callers_with_leeway() {
    let at = |c: Value, now: u64| verify(&rs(&c), &keys(), &policy(), now);
    assert_eq!(at(claims(), NOW + 600 + 60).unwrap_err(), JwtError::Expired);
    assert!(at(claims(), NOW + 600 + 59).is_ok(), "within the leeway");
    let nbf = with(claims(), "nbf", json!(NOW + 100));
    assert_eq!(
        at(nbf.clone(), NOW + 39).unwrap_err(),
        JwtError::NotYetValid
    );
    assert!(at(nbf, NOW + 40).is_ok(), "within the leeway");
    // Long past and far future by the system clock: only `now_unix` counts.
    let old = with(claims(), "exp", json!(1_000));
    assert!(at(old.clone(), 500).is_ok());
    assert_eq!(at(old, 1_060).unwrap_err(), JwtError::Expired);
    let fractional = with(claims(), "exp", json!(NOW as f64 + 0.5));
    assert_eq!(
        verify(&rs(&fractional), &keys(), &no_leeway(), NOW),
        Err(JwtError::Expired)
    );
    let bad = with(claims(), "exp", json!("tomorrow"));
    assert_eq!(refused(&rs(&bad)).rule(), "missing-claim");
    let bad = with(claims(), "nbf", json!(-5));
    assert_eq!(refused(&rs(&bad)).rule(), "malformed");
}

fn no_leeway() -> JwtPolicy {
    let mut p = policy();
    p.leeway_secs = 0;
    p
}

#[test]
fn issuer_exactly() {
    let c = with(claims(), "iss", json!("https://issuer.test/"));
    assert_eq!(refused(&rs(&c)), JwtError::WrongIssuer);
    let c = with(claims(), "iss", json!(["https://evil.test", ISS]));
    assert_eq!(refused(&rs(&c)), JwtError::WrongIssuer);
    let c = with(claims(), "iss", Value::Null);
    assert_eq!(refused(&rs(&c)), JwtError::MissingClaim("iss".into()));
}

#[test]
fn audience_names_this_resource() {
    let c = with(claims(), "aud", json!("https://other.test/mcp"));
    assert_eq!(refused(&rs(&c)), JwtError::WrongAudience);
    let c = with(claims(), "aud", json!([]));
    assert_eq!(refused(&rs(&c)), JwtError::WrongAudience);
    let c = with(claims(), "aud", json!(["https://other.test", AUD]));
    assert!(check(&rs(&c)).is_ok());
    let c = with(claims(), "aud", json!("urn:other"));
    assert!(check(&rs(&c)).is_ok(), "any configured audience");
    let c = with(claims(), "aud", Value::Null);
    assert_eq!(refused(&rs(&c)), JwtError::MissingClaim("aud".into()));
}

#[test]
fn type_as_rfc_9068_says() {
    let typed = |typ: Value| {
        let h = with(header("RS256", "rsa"), "typ", typ);
        sign(&h, &claims(), &rsa(), Algorithm::RS256)
    };
    assert_eq!(refused(&typed(json!("JWT"))), JwtError::WrongType);
    assert_eq!(refused(&typed(Value::Null)), JwtError::WrongType);
    assert!(check(&typed(json!("application/at+jwt"))).is_ok());
    assert!(check(&typed(json!("AT+JWT"))).is_ok());
    let mut any = policy();
    any.accept_any_type = true;
    assert!(verify(&typed(json!("JWT")), &keys(), &any, NOW).is_ok());
    assert!(verify(&typed(Value::Null), &keys(), &any, NOW).is_ok());
}

#[test]
fn required_claims() {
    let c = with(claims(), "exp", Value::Null);
    assert_eq!(refused(&rs(&c)), JwtError::MissingClaim("exp".into()));
    let c = with(claims(), "sub", Value::Null);
    assert_eq!(refused(&rs(&c)), JwtError::MissingClaim("sub".into()));
    let mut p = policy();
    p.required_claims = vec!["exp".into(), "client_id".into(), "jti".into()];
    let t = rs(&claims());
    assert_eq!(
        verify(&t, &keys(), &p, NOW),
        Err(JwtError::MissingClaim("jti".into()))
    );
}

#[test]
fn scopes_from_scope_and_scp() {
    let c = with(claims(), "scope", json!("a  b a"));
    let c = with(c, "scp", json!(["b", "c", 7]));
    assert_eq!(check(&rs(&c)).unwrap().scopes, ["a", "b", "c"]);
    let c = with(with(claims(), "scope", Value::Null), "scp", json!("x y"));
    assert_eq!(check(&rs(&c)).unwrap().scopes, ["x", "y"]);
    let c = with(claims(), "scope", Value::Null);
    assert!(check(&rs(&c)).unwrap().scopes.is_empty());
}

#[test]
fn malformed_tokens() {
    let good = rs(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let dup_header = b64(br#"{"alg":"RS256","alg":"none","typ":"at+jwt"}"#);
    let cases = [
        String::new(),
        "abc".into(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}."),
        format!("{good}.{}", parts[2]),
        format!(".{}.{}", parts[1], parts[2]),
        format!("{}!.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}=.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}*", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"[1]"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(br#"{"typ":"at+jwt"}"#), parts[1], parts[2]),
        format!("{dup_header}.{}.{}", parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            parts[0],
            b64(br#"{"sub":"a","sub":"b"}"#),
            parts[2]
        ),
        format!("{}.{}.{}", parts[0], b64(b"\"claims\""), parts[2]),
    ];
    for t in &cases {
        assert_eq!(refused(t).rule(), "malformed", "{t:?}");
    }
    // Non-canonical base64url: `e30` is `{}`, `e31` the same with a
    // trailing bit set, which a strict decoder refuses.
    assert!(base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode("e31")
        .is_err());
    let t = format!("{}.e31.{}", parts[0], parts[2]);
    assert_eq!(refused(&t).rule(), "malformed");
    let crit = with(header("RS256", "rsa"), "crit", json!(["exp"]));
    let t = sign(&crit, &claims(), &rsa(), Algorithm::RS256);
    assert_eq!(refused(&t), JwtError::Malformed("header has `crit`"));
    let t = sign(
        &with(header("RS256", "rsa"), "kid", json!(1)),
        &claims(),
        &rsa(),
        Algorithm::RS256,
    );
    assert_eq!(refused(&t).rule(), "malformed");
}

#[test]
fn too_large_is_refused_unread() {
    let mut p = policy();
    let t = rs(&with(claims(), "pad", json!("x".repeat(9000))));
    assert_eq!(verify(&t, &keys(), &p, NOW), Err(JwtError::TooLarge));
    p.max_token_bytes = 65_536;
    assert!(verify(&t, &keys(), &p, NOW).is_ok());
    assert_eq!(
        verify(&"x".repeat(8193), &keys(), &policy(), NOW),
        Err(JwtError::TooLarge)
    );
}

#[test]
fn rules_are_stable_and_distinct() {
    let all = [
        JwtError::Malformed("x"),
        JwtError::TooLarge,
        JwtError::AlgNone,
        JwtError::AlgNotAllowed,
        JwtError::UnknownKid,
        JwtError::BadSignature,
        JwtError::Expired,
        JwtError::NotYetValid,
        JwtError::WrongIssuer,
        JwtError::WrongAudience,
        JwtError::WrongType,
        JwtError::MissingClaim("exp".into()),
    ];
    let rules: Vec<&str> = all.iter().map(JwtError::rule).collect();
    assert_eq!(rules, JwtError::RULES);
    assert_eq!(
        JwtError::MissingClaim("jti".into()).to_string(),
        "missing claim `jti`"
    );
}

// === KeySet ===

#[test]
fn jwks_keys_that_cannot_serve_are_skipped() {
    let mut enc = jwk(&rsa(), Algorithm::RS256, "enc");
    enc["use"] = json!("enc");
    enc["alg"] = json!("RSA-OAEP");
    let mut wrap = jwk(&ec256(), Algorithm::ES256, "wrap");
    wrap["key_ops"] = json!(["wrapKey"]);
    let doc = jwks(&[
        jwk(&rsa(), Algorithm::RS256, "rsa"),
        enc,
        wrap,
        json!({"kty": "oct", "kid": "hmac", "k": b64(b"0123456789abcdef0123456789abcdef")}),
        jwk(&rsa_weak(), Algorithm::RS256, "weak"),
        jwk(&rsa(), Algorithm::RS512, "rs512"),
        json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!({"kty": "XYZ", "kid": "odd"}),
        json!("not an object"),
    ]);
    let set = KeySet::from_jwks(&doc, &policy()).unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(set.kids().collect::<Vec<_>>(), [Some("rsa")]);
    assert_eq!(set.skipped().len(), 8, "{:?}", set.skipped());
    assert!(set.skipped().iter().any(|s| s.contains("1024 bits")));
    assert!(set.skipped().iter().any(|s| s.contains("hmac_secret_file")));
    assert!(format!("{set:?}").contains("rsa"));
}

#[test]
fn jwks_errors_and_bounds() {
    let p = policy();
    assert!(KeySet::from_jwks(b"{", &p)
        .unwrap_err()
        .contains("not JSON"));
    assert!(KeySet::from_jwks(b"{\"keys\":1}", &p).is_err());
    assert!(KeySet::from_jwks(b"{\"keys\":[],\"keys\":[]}", &p).is_err());
    let none = KeySet::from_jwks(b"{\"keys\":[]}", &p).unwrap_err();
    assert!(none.contains("no usable signing key"), "{none}");
    let one = jwk(&ec256(), Algorithm::ES256, "");
    let many: Vec<Value> = (0..65).map(|_| one.clone()).collect();
    assert!(KeySet::from_jwks(&jwks(&many), &p)
        .unwrap_err()
        .contains("65 keys"));
    let big = format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(70_000));
    assert!(KeySet::from_jwks(big.as_bytes(), &p)
        .unwrap_err()
        .contains("bytes"));
    // Only ES256 allowed: the RSA and Ed keys are skipped.
    let mut es = policy();
    es.algorithms = vec![A::ES256];
    let set = KeySet::from_jwks(
        &jwks(&[
            jwk(&rsa(), Algorithm::RS256, "rsa"),
            one,
            jwk(&ed(), Algorithm::EdDSA, "ed"),
        ]),
        &es,
    )
    .unwrap();
    assert_eq!(set.len(), 1);
}

#[test]
fn shareable_between_workers() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<KeySet>();
    send_sync::<VerifiedToken>();
    send_sync::<JwtError>();
}
