//! Self-contained, tamper-proof session ids.
//!
//! A session id the proxy hands out is the XChaCha20-Poly1305 encryption
//! (random 192-bit nonce) of everything needed to serve the session from any
//! process or replica holding the key: the upstream's own session id, the
//! pool and endpoint it lives on, the owning tenant, the protocol version the
//! client asked for, and which instance and worker own its live state. The
//! `chacha20poly1305` crate (RustCrypto) does the cryptography. Keys rotate as
//! a list, newest first: ids are sealed with the first and opened with any.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Format version of the sealed payload.
const FORMAT: u8 = 1;

/// What a session id carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Random id of the mcpgate instance (supervisor) whose worker owns the
    /// session's live state.
    pub instance: [u8; 8],
    pub worker: u16,
    pub pool: String,
    pub endpoint: u16,
    pub tenant: String,
    /// Protocol version the client's `initialize` asked for.
    pub version: String,
    pub upstream_id: Option<String>,
}

pub struct SessionCodec {
    ciphers: Vec<XChaCha20Poly1305>,
}

impl SessionCodec {
    /// `keys` newest first; at least one.
    pub fn new(keys: &[[u8; 32]]) -> Self {
        Self {
            ciphers: keys
                .iter()
                .map(|k| XChaCha20Poly1305::new(k.into()))
                .collect(),
        }
    }

    /// Seals claims into a URL-safe (visible ASCII) session id.
    pub fn seal(&self, c: &Claims) -> String {
        let mut plain = Vec::with_capacity(64);
        plain.push(FORMAT);
        plain.extend_from_slice(&c.instance);
        plain.extend_from_slice(&c.worker.to_be_bytes());
        plain.extend_from_slice(&c.endpoint.to_be_bytes());
        for s in [c.pool.as_str(), c.tenant.as_str(), c.version.as_str()] {
            put_str(&mut plain, Some(s));
        }
        put_str(&mut plain, c.upstream_id.as_deref());
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).expect("the OS random source is available");
        let sealed = self.ciphers[0]
            .encrypt(XNonce::from_slice(&nonce), plain.as_slice())
            .expect("encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a session id with any configured key; `None` when it was not
    /// made with one of them, was altered, or is malformed.
    pub fn open(&self, id: &str) -> Option<Claims> {
        let raw = URL_SAFE_NO_PAD.decode(id).ok()?;
        if raw.len() < 24 + 16 {
            return None;
        }
        let (nonce, sealed) = raw.split_at(24);
        let plain = self
            .ciphers
            .iter()
            .find_map(|c| c.decrypt(XNonce::from_slice(nonce), sealed).ok())?;
        parse(&plain)
    }
}

fn put_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.extend_from_slice(&u16::MAX.to_be_bytes()),
        Some(s) => {
            let s = &s.as_bytes()[..s.len().min(u16::MAX as usize - 1)];
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<Option<String>> {
        let len = self.u16()?;
        if len == u16::MAX {
            return Some(None);
        }
        Some(Some(
            String::from_utf8(self.take(len as usize)?.to_vec()).ok()?,
        ))
    }
}

fn parse(plain: &[u8]) -> Option<Claims> {
    let mut r = Reader(plain);
    if r.take(1)? != [FORMAT] {
        return None;
    }
    let instance = r.take(8)?.try_into().ok()?;
    let worker = r.u16()?;
    let endpoint = r.u16()?;
    let pool = r.string()??;
    let tenant = r.string()??;
    let version = r.string()??;
    let upstream_id = r.string()?;
    r.0.is_empty().then_some(Claims {
        instance,
        worker,
        pool,
        endpoint,
        tenant,
        version,
        upstream_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            instance: [7; 8],
            worker: 1,
            pool: "default".into(),
            endpoint: 2,
            tenant: "acme".into(),
            version: "2025-11-25".into(),
            upstream_id: Some("up-123".into()),
        }
    }

    #[test]
    fn round_trip_visible_ascii_and_unique() {
        let codec = SessionCodec::new(&[[1; 32]]);
        let a = codec.seal(&claims());
        let b = codec.seal(&claims());
        assert_ne!(a, b, "random nonces: ids never repeat");
        assert!(a.bytes().all(|c| (0x21..=0x7e).contains(&c)));
        assert!(a.len() < 200, "{}", a.len());
        assert_eq!(codec.open(&a), Some(claims()));
        let none = Claims {
            upstream_id: None,
            ..claims()
        };
        assert_eq!(codec.open(&codec.seal(&none)), Some(none));
    }

    #[test]
    fn tampered_and_foreign_ids_do_not_open() {
        let codec = SessionCodec::new(&[[1; 32]]);
        let id = codec.seal(&claims());
        let mut bytes = id.into_bytes();
        let i = bytes.len() / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(codec.open(&String::from_utf8(bytes).unwrap()), None);
        let other = SessionCodec::new(&[[2; 32]]);
        assert_eq!(other.open(&codec.seal(&claims())), None);
        assert_eq!(codec.open("not-base64!"), None);
        assert_eq!(codec.open(""), None);
    }

    #[test]
    fn rotation_opens_ids_sealed_with_an_older_key() {
        let old = SessionCodec::new(&[[1; 32]]);
        let rotated = SessionCodec::new(&[[9; 32], [1; 32]]);
        let id = old.seal(&claims());
        assert_eq!(rotated.open(&id), Some(claims()));
        assert_eq!(
            old.open(&rotated.seal(&claims())),
            None,
            "new ids use the newest key"
        );
    }
}
