//! JWT access tokens (`[auth.jwt]`): the issuer's keys, kept fresh, and the
//! tokens already verified.
//!
//! - Keys come from `jwks_file` (re-read when it changes), `jwks_url`
//!   (fetched at start, every `jwks_refresh_secs`, and when a token names a
//!   `kid` the set does not have, never more often than
//!   `jwks_min_interval_secs`), or `hmac_secret_file`. A fetch that fails
//!   keeps the keys in use and is logged.
//! - A verified token is cached (by the SHA-256 of its bytes) until it
//!   expires, so a request with a known token costs no signature check. The
//!   cache is bounded; the clock comes from [`Clock`], so expiry is testable.
//! - The filters see this through [`TokenVerifier`]: synchronous, no I/O.
//!   The one wait (a refetch for an unknown `kid`) happens before the chain
//!   runs ([`Tokens::prepare`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use filters::jwt::{JwtError, KeySet, VerifiedToken};
use filters::TokenVerifier;
use parking_lot::Mutex;
use policies::JwtPolicy;
use sha2::{Digest, Sha256};

use crate::ops::clock::Clock;

/// Most verified tokens remembered at once.
const CACHE_MAX: usize = 10_000;
/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

enum Source {
    File(PathBuf),
    Url(String),
    /// HMAC secret: read once at start.
    Fixed,
}

pub struct Tokens {
    policy: JwtPolicy,
    keys: ArcSwap<KeySet>,
    source: Source,
    cache: Mutex<HashMap<[u8; 32], Arc<VerifiedToken>>>,
    clock: Arc<dyn Clock>,
    /// When keys were last fetched or read (the refetch floor).
    last_load: Mutex<Option<Instant>>,
    file_stamp: Mutex<Option<(SystemTime, u64)>>,
}

impl Tokens {
    /// The verifier of `policy`, with its first keys. A key file that cannot
    /// be read is an error; a key URL that cannot be fetched yet is logged
    /// and fetched again later (tokens are refused meanwhile).
    pub async fn load(policy: &JwtPolicy, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let source = match (
            &policy.jwks_file,
            &policy.jwks_url,
            &policy.hmac_secret_file,
        ) {
            (Some(f), _, _) => Source::File(f.clone()),
            (None, Some(u), _) => Source::Url(u.clone()),
            (None, None, Some(_)) => Source::Fixed,
            (None, None, None) => return Err("[auth.jwt] names no key source".into()),
        };
        let mut keys = KeySet::default();
        if let Some(secret) = &policy.hmac_secret_file {
            let bytes = std::fs::read(secret)
                .map_err(|e| format!("[auth.jwt] hmac_secret_file {}: {e}", secret.display()))?;
            keys = KeySet::with_hmac(&bytes)
                .map_err(|e| format!("[auth.jwt] hmac_secret_file: {e}"))?;
        }
        let tokens = Self {
            policy: policy.clone(),
            keys: ArcSwap::from_pointee(keys),
            source,
            cache: Mutex::new(HashMap::new()),
            clock,
            last_load: Mutex::new(None),
            file_stamp: Mutex::new(None),
        };
        match &tokens.source {
            Source::File(f) => {
                let set = read_file(f, &tokens.policy)?;
                tokens.keys.store(Arc::new(set));
                *tokens.file_stamp.lock() = stamp(f);
            }
            Source::Url(_) => {
                if let Err(e) = tokens.refresh().await {
                    tracing::error!(
                        "[auth.jwt] keys not fetched yet, tokens are refused until they are: {e}"
                    );
                }
            }
            Source::Fixed => {}
        }
        Ok(tokens)
    }

