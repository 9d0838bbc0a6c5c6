//! Criterion micro-benchmarks: what a JWT access token costs (issue 11).
//!
//! - `jwt/verify/{RS256,ES256}`: one full [`filters::jwt::verify`] of an RFC
//!   9068 access token (2048-bit RSA, P-256) signed in the setup with the
//!   committed test-only keys of `filters/src/jwt/testdata/`: what the proxy
//!   pays the first time it sees a token.
//! - `jwt/cache_hit/{RS256,ES256}`: what it pays for a token it has verified
//!   before. The proxy crate is a binary, so [`CachingVerifier`] reproduces
//!   the hit path of `proxy/src/exchange/tokens.rs` `Tokens::verify` as it is:
//!   SHA-256 of the token, the wall clock through a `dyn Clock`, a
//!   `parking_lot::Mutex<HashMap<[u8; 32], Arc<VerifiedToken>>>` lookup, the
//!   expiry check with leeway, an `Arc` clone. The cache holds 1,000 other
//!   tokens besides (the proxy's bound is 10,000).
//! - `chain_jwt/<era>/{plain,jwt-cached,jwt-uncached}`: the whole chain
//!   (head + message phase, as `benches/chain.rs` runs it) on one accepted
//!   1 KB `tools/call`: `plain` under the default policy (anonymous tenant,
//!   no `Authorization`), `jwt-*` with `[auth.jwt]` added and an RS256 token
//!   whose `sub` maps to tenant `demo`, through the caching verifier (a
//!   cache hit, as in steady state) or a verifier that verifies every time.
//!
//! `cargo bench -p filters --bench jwt`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

mod common;
use common::{config, example_policy, judge, request, Request};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use filters::jwt::{JwtError, KeySet, VerifiedToken};
use filters::{Chain, TokenVerifier};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use policies::{JwtAlgorithm, JwtPolicy, Policy};
use sha2::{Digest, Sha256};

const ISS: &str = "https://auth.bench.test";
const AUD: &str = "https://mcp.bench.test/mcp";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn jwt_policy() -> JwtPolicy {
    let mut p = JwtPolicy::new(ISS, vec![AUD.to_string()]);
    p.algorithms = vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256];
    p
}

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(include_bytes!("../src/jwt/testdata/rsa-2048.pem"))
        .unwrap_or_else(|e| panic!("rsa-2048.pem: {e}"))
}

fn ec256() -> EncodingKey {
    EncodingKey::from_ec_pem(include_bytes!("../src/jwt/testdata/ec-p256.pem"))
        .unwrap_or_else(|e| panic!("ec-p256.pem: {e}"))
}

/// The JWKS of both public keys, read the way the proxy reads one.
fn keys(policy: &JwtPolicy) -> KeySet {
    let jwk = |key: &EncodingKey, alg: Algorithm, kid: &str| {
        let mut j = Jwk::from_encoding_key(key, alg).unwrap_or_else(|e| panic!("{e}"));
        j.common.key_id = Some(kid.to_string());
        serde_json::to_value(j).unwrap_or_default()
    };
    let doc = serde_json::json!({"keys": [
        jwk(&rsa(), Algorithm::RS256, "rsa-1"),
        jwk(&ec256(), Algorithm::ES256, "ec-1"),
    ]});
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    KeySet::from_jwks(&bytes, policy).unwrap_or_else(|e| panic!("{e}"))
}

/// A typical RFC 9068 access token: `typ: at+jwt`, `kid`, an hour to live.
fn token(alg: Algorithm, kid: &str, key: &EncodingKey, sub: &str) -> String {
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".to_string());
    header.kid = Some(kid.to_string());
    let now = unix_now();
    let claims = serde_json::json!({
        "iss": ISS, "aud": AUD, "sub": sub, "client_id": "bench-client",
        "iat": now, "exp": now + 3600, "jti": format!("{sub}-{kid}"),
        "scope": "mcp:read mcp:write",
    });
    jsonwebtoken::encode(&header, &claims, key).unwrap_or_else(|e| panic!("{e}"))
}

// === the proxy's cache, reproduced (proxy/src/exchange/tokens.rs) ===

/// `proxy/src/ops/clock.rs` `Clock`, wall-clock half.
trait Clock: Send + Sync {
    fn unix_secs(&self) -> u64;
}

struct SystemClock;

impl Clock for SystemClock {
    fn unix_secs(&self) -> u64 {
        unix_now()
    }
}

/// Most verified tokens remembered at once (as in the proxy).
const CACHE_MAX: usize = 10_000;

/// `Tokens::verify` without the key source: cache by SHA-256 of the token
/// until it expires, verify on a miss.
struct CachingVerifier {
    policy: JwtPolicy,
    keys: KeySet,
    cache: Mutex<HashMap<[u8; 32], Arc<VerifiedToken>>>,
    clock: Arc<dyn Clock>,
}

