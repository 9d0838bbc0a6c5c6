//! The identity a TLS scenario's proxies and clients share: a CA made for the
//! run with one ECDSA P-256 server certificate for `localhost` (served by
//! mcpgate and nginx alike), and an ES256 access token whose JWKS mcpgate
//! reads from a file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::json;

use crate::load::client::TlsClient;

/// The name clients send (SNI) and verify.
pub const SERVER_NAME: &str = "localhost";
/// `iss` of the run's tokens.
pub const ISSUER: &str = "https://auth.mcpbench.invalid";
/// `aud` of the run's tokens: the resource mcpgate serves.
pub const AUDIENCE: &str = "https://localhost/mcp";
/// The tenant the token's `tenant` claim names (one of the example policy).
pub const TENANT: &str = "demo";

/// Files of the run's server certificate.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The run's JWKS file and one access token it verifies.
#[derive(Debug, Clone)]
pub struct JwtFiles {
    pub jwks: PathBuf,
    pub token: String,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Makes a CA and a `localhost` certificate it signs, in `dir`.
pub fn make_tls(dir: &Path) -> io::Result<TlsFiles> {
    fs::create_dir_all(dir)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mcpbench run CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(other)?)
        .map_err(other)?;
    let leaf_key = KeyPair::generate().map_err(other)?;
    let mut leaf_params = CertificateParams::new(vec![SERVER_NAME.to_owned()]).map_err(other)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, SERVER_NAME);
    let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(other)?;
    let files = TlsFiles {
        ca: dir.join("tls-ca.pem"),
        cert: dir.join("tls-cert.pem"),
        key: dir.join("tls-key.pem"),
    };
    fs::write(&files.ca, ca.pem())?;
    fs::write(&files.cert, leaf.pem())?;
    fs::write(&files.key, leaf_key.serialize_pem())?;
    Ok(files)
}

impl TlsFiles {
    /// A client that trusts the run's CA.
    pub fn client(&self) -> io::Result<TlsClient> {
        TlsClient::new(&fs::read(&self.ca)?, SERVER_NAME)
    }

    /// mcpgate's `[listen.tls]` for this certificate.
    pub fn listen_toml(&self) -> String {
        format!(
            "\n[listen.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            self.cert.display(),
            self.key.display()
        )
    }
}

/// Makes an ES256 key, its JWKS file in `dir`, and an RFC 9068 access token
/// for tenant `demo`, valid for a day.
pub fn make_jwt(dir: &Path) -> io::Result<JwtFiles> {
    fs::create_dir_all(dir)?;
    let pair = KeyPair::generate().map_err(other)?; // ECDSA P-256, PKCS#8
    let key = EncodingKey::from_ec_der(&pair.serialize_der());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).map_err(other)?;
    jwk.common.key_id = Some("bench-1".to_owned());
    let jwks = dir.join("jwks.json");
    fs::write(
        &jwks,
        serde_json::to_vec(&json!({ "keys": [jwk] })).map_err(other)?,
    )?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some("bench-1".to_owned());
    let claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "mcpbench-client",
        "client_id": "mcpbench",
        "tenant": TENANT,
        "scope": "mcp",
        "iat": now,
        "exp": now + 86_400,
        "jti": format!("bench-{now}"),
    });
    let token = jsonwebtoken::encode(&header, &claims, &key).map_err(other)?;
    Ok(JwtFiles { jwks, token })
}

impl JwtFiles {
    /// mcpgate's `[auth.jwt]` for this key, the tenant named by the token's
    /// `tenant` claim.
    pub fn auth_toml(&self) -> String {
        format!(
            "\n[auth.jwt]\nissuer = \"{ISSUER}\"\naudiences = [\"{AUDIENCE}\"]\njwks_file = \"{}\"\nalgorithms = [\"ES256\"]\ntenant_claim = \"tenant\"\n",
            self.jwks.display()
        )
    }
}