    /// Keeps the keys fresh: the file when it changed, the URL every
    /// `jwks_refresh_secs`. Runs until nothing else holds these keys (a
    /// reload replaced them) or the process ends.
    pub async fn keep_fresh(self: Arc<Self>) {
        let every = match self.source {
            Source::File(_) => Duration::from_secs(2),
            Source::Url(_) => Duration::from_secs(self.policy.jwks_refresh_secs.max(1)),
            Source::Fixed => return,
        };
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            if Arc::strong_count(&self) == 1 {
                return;
            }
            match &self.source {
                Source::File(f) => {
                    let now = stamp(f);
                    if now != *self.file_stamp.lock() {
                        *self.file_stamp.lock() = now;
                        match read_file(f, &self.policy) {
                            Ok(set) => {
                                self.keys.store(Arc::new(set));
                                tracing::info!("[auth.jwt] keys re-read from {}", f.display());
                            }
                            Err(e) => tracing::error!(
                                "[auth.jwt] keys not re-read, the previous ones stay: {e}"
                            ),
                        }
                    }
                }
                Source::Url(_) => {
                    if let Err(e) = self.refresh().await {
                        tracing::warn!(
                            "[auth.jwt] keys not refreshed, the previous ones stay: {e}"
                        );
                    }
                }
                Source::Fixed => return,
            }
        }
    }

    /// Before the chain: when `token` names a `kid` the key set lacks and
    /// keys come from a URL, fetch them again (at most once per
    /// `jwks_min_interval_secs`). A token this verifies is cached, so the
    /// auth filter's own check is a cache hit.
    pub async fn prepare(&self, token: &str) {
        if !matches!(self.source, Source::Url(_)) {
            return;
        }
        if let Err(JwtError::UnknownKid) = self.verify(token) {
            if let Err(e) = self.refresh().await {
                tracing::debug!("[auth.jwt] refetch for an unknown kid: {e}");
            }
        }
    }

    /// Fetches the key URL unless the last load is more recent than the floor.
    async fn refresh(&self) -> Result<(), String> {
        let Source::Url(url) = &self.source else {
            return Ok(());
        };
        let floor = Duration::from_secs(self.policy.jwks_min_interval_secs);
        {
            let mut last = self.last_load.lock();
            let now = self.clock.now();
            if last.is_some_and(|t| now.saturating_duration_since(t) < floor) {
                return Err("fetched too recently".into());
            }
            *last = Some(now);
        }
        let body = tokio::time::timeout(FETCH_TIMEOUT, fetch(url))
            .await
            .map_err(|_| format!("{url}: timed out"))??;
        let set = KeySet::from_jwks(&body, &self.policy).map_err(|e| format!("{url}: {e}"))?;
        for why in set.skipped() {
            tracing::debug!("[auth.jwt] key skipped: {why}");
        }
        tracing::info!(keys = set.len(), "[auth.jwt] keys fetched from {url}");
        self.keys.store(Arc::new(set));
        Ok(())
    }

    fn unix_now(&self) -> u64 {
        self.clock.unix_secs()
    }
}

impl TokenVerifier for Tokens {
    fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, JwtError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = self.unix_now();
        if let Some(hit) = self.cache.lock().get(&digest) {
            // Cached until it expires (leeway included, as when verified).
            if hit.expires_at + self.policy.leeway_secs > now {
                return Ok(hit.clone());
            }
        }
        let verified = Arc::new(filters::jwt::verify(
            token,
            &self.keys.load(),
            &self.policy,
            now,
        )?);
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

fn read_file(path: &PathBuf, policy: &JwtPolicy) -> Result<KeySet, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    KeySet::from_jwks(&bytes, policy).map_err(|e| format!("{}: {e}", path.display()))
}

fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// GET `url` (http or https), at most [`KeySet::MAX_JWKS_BYTES`].
async fn fetch(url: &str) -> Result<Bytes, String> {
    use pingora::connectors::http::Connector;
    use pingora::upstreams::peer::HttpPeer;
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let tls = uri.scheme_str() == Some("https");
    let host = uri
        .host()
        .ok_or_else(|| format!("{url}: no host"))?
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    let peer = HttpPeer::new(addr, tls, host.clone());
    let connector = Connector::new(None);
    let (mut session, _) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = pingora::http::RequestHeader::build("GET", path.as_bytes(), None)
        .map_err(|e| format!("{url}: {e}"))?;
    let host_header = match uri.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    for (k, v) in [
        ("host", host_header.as_str()),
        ("accept", "application/json"),
    ] {
        req.insert_header(k, v).map_err(|e| format!("{url}: {e}"))?;
    }
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    session
        .finish_request_body()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    session
        .read_response_header()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = session
        .response_header()
        .map(|h| h.status.as_u16())
        .unwrap_or(0);
    if status != 200 {
        return Err(format!("{url}: HTTP {status}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = session
        .read_response_body()
        .await
        .map_err(|e| format!("{url}: {e}"))?
    {
        if body.len() + chunk.len() > KeySet::MAX_JWKS_BYTES {
            return Err(format!("{url}: more than {} bytes", KeySet::MAX_JWKS_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}
