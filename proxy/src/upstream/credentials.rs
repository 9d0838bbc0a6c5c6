//! How mcpgate authenticates itself to an upstream (`[upstream.auth]`).
//!
//! The client's own credential never goes upstream (no token passthrough,
//! MCP authorization spec); when an upstream needs one, it comes from here:
//! - a fixed secret read at start from a file or the environment, sent in a
//!   configured header (`Authorization: Bearer ...` by default);
//! - or a short-lived JWT that mcpgate mints for the upstream's audience,
//!   carrying the verified subject and tenant of the caller, signed with
//!   mcpgate's own key (ES256 or EdDSA, never RSA). Its public key is
//!   published as a JWKS on the admin listener (`/.well-known/jwks.json`) so
//!   the upstream can verify it. A minted token is reused for the same caller
//!   until shortly before it expires.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use pingora::http::RequestHeader;
use policies::{MintAlgorithm, UpstreamCredential};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;

use crate::ops::clock::Clock;

/// A minted token is renewed this long before it expires.
const RENEW_BEFORE_SECS: u64 = 30;
/// Most callers whose minted tokens are remembered at once.
const MINTED_MAX: usize = 10_000;

/// Who a request is made for (the claims of a minted token).
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub tenant: &'a str,
    /// The verified subject (token `sub`, client certificate identity).
    pub subject: Option<&'a str>,
}

pub enum Credentials {
    Static {
        header: HeaderName,
        value: HeaderValue,
    },
    Mint(Box<Minter>),
}

/// (tenant, subject) of a caller.
type CallerKey = (String, String);
/// A minted token and when it expires (Unix seconds).
type Minted = (Arc<str>, u64);

pub struct Minter {
    key: EncodingKey,
    algorithm: Algorithm,
    audience: String,
    issuer: String,
    ttl_secs: u64,
    kid: Option<String>,
    /// The public key, as a JWK, for the admin listener's JWKS.
    jwk: serde_json::Value,
    minted: Mutex<HashMap<CallerKey, Minted>>,
    clock: Arc<dyn Clock>,
}

impl Credentials {
    /// Reads the secret or the signing key `config` names.
    pub fn load(config: &UpstreamCredential, clock: Arc<dyn Clock>) -> Result<Self, String> {
        match config {
            UpstreamCredential::Static {
                header,
                prefix,
                file,
                env,
            } => {
                let secret = match (file, env) {
                    (Some(f), _) => std::fs::read_to_string(f)
                        .map_err(|e| format!("[upstream.auth] {}: {e}", f.display()))?,
                    (None, Some(name)) => std::env::var(name).map_err(|_| {
                        format!("[upstream.auth] environment variable {name} is not set")
                    })?,
                    (None, None) => return Err("[upstream.auth] names no secret".into()),
                };
                let secret = secret.trim();
                if secret.is_empty() {
                    return Err("[upstream.auth] the secret is empty".into());
                }
                Ok(Self::Static {
                    header: HeaderName::from_bytes(header.as_bytes())
                        .map_err(|e| format!("[upstream.auth] header: {e}"))?,
                    value: HeaderValue::from_str(&format!("{prefix}{secret}"))
                        .map_err(|_| "[upstream.auth] the secret is not a valid header value")?,
                })
            }
            UpstreamCredential::Mint {
                key_file,
                algorithm,
                audience,
                issuer,
                ttl_secs,
                kid,
            } => {
                let der = PrivateKeyDer::from_pem_file(key_file)
                    .map_err(|e| format!("[upstream.auth] {}: {e}", key_file.display()))?;
                let (key, alg) = match algorithm {
                    MintAlgorithm::Es256 => {
                        (EncodingKey::from_ec_der(der.secret_der()), Algorithm::ES256)
                    }
                    MintAlgorithm::EdDsa => {
                        (EncodingKey::from_ed_der(der.secret_der()), Algorithm::EdDSA)
                    }
                };
                let mut jwk = serde_json::to_value(
                    jsonwebtoken::jwk::Jwk::from_encoding_key(&key, alg).map_err(|e| {
                        format!(
                            "[upstream.auth] {} is not a {} key: {e}",
                            key_file.display(),
                            algorithm.name()
                        )
                    })?,
                )
                .map_err(|e| e.to_string())?;
                if let (Some(k), Some(obj)) = (kid, jwk.as_object_mut()) {
                    obj.insert("kid".into(), serde_json::json!(k));
                    obj.insert("use".into(), serde_json::json!("sig"));
                }
                let minter = Minter {
                    key,
                    algorithm: alg,
                    audience: audience.clone(),
                    issuer: issuer.clone(),
                    ttl_secs: *ttl_secs,
                    kid: kid.clone(),
                    jwk,
                    minted: Mutex::new(HashMap::new()),
                    clock,
                };
                // Sign once now: a key that cannot sign fails at start.
                minter.mint(Caller {
                    tenant: "mcpgate",
                    subject: None,
                })?;
                Ok(Self::Mint(Box::new(minter)))
            }
        }
    }

    /// Puts the credential on a request made for `caller`.
    pub fn apply(&self, req: &mut RequestHeader, caller: Caller<'_>) -> Result<(), String> {
        match self {
            Self::Static { header, value } => req
                .insert_header(header.clone(), value.clone())
                .map_err(|e| e.to_string()),
            Self::Mint(m) => {
                let token = m.token_for(caller)?;
                req.insert_header("authorization", format!("Bearer {token}"))
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// The public key of minted tokens, as a JWK.
    pub fn jwk(&self) -> Option<&serde_json::Value> {
        match self {
            Self::Mint(m) => Some(&m.jwk),
            Self::Static { .. } => None,
        }
    }
}

impl Minter {
    fn token_for(&self, caller: Caller<'_>) -> Result<Arc<str>, String> {
        let key = (
            caller.tenant.to_string(),
            caller.subject.unwrap_or("").to_string(),
        );
        let now = self.clock.unix_secs();
        if let Some((t, exp)) = self.minted.lock().get(&key) {
            if *exp > now + RENEW_BEFORE_SECS {
                return Ok(t.clone());
            }
        }
        let (token, exp) = self.mint(caller)?;
        let mut minted = self.minted.lock();
        if minted.len() >= MINTED_MAX {
            minted.retain(|_, (_, e)| *e > now + RENEW_BEFORE_SECS);
            if minted.len() >= MINTED_MAX {
                minted.clear();
            }
        }
        minted.insert(key, (token.clone(), exp));
        Ok(token)
    }

    fn mint(&self, caller: Caller<'_>) -> Result<(Arc<str>, u64), String> {
        let now = self.clock.unix_secs();
        let exp = now + self.ttl_secs;
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|e| e.to_string())?;
        let claims = serde_json::json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": caller.subject.map_or_else(|| format!("tenant:{}", caller.tenant), str::to_string),
            "tenant": caller.tenant,
            "iat": now,
            "exp": exp,
            "jti": hex::encode(jti),
        });
        let mut header = Header::new(self.algorithm);
        header.typ = Some("at+jwt".into());
        header.kid = self.kid.clone();
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("[upstream.auth] signing: {e}"))?;
        Ok((Arc::from(token), exp))
    }
}

#[cfg(test)]
mod tests;