impl CachingVerifier {
    fn new(policy: JwtPolicy, keys: KeySet) -> Self {
        Self {
            policy,
            keys,
            cache: Mutex::new(HashMap::new()),
            clock: Arc::new(SystemClock),
        }
    }

    /// `n` other cached tokens, so the hit is not a lookup in a table of one.
    fn fill(&self, n: usize, like: &Arc<VerifiedToken>) {
        let mut cache = self.cache.lock();
        for i in 0..n {
            let digest: [u8; 32] = Sha256::digest(format!("other-token-{i}")).into();
            cache.insert(digest, like.clone());
        }
    }
}

impl TokenVerifier for CachingVerifier {
    fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, JwtError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = self.clock.unix_secs();
        if let Some(hit) = self.cache.lock().get(&digest) {
            if hit.expires_at + self.policy.leeway_secs > now {
                return Ok(hit.clone());
            }
        }
        let verified = Arc::new(filters::jwt::verify(token, &self.keys, &self.policy, now)?);
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, t| t.expires_at + self.policy.leeway_secs > now);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(digest, verified.clone());
        Ok(verified)
    }
}

/// Verifies every token (no cache): the cost of a first sight.
struct Uncached {
    policy: JwtPolicy,
    keys: KeySet,
}

impl TokenVerifier for Uncached {
    fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, JwtError> {
        filters::jwt::verify(token, &self.keys, &self.policy, unix_now()).map(Arc::new)
    }
}

fn bench_verify(c: &mut Criterion) {
    let policy = jwt_policy();
    let keys = keys(&policy);
    let cached = CachingVerifier::new(policy.clone(), keys.clone());
    let tokens = [
        (
            "RS256",
            token(Algorithm::RS256, "rsa-1", &rsa(), "bench-alice"),
        ),
        (
            "ES256",
            token(Algorithm::ES256, "ec-1", &ec256(), "bench-alice"),
        ),
    ];
    for (alg, t) in &tokens {
        let v = filters::jwt::verify(t, &keys, &policy, unix_now())
            .unwrap_or_else(|e| panic!("the {alg} token must verify: {e}"));
        assert_eq!(v.subject, "bench-alice");
        // Warm the cache with it: every later call is a hit.
        let first = cached.verify(t).unwrap_or_else(|e| panic!("{e}"));
        if *alg == "RS256" {
            cached.fill(1000, &first);
        }
    }
    let mut group = c.benchmark_group("jwt");
    for (alg, t) in &tokens {
        group.bench_with_input(BenchmarkId::new("verify", alg), t, |b, t| {
            b.iter(|| filters::jwt::verify(black_box(t), &keys, &policy, unix_now()))
        });
        group.bench_with_input(BenchmarkId::new("cache_hit", alg), t, |b, t| {
            b.iter(|| cached.verify(black_box(t)))
        });
    }
    group.finish();
}

// === the whole chain, with and without a token ===

fn bench_chain_jwt(c: &mut Criterion) {
    let plain = example_policy();
    let jp = jwt_policy();
    let mut with_jwt = plain.clone();
    with_jwt.auth.jwt = Some(jp.clone());
    for t in &mut with_jwt.auth.tenants {
        if &*t.name == "demo" {
            t.jwt_subjects = vec!["bench-*".to_string()];
        }
    }
    let keys = keys(&jp);
    let cached = CachingVerifier::new(jp.clone(), keys.clone());
    let uncached = Uncached { policy: jp, keys };
    let rs = token(Algorithm::RS256, "rsa-1", &rsa(), "bench-alice");
    let chain = Chain::standard();
    let mut group = c.benchmark_group("chain_jwt");
    for legacy in [true, false] {
        let era = if legacy { "legacy" } else { "modern" };
        let bare = request(legacy, 1024, None);
        let bearer = request(legacy, 1024, Some(&rs));
        type Case<'a> = (
            &'a str,
            &'a Policy,
            Option<&'a dyn TokenVerifier>,
            &'a Request,
        );
        let cases: [Case; 3] = [
            ("plain", &plain, None, &bare),
            ("jwt-cached", &with_jwt, Some(&cached), &bearer),
            ("jwt-uncached", &with_jwt, Some(&uncached), &bearer),
        ];
        for (name, policy, tokens, r) in cases {
            let want = if tokens.is_some() {
                "demo"
            } else {
                "anonymous"
            };
            match judge(&chain, policy, tokens, r) {
                Ok(t) if t.as_deref() == Some(want) => {}
                other => panic!("{era}/{name} must pass the chain as {want}: {other:?}"),
            }
            group.bench_function(BenchmarkId::new(era, name), |b| {
                b.iter(|| judge(&chain, policy, tokens, black_box(r)))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_verify, bench_chain_jwt
}
criterion_main!(benches);
