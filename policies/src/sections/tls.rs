//! `[listen.tls]`: TLS termination on the MCP listener (rustls).
//!
//! The loader only reads and checks the shape: the files themselves are
//! read by the proxy when it starts and whenever they change (an unreadable
//! or mismatched new pair keeps the old one), so `check` does not need the
//! certificates at hand.

use std::path::PathBuf;

use toml_edit::{Item, TableLike};

use crate::reader::{join, Reader};

/// Oldest TLS version a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

/// Whether clients present a certificate (mTLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    Off,
    /// Asked for and verified against `client_ca_file` when sent.
    Optional,
    /// A verified client certificate is required to complete the handshake.
    Required,
}

/// One certificate chain and its key, for the names it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCertificate {
    /// PEM chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC; RSA, ECDSA or Ed25519).
    pub key_file: PathBuf,
    /// SNI names this pair serves (`*.example.org` allowed); empty for the
    /// default pair (`[listen.tls] cert_file`/`key_file`), served when no
    /// name matches or the client sends none.
    pub server_names: Vec<String>,
}

/// The compiled `[listen.tls]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListen {
    /// The default pair first (when given), then `[[listen.tls.certificates]]`.
    pub certificates: Vec<TlsCertificate>,
    pub min_version: TlsVersion,
    /// PEM bundle of the CAs that sign client certificates.
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// A client must finish its handshake within this time.
    pub handshake_timeout_ms: u64,
}

/// Reads `[listen.tls]` of `listen` (`None` when absent: plain HTTP).
pub(crate) fn read_tls(r: &mut Reader, listen: &dyn TableLike) -> Option<TlsListen> {
    const P: &str = "listen.tls";
    let t = r.table(listen, "tls", "listen")?;
    r.deny_unknown(t, P, P);
    let mut certificates = Vec::new();
    let cert = r.opt_string(t, "cert_file", P);
    let key = r.opt_string(t, "key_file", P);
    match (cert, key) {
        (Some(c), Some(k)) => certificates.push(TlsCertificate {
            cert_file: c.into(),
            key_file: k.into(),
            server_names: Vec::new(),
        }),
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => r.error(
            Reader::span_of(t, "cert_file").or_else(|| Reader::span_of(t, "key_file")),
            &join(P, "cert_file"),
            "cert_file and key_file go together",
        ),
    }
    read_certificates(r, t, &mut certificates);
    if certificates.is_empty() {
        r.error(
            None,
            P,
            "needs cert_file and key_file, or [[listen.tls.certificates]]",
        );
    }
    let min_version = r.choice(
        t,
        "min_version",
        P,
        "1.2",
        &[("1.2", TlsVersion::V1_2), ("1.3", TlsVersion::V1_3)],
    );
    let client_ca_file = r.opt_string(t, "client_ca_file", P).map(PathBuf::from);
    let client_auth = r.choice(
        t,
        "client_auth",
        P,
        "off",
        &[
            ("off", ClientAuth::Off),
            ("optional", ClientAuth::Optional),
            ("required", ClientAuth::Required),
        ],
    );
    if client_auth != ClientAuth::Off && client_ca_file.is_none() {
        r.error(
            Reader::span_of(t, "client_auth"),
            &join(P, "client_auth"),
            "client certificates need client_ca_file",
        );
    }
    let handshake_timeout_ms =
        r.integer(t, "handshake_timeout_ms", P, 10_000, 100..=120_000) as u64;
    Some(TlsListen {
        certificates,
        min_version,
        client_ca_file,
        client_auth,
        handshake_timeout_ms,
    })
}

/// `[[listen.tls.certificates]]`: pairs chosen by SNI.
fn read_certificates(r: &mut Reader, t: &dyn TableLike, out: &mut Vec<TlsCertificate>) {
    const P: &str = "listen.tls.certificates";
    let Some(item) = t.get("certificates") else {
        return;
    };
    let Item::ArrayOfTables(array) = item else {
        r.error(
            Reader::span_of(t, "certificates"),
            P,
            "expected [[listen.tls.certificates]] tables",
        );
        return;
    };
    for (i, c) in array.iter().enumerate() {
        let path = format!("{P}[{i}]");
        r.deny_unknown(c, &path, P);
        let cert = r.opt_string(c, "cert_file", &path);
        let key = r.opt_string(c, "key_file", &path);
        let names: Vec<String> = r
            .strings(c, "server_names", &path)
            .unwrap_or_default()
            .into_iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        for n in &names {
            let bare = n.strip_prefix("*.").unwrap_or(n);
            let valid = !bare.is_empty()
                && bare.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                r.error(
                    Reader::span_of(c, "server_names"),
                    &join(&path, "server_names"),
                    format!("`{n}` is not a DNS name (or `*.` and a DNS name)"),
                );
            }
        }
        match (cert, key, names.is_empty()) {
            (Some(c), Some(k), false) => out.push(TlsCertificate {
                cert_file: c.into(),
                key_file: k.into(),
                server_names: names,
            }),
            _ => r.error(
                c.span(),
                &path,
                "needs cert_file, key_file and a non-empty server_names",
            ),
        }
    }
}

#[cfg(test)]
mod tests;
