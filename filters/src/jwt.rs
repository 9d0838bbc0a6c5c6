//! JWT access tokens (RFC 9068) verified against a key set: pure,
//! synchronous, no I/O, no clock of its own.
//!
//! The proxy fetches or reads the JWKS ([`KeySet::from_jwks`]) or the HMAC
//! secret ([`KeySet::with_hmac`]), passes the current time, and calls
//! [`verify`] once per token (then caches the result until `expires_at`).
//! [`JwtError::UnknownKid`] tells it to refetch the JWKS (no more often than
//! `jwks_min_interval_secs`). A [`JwtError`] names why a token was refused
//! with a stable rule; it never carries a byte of the token, so it can be
//! logged as is.
//!
//! Signatures are checked by the `jsonwebtoken` crate (12, MIT): well kept
//! (Keats/jsonwebtoken, regular releases, wide use), compact JWS as in RFC
//! 7515/7519 with the RFC 7518 algorithms, a pure-Rust RustCrypto backend
//! (no C toolchain), and it refuses a key whose family does not match the
//! header `alg` (an RSA public key never verifies an HS256 token). It does
//! neither JWKS fetching nor the RFC 9068 `typ` check: those are the proxy's
//! and this module's. Everything it leaves open is closed here, in this
//! order, cheapest first: size; three base64url parts of strict JSON (no
//! duplicate keys); `alg: none` (any case) before anything else reads the
//! token; the policy's algorithm allowlist; no `crit`; `typ`; the key by
//! `kid`; then the signature, `iss` and `aud` by the crate (a
//! `jsonwebtoken::Validation` built per algorithm with issuer and audiences
//! set, its own clock checks off); then `iss` exactly one string, `exp` and
//! `nbf` with leeway against the caller's clock, and the required claims.
//! Header keys `jku`, `x5u`, `jwk` and `x5c` are never followed: keys come
//! from the key set only.

use std::collections::HashSet;
use std::str::FromStr;

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use policies::{JwtAlgorithm, JwtPolicy};
use serde_json::{Map, Value};

use crate::message::parse_strict;

