use std::path::PathBuf;

use policies::{JwtAlgorithm, JwtPolicy};

use super::*;
use crate::ops::clock::ManualClock;

fn temp(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("mcpgate-cred-test-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

fn minter(clock: &ManualClock) -> Credentials {
    let key = rcgen::KeyPair::generate().unwrap(); // ECDSA P-256, PKCS#8
    let file = temp("mint.pem", &key.serialize_pem());
    let c = Credentials::load(
        &UpstreamCredential::Mint {
            key_file: file.clone(),
            algorithm: MintAlgorithm::Es256,
            audience: "https://upstream.test/mcp".into(),
            issuer: "mcpgate-test".into(),
            ttl_secs: 300,
            kid: Some("k1".into()),
        },
        Arc::new(clock.clone()),
    )
    .unwrap();
    let _ = std::fs::remove_file(file);
    c
}

fn authorization(c: &Credentials, caller: Caller<'_>) -> String {
    let mut req = RequestHeader::build("POST", b"/mcp", None).unwrap();
    c.apply(&mut req, caller).unwrap();
    req.headers["authorization"].to_str().unwrap().to_string()
}

#[test]
fn minted_tokens_verify_against_the_published_key_and_carry_the_caller() {
    let clock = ManualClock::default();
    let c = minter(&clock);
    let jwks = serde_json::json!({ "keys": [c.jwk().unwrap()] }).to_string();
    let mut policy = JwtPolicy::new("mcpgate-test", vec!["https://upstream.test/mcp".into()]);
    policy.algorithms = vec![JwtAlgorithm::ES256];
    let keys = filters::jwt::KeySet::from_jwks(jwks.as_bytes(), &policy).unwrap();
    let header = authorization(
        &c,
        Caller {
            tenant: "acme",
            subject: Some("alice"),
        },
    );
    let token = header.strip_prefix("Bearer ").unwrap();
    let v = filters::jwt::verify(token, &keys, &policy, clock.unix_secs()).unwrap();
    assert_eq!(v.subject, "alice");
    assert_eq!(v.claim_str("tenant"), Some("acme"));
    // Reused for the same caller, renewed before it expires.
    let again = authorization(
        &c,
        Caller {
            tenant: "acme",
            subject: Some("alice"),
        },
    );
    assert_eq!(again, header);
    let bob = authorization(
        &c,
        Caller {
            tenant: "acme",
            subject: Some("bob"),
        },
    );
    assert_ne!(bob, header);
    clock.advance(std::time::Duration::from_secs(290));
    let renewed = authorization(
        &c,
        Caller {
            tenant: "acme",
            subject: Some("alice"),
        },
    );
    assert_ne!(renewed, header);
    // A caller without a subject is named by its tenant.
    let t = authorization(
        &c,
        Caller {
            tenant: "acme",
            subject: None,
        },
    );
    let v = filters::jwt::verify(
        t.strip_prefix("Bearer ").unwrap(),
        &keys,
        &policy,
        clock.unix_secs(),
    )
    .unwrap();
    assert_eq!(v.subject, "tenant:acme");
}

#[test]
fn a_static_secret_comes_from_a_file_or_the_environment() {
    let file = temp("secret", "  s3cret\n");
    let c = Credentials::load(
        &UpstreamCredential::Static {
            header: "authorization".into(),
            prefix: "Bearer ".into(),
            file: Some(file.clone()),
            env: None,
        },
        Arc::new(ManualClock::default()),
    )
    .unwrap();
    let _ = std::fs::remove_file(file);
    assert_eq!(
        authorization(
            &c,
            Caller {
                tenant: "t",
                subject: None
            }
        ),
        "Bearer s3cret"
    );
    let missing = Credentials::load(
        &UpstreamCredential::Static {
            header: "x-api-key".into(),
            prefix: String::new(),
            file: None,
            env: Some("MCPGATE_TEST_SURELY_UNSET_VARIABLE".into()),
        },
        Arc::new(ManualClock::default()),
    );
    assert!(missing.err().unwrap().contains("not set"));
}
