//! TLS termination on the MCP listener (rustls, through pingora's acceptor).
//!
//! [`Terminator`] holds the acceptor built from `[listen.tls]` and swaps it
//! when the certificate, key or client-CA files change (checked every few
//! seconds, and at once on SIGHUP): a new set that cannot be read, or whose
//! key does not match its certificate, keeps the old acceptor and logs why.
//! Certificates are chosen by SNI ([`SniResolver`]); clients may be asked
//! for a certificate (mTLS), verified against `client_ca_file`, whose
//! identities ([`ClientIdentity`]) the accept layer hands to the request
//! handler for tenant mapping.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use pingora::listeners::tls::Acceptor;
use policies::{ClientAuth, TlsCertificate, TlsListen, TlsVersion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

/// How often the files are checked for changes.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// The TLS side of the listener: the current acceptor and how to rebuild it.
pub struct Terminator {
    settings: TlsListen,
    current: ArcSwap<Acceptor>,
    /// Modification times and sizes of the files the current acceptor was
    /// built from (a change triggers a rebuild).
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

impl Terminator {
    /// Builds the first acceptor; an error here stops the worker at start.
    pub fn new(settings: &TlsListen) -> Result<Self, String> {
        let stamps = stamps(settings);
        let acceptor = build(settings)?;
        Ok(Self {
            settings: settings.clone(),
            current: ArcSwap::from_pointee(acceptor),
            stamps: Mutex::new(stamps),
        })
    }

    pub fn acceptor(&self) -> Arc<Acceptor> {
        self.current.load_full()
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.handshake_timeout_ms)
    }

    /// Rebuilds the acceptor when a file changed (or always, when `force`).
    /// Returns whether a new acceptor is in use.
    pub fn reload(&self, force: bool) -> bool {
        let now = stamps(&self.settings);
        {
            let mut seen = self.stamps.lock();
            if !force && *seen == now {
                return false;
            }
            *seen = now;
        }
        match build(&self.settings) {
            Ok(a) => {
                self.current.store(Arc::new(a));
                tracing::info!("TLS certificates reloaded");
                true
            }
            Err(why) => {
                tracing::error!("TLS certificates not reloaded, the previous ones stay: {why}");
                false
            }
        }
    }
}

fn files(settings: &TlsListen) -> Vec<&Path> {
    let mut out: Vec<&Path> = settings
        .certificates
        .iter()
        .flat_map(|c| [c.cert_file.as_path(), c.key_file.as_path()])
        .collect();
    out.extend(settings.client_ca_file.as_deref());
    out
}

fn stamps(settings: &TlsListen) -> Vec<Option<(SystemTime, u64)>> {
    files(settings)
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// A server config from the files `settings` names.
pub fn build(settings: &TlsListen) -> Result<Acceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS12, &rustls::version::TLS13],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match (settings.client_auth, &settings.client_ca_file) {
        (ClientAuth::Off, _) | (_, None) => builder.with_no_client_auth(),
        (mode, Some(ca)) => {
            let roots = Arc::new(read_roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let verifier = if mode == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("{}: {e}", ca.display()))?,
            )
        }
    };
    let resolver = SniResolver::load(&settings.certificates, &provider)?;
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    // mcpgate serves HTTP/1.1 to clients.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Acceptor::from_server_config(Arc::new(config)))
}

fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = read_chain(path)?;
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("{}: not a CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// A certificate chain and its key, checked to belong together.
fn load_pair(
    c: &TlsCertificate,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let chain = read_chain(&c.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&c.key_file)
        .map_err(|e| format!("{}: no usable private key: {e}", c.key_file.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{}: {e}", c.key_file.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "{} does not match {}: {e}",
            c.key_file.display(),
            c.cert_file.display()
        )
    })?;
    Ok(Arc::new(certified))
}

/// Chooses a certificate by the SNI name the client sent.
#[derive(Debug)]
pub struct SniResolver {
    /// (names, pair); a name may be `*.example.org` (one label).
    named: Vec<(Vec<String>, Arc<CertifiedKey>)>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    fn load(
        certificates: &[TlsCertificate],
        provider: &rustls::crypto::CryptoProvider,
    ) -> Result<Self, String> {
        let mut named = Vec::new();
        let mut default = None;
        for c in certificates {
            let pair = load_pair(c, provider)?;
            if c.server_names.is_empty() {
                default = Some(pair);
            } else {
                named.push((c.server_names.clone(), pair));
            }
        }
        Ok(Self { named, default })
    }

    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = sni.and_then(|name| {
            let name = name.to_ascii_lowercase();
            self.named
                .iter()
                .find(|(names, _)| names.iter().any(|n| name_matches(n, &name)))
                .map(|(_, k)| k.clone())
        });
        found
            .or_else(|| self.default.clone())
            .or_else(|| self.named.first().map(|(_, k)| k.clone()))
    }
}

/// `pattern` is a DNS name or `*.` and a DNS name (the star is one label).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == name,
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

/// What a verified client certificate says about its holder, for mapping
/// it to a tenant (`[tenants.NAME] client_cert`): URI SANs (SPIFFE IDs),
/// DNS SANs, and the subject CN as `cn:NAME`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIdentity {
    pub ids: Vec<String>,
}

impl ClientIdentity {
    /// Reads the leaf certificate (DER) the handshake verified.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut ids = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(u) => ids.push((*u).to_string()),
                    GeneralName::DNSName(d) => ids.push(d.to_ascii_lowercase()),
                    _ => {}
                }
            }
        }
        for cn in cert.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                ids.push(format!("cn:{s}"));
            }
        }
        Some(Self { ids })
    }
}

#[cfg(test)]
mod tests;