/// Why a token was refused. [`JwtError::rule`] is the stable name for logs,
/// metrics and `error.data`; no variant carries a byte of the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON objects (bad base64, bad JSON,
    /// duplicate keys, extra dots, an unsupported `crit` header, a claim of
    /// the wrong type). The text says which part, never its content.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// Longer than `max_token_bytes`; not read at all.
    #[error("token longer than the policy allows")]
    TooLarge,
    /// `alg: none` (any case): an unsigned token.
    #[error("unsigned token (alg none)")]
    AlgNone,
    /// An `alg` outside the policy's allowlist (or unknown).
    #[error("algorithm not allowed")]
    AlgNotAllowed,
    /// No key for the token's `kid` (or, without `kid`, no single key of its
    /// algorithm family): the JWKS may have rotated, refetch it.
    #[error("no key with the token's kid")]
    UnknownKid,
    /// The signature does not verify with the key found.
    #[error("bad signature")]
    BadSignature,
    /// `exp` (plus leeway) has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` (minus leeway) is still ahead.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the policy's issuer (exactly, as one string).
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` names none of the policy's audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// `typ` is not an accepted type (RFC 9068: `at+jwt`).
    #[error("wrong token type")]
    WrongType,
    /// A required claim is absent (its name, from the policy).
    #[error("missing claim `{0}`")]
    MissingClaim(String),
}

impl JwtError {
    /// Every rule name, in declaration order (for metrics labels).
    pub const RULES: [&'static str; 12] = [
        "malformed",
        "too-large",
        "alg-none",
        "alg-not-allowed",
        "unknown-kid",
        "bad-signature",
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "wrong-audience",
        "wrong-type",
        "missing-claim",
    ];

    /// The stable kebab-case name of the reason.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::TooLarge => "too-large",
            Self::AlgNone => "alg-none",
            Self::AlgNotAllowed => "alg-not-allowed",
            Self::UnknownKid => "unknown-kid",
            Self::BadSignature => "bad-signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not-yet-valid",
            Self::WrongIssuer => "wrong-issuer",
            Self::WrongAudience => "wrong-audience",
            Self::WrongType => "wrong-type",
            Self::MissingClaim(_) => "missing-claim",
        }
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// `sub`.
    pub subject: String,
    /// `iss` (the policy's issuer).
    pub issuer: String,
    /// `scope` (space-separated) and `scp` (array or space-separated),
    /// in order, without duplicates.
    pub scopes: Vec<String>,
    /// `exp`, in seconds since the epoch.
    pub expires_at: u64,
    /// Every claim.
    pub claims: Map<String, Value>,
}

impl VerifiedToken {
    /// A claim's value when it is a string (e.g. the policy's `tenant_claim`).
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

// === impl KeySet ===

/// One verification key.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    family: AlgorithmFamily,
    /// The one algorithm this key may verify (the JWK's `alg`, or the curve's
    /// for EC keys); `None`: any of its family.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// The keys tokens are verified with, looked up by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<Key>,
    skipped: Vec<String>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self
            .keys
            .iter()
            .map(|k| k.kid.as_deref().unwrap_or("-"))
            .collect();
        f.debug_struct("KeySet")
            .field("kids", &kids)
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl KeySet {
    /// Most keys a JWKS may hold.
    pub const MAX_KEYS: usize = 64;
    /// Largest JWKS document read, in bytes.
    pub const MAX_JWKS_BYTES: usize = 64 * 1024;
    /// Shortest HMAC secret (RFC 7518 §3.2: at least the hash size; 32
    /// bytes for HS256).
    pub const MIN_HMAC_SECRET_BYTES: usize = 32;
    /// Smallest RSA modulus accepted, in bits (RFC 7518 §3.3).
    pub const MIN_RSA_BITS: usize = 2048;

    /// The signing keys of a JWKS document (RFC 7517) usable under `policy`.
    ///
    /// Keys that cannot verify a token the policy accepts are skipped, each
    /// with its reason in [`KeySet::skipped`]: encryption keys (`use` not
    /// `sig`, `key_ops` without `verify`), symmetric (`oct`) keys (HMAC
    /// secrets come from `hmac_secret_file` only), algorithms or curves
    /// outside the policy, RSA moduli under 2048 bits. An error when the
    /// document is larger than 64 KiB, not strict JSON, not `{"keys":
    /// [...]}`, holds more than 64 keys, or no usable key.
    pub fn from_jwks(bytes: &[u8], policy: &JwtPolicy) -> Result<KeySet, String> {
        if bytes.len() > Self::MAX_JWKS_BYTES {
            return Err(format!(
                "JWKS of {} bytes, over the limit of {}",
                bytes.len(),
                Self::MAX_JWKS_BYTES
            ));
        }
        let doc = parse_strict(bytes).map_err(|e| format!("JWKS is not JSON ({})", e.rule))?;
        let Some(list) = doc.get("keys").and_then(Value::as_array) else {
            return Err("JWKS has no `keys` array".into());
        };
        if list.len() > Self::MAX_KEYS {
            return Err(format!(
                "JWKS holds {} keys, over the limit of {}",
                list.len(),
                Self::MAX_KEYS
            ));
        }
        let allowed: Vec<Algorithm> = policy.algorithms.iter().map(|a| algorithm(*a)).collect();
        let mut set = KeySet::default();
        for (i, v) in list.iter().enumerate() {
            match jwk_key(v, &allowed) {
                Ok(k) => set.keys.push(k),
                Err(why) => {
                    let kid = v.get("kid").and_then(Value::as_str).unwrap_or("-");
                    let kid: String = kid.chars().take(64).filter(|c| !c.is_control()).collect();
                    set.skipped.push(format!("key {i} (kid {kid}): {why}"));
                }
            }
        }
        if set.keys.is_empty() {
            return Err(format!(
                "JWKS has no usable signing key{}{}",
                if set.skipped.is_empty() { "" } else { ": " },
                set.skipped.join("; ")
            ));
        }
        Ok(set)
    }

    /// A set of one HMAC secret (HS256/HS384/HS512), without `kid`: it
    /// verifies every HMAC token, whatever `kid` it names. An error when
    /// shorter than 32 bytes.
    pub fn with_hmac(secret: &[u8]) -> Result<KeySet, String> {
        if secret.len() < Self::MIN_HMAC_SECRET_BYTES {
            return Err(format!(
                "HMAC secret of {} bytes; at least {} are needed",
                secret.len(),
                Self::MIN_HMAC_SECRET_BYTES
            ));
        }
        let key = DecodingKey::from_secret(secret).map_err(|e| e.to_string())?;
        Ok(KeySet {
            keys: vec![Key {
                kid: None,
                family: AlgorithmFamily::Hmac,
                alg: None,
                key,
            }],
            skipped: Vec::new(),
        })
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s of the usable keys (for logs).
    pub fn kids(&self) -> impl Iterator<Item = Option<&str>> {
        self.keys.iter().map(|k| k.kid.as_deref())
    }

    /// Why keys of the JWKS were left out (for the log).
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The key for a token signed with `alg` naming `kid`.
    ///
    /// A `kid` names one key; a key of another family or algorithm under
    /// that `kid` cannot have made the signature. Without a `kid` (or with
    /// one the set does not know, when the set's only key for `alg` has no
    /// `kid` itself, like an HMAC secret) the single key for `alg` is used,
    /// and only when there is exactly one.
    fn find(&self, alg: Algorithm, kid: Option<&str>) -> Result<&DecodingKey, JwtError> {
        let fits = |k: &&Key| k.family == alg.family() && k.alg.is_none_or(|a| a == alg);
        if let Some(kid) = kid {
            let named: Vec<&Key> = self
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect();
            if !named.is_empty() {
                return named
                    .into_iter()
                    .find(fits)
                    .map(|k| &k.key)
                    .ok_or(JwtError::BadSignature);
            }
        }
        let mut candidates = self.keys.iter().filter(fits);
        match (candidates.next(), candidates.next()) {
            (Some(only), None) if kid.is_none() || only.kid.is_none() => Ok(&only.key),
            _ => Err(JwtError::UnknownKid),
        }
    }
}

/// `jsonwebtoken`'s name for a policy algorithm.
fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
    }
}

/// One JWK as a verification key, or why it is left out.
fn jwk_key(v: &Value, allowed: &[Algorithm]) -> Result<Key, String> {
    let obj = v.as_object().ok_or("not an object")?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str);
    if let Some(u) = obj.get("use") {
        if u.as_str() != Some("sig") {
            return Err("not a signing key (`use`)".into());
        }
    }
    if let Some(ops) = obj.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o.as_str() == Some("verify")));
        if !verify {
            return Err("`key_ops` without verify".into());
        }
    }
    if text("kty") == Some("oct") {
        return Err("symmetric key: HMAC secrets come from hmac_secret_file only".into());
    }
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("`kid` is not a string".into()),
    };
    let jwk_alg = match text("alg") {
        None if obj.contains_key("alg") => return Err("`alg` is not a string".into()),
        None => None,
        Some(name) => Some(
            Algorithm::from_str(name).map_err(|_| "not a JWS signature algorithm".to_string())?,
        ),
    };
    let jwk: Jwk = serde_json::from_value(v.clone()).map_err(|_| "not a valid JWK".to_string())?;
    let (family, curve_alg) = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&p.n)
                .map_err(|_| "RSA `n` is not base64url".to_string())?;
            let bits = n
                .iter()
                .position(|b| *b != 0)
                .map_or(0, |i| (n.len() - i) * 8 - n[i].leading_zeros() as usize);
            if bits < KeySet::MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of {bits} bits, under {}",
                    KeySet::MIN_RSA_BITS
                ));
            }
            (AlgorithmFamily::Rsa, None)
        }
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => (AlgorithmFamily::Ec, Some(Algorithm::ES256)),
            EllipticCurve::P384 => (AlgorithmFamily::Ec, Some(Algorithm::ES384)),
            _ => return Err("unsupported EC curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            (AlgorithmFamily::Ed, None)
        }
        _ => return Err("unsupported key type".into()),
    };
    if let (Some(a), Some(c)) = (jwk_alg, curve_alg) {
        if a != c {
            return Err("`alg` does not match the curve".into());
        }
    }
    let alg = jwk_alg.or(curve_alg);
    let usable = match alg {
        Some(a) => a.family() == family && allowed.contains(&a),
        None => allowed.iter().any(|a| a.family() == family),
    };
    if !usable {
        return Err("its algorithm is not allowed by the policy".into());
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "unusable key material".to_string())?;
    Ok(Key {
        kid,
        family,
        alg,
        key,
    })
}

// === verify ===

/// Verifies `token` (the compact JWS of `Authorization: Bearer`) with
/// `keys` under `policy` at the time `now_unix` (seconds since the epoch).
pub fn verify(
    token: &str,
    keys: &KeySet,
    policy: &JwtPolicy,
    now_unix: u64,
) -> Result<VerifiedToken, JwtError> {
    use JwtError as E;
    if token.len() > policy.max_token_bytes {
        return Err(E::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(E::Malformed("not three dot-separated parts"));
    };
    let header = json_part(h64).ok_or(E::Malformed("header is not base64url JSON object"))?;

    // Nothing else is read from an unsigned token.
    let alg_name = match header.get("alg") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(E::Malformed("header has no `alg` string")),
    };
    if alg_name.eq_ignore_ascii_case("none") {
        return Err(E::AlgNone);
    }
    let alg = JwtAlgorithm::from_name(alg_name)
        .filter(|a| policy.algorithms.contains(a))
        .map(algorithm)
        .ok_or(E::AlgNotAllowed)?;
    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: extensions mcpgate does not understand.
        return Err(E::Malformed("header has `crit`"));
    }
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(E::Malformed("header `typ` is not a string")),
    };
    if !policy.accepts_type(typ) {
        return Err(E::WrongType);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(E::Malformed("header `kid` is not a string")),
    };
    let claims = json_part(p64).ok_or(E::Malformed("payload is not base64url JSON object"))?;
    if base64url(s64).is_none() {
        return Err(E::Malformed("signature is not base64url"));
    }
    let key = keys.find(alg, kid)?;

    // Signature, `iss` and `aud` by the crate; time by our clock below.
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[&policy.issuer]);
    validation.set_audience(&policy.audiences);
    validation.validate_aud = true;
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = policy.leeway_secs;
    validation.required_spec_claims = ["exp", "iss", "aud", "sub"]
        .into_iter()
        .map(String::from)
        .collect::<HashSet<_>>();
    jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map_err(crate_error)?;

    if claims.get("iss").and_then(Value::as_str) != Some(policy.issuer.as_str()) {
        return Err(E::WrongIssuer);
    }
    let exp = numeric_date(&claims, "exp")?.ok_or_else(|| E::MissingClaim("exp".into()))?;
    if now_unix >= exp.saturating_add(policy.leeway_secs) {
        return Err(E::Expired);
    }
    if let Some(nbf) = numeric_date(&claims, "nbf")? {
        if now_unix.saturating_add(policy.leeway_secs) < nbf {
            return Err(E::NotYetValid);
        }
    }
    for name in &policy.required_claims {
        if claims.get(name).is_none_or(Value::is_null) {
            return Err(E::MissingClaim(name.clone()));
        }
    }
    let subject = match claims.get("sub") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(E::Malformed("`sub` is not a string")),
        None => return Err(E::MissingClaim("sub".into())),
    };
    Ok(VerifiedToken {
        subject,
        issuer: policy.issuer.clone(),
        scopes: scopes(&claims),
        expires_at: exp,
        claims,
    })
}

/// Strict base64url without padding (RFC 7515 §2), `None` otherwise.
fn base64url(part: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()
}

/// A part that must be the base64url of a strict JSON object.
fn json_part(part: &str) -> Option<Map<String, Value>> {
    match parse_strict(&base64url(part)?).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// A NumericDate claim (RFC 7519 §2): a non-negative number, fractions
/// rounded down.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, JwtError> {
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    let n = v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    });
    match n {
        Some(n) => Ok(Some(n)),
        None => Err(JwtError::Malformed(match name {
            "exp" => "`exp` is not a NumericDate",
            _ => "`nbf` is not a NumericDate",
        })),
    }
}

/// `scope` then `scp`, each a space-separated string or an array of
/// strings; in order, without duplicates.
fn scopes(claims: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in ["scope", "scp"] {
        let words: Vec<&str> = match claims.get(name) {
            Some(Value::String(s)) => s.split(' ').collect(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for w in words {
            if !w.is_empty() && !out.iter().any(|o| o == w) {
                out.push(w.to_string());
            }
        }
    }
    out
}

/// What a `jsonwebtoken` refusal means here.
fn crate_error(e: jsonwebtoken::errors::Error) -> JwtError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.into_kind() {
        K::InvalidIssuer => JwtError::WrongIssuer,
        K::InvalidAudience => JwtError::WrongAudience,
        K::MissingRequiredClaim(c) => JwtError::MissingClaim(c),
        K::ExpiredSignature => JwtError::Expired,
        K::ImmatureSignature => JwtError::NotYetValid,
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => {
            JwtError::AlgNotAllowed
        }
        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => {
            JwtError::Malformed("refused by the JWS decoder")
        }
        K::InvalidClaimFormat(_) => JwtError::Malformed("a registered claim has the wrong type"),
        // InvalidSignature, and a key that cannot serve this algorithm.
        _ => JwtError::BadSignature,
    }
}

#[cfg(test)]
mod tests;
