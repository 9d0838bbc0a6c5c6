use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DnType, KeyPair, SanType};

use super::*;

struct Made {
    dir: PathBuf,
}

impl Made {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mcpgate-tls-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    /// A self-signed pair for `names`, written as NAME.pem / NAME.key.
    fn pair(&self, file: &str, names: &[&str]) -> TlsCertificate {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        TlsCertificate {
            cert_file: c,
            key_file: k,
            server_names: Vec::new(),
        }
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn settings(certificates: Vec<TlsCertificate>) -> TlsListen {
    TlsListen {
        certificates,
        min_version: TlsVersion::V1_2,
        client_ca_file: None,
        client_auth: ClientAuth::Off,
        handshake_timeout_ms: 1000,
    }
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[test]
fn wildcards_cover_one_label() {
    assert!(name_matches("*.example.org", "a.example.org"));
    assert!(!name_matches("*.example.org", "a.b.example.org"));
    assert!(!name_matches("*.example.org", "example.org"));
    assert!(name_matches("mcp.example.org", "mcp.example.org"));
    assert!(!name_matches("mcp.example.org", "xmcp.example.org"));
}

#[test]
fn sni_picks_its_pair_and_falls_back_to_the_default() {
    let made = Made::new("sni");
    let default = made.pair("default", &["localhost"]);
    let mut a = made.pair("a", &["a.example.org"]);
    a.server_names = vec!["a.example.org".into()];
    let mut b = made.pair("b", &["x.b.example"]);
    b.server_names = vec!["*.b.example".into()];
    let r = SniResolver::load(&[default.clone(), a.clone(), b.clone()], &provider()).unwrap();
    let leaf = |k: Option<Arc<CertifiedKey>>| k.unwrap().cert[0].clone();
    let file_leaf = |c: &TlsCertificate| read_chain(&c.cert_file).unwrap()[0].clone();
    assert_eq!(leaf(r.pick(Some("A.example.org"))), file_leaf(&a));
    assert_eq!(leaf(r.pick(Some("x.b.example"))), file_leaf(&b));
    assert_eq!(leaf(r.pick(Some("other.org"))), file_leaf(&default));
    assert_eq!(leaf(r.pick(None)), file_leaf(&default));
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused() {
    let made = Made::new("mismatch");
    let a = made.pair("a", &["localhost"]);
    let b = made.pair("b", &["localhost"]);
    let crossed = TlsCertificate {
        cert_file: a.cert_file.clone(),
        key_file: b.key_file.clone(),
        server_names: Vec::new(),
    };
    let err = build(&settings(vec![crossed])).err().unwrap();
    assert!(err.contains("does not match"), "{err}");
    assert!(build(&settings(vec![a])).is_ok());
}

#[test]
fn a_broken_new_pair_keeps_the_old_acceptor() {
    let made = Made::new("reload");
    let a = made.pair("a", &["localhost"]);
    let t = Terminator::new(&settings(vec![a.clone()])).unwrap();
    let before = Arc::as_ptr(&t.acceptor());
    assert!(!t.reload(false), "nothing changed");
    std::fs::write(&a.key_file, "not a key").unwrap();
    assert!(!t.reload(false), "an unreadable key is not taken");
    assert_eq!(Arc::as_ptr(&t.acceptor()), before);
    // A good new pair is taken.
    let fresh = made.pair("fresh", &["localhost"]);
    std::fs::copy(&fresh.cert_file, &a.cert_file).unwrap();
    std::fs::copy(&fresh.key_file, &a.key_file).unwrap();
    assert!(t.reload(true));
    assert_ne!(Arc::as_ptr(&t.acceptor()), before);
}

#[test]
fn client_identity_lists_uri_and_dns_sans_and_the_cn() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![
        SanType::URI("spiffe://example.org/ns/a/sa/b".try_into().unwrap()),
        SanType::DnsName("Client.Example.org".try_into().unwrap()),
    ];
    params
        .distinguished_name
        .push(DnType::CommonName, "agent-7");
    let cert = params.self_signed(&key).unwrap();
    let id = ClientIdentity::from_der(cert.der()).unwrap();
    assert_eq!(
        id.ids,
        [
            "spiffe://example.org/ns/a/sa/b",
            "client.example.org",
            "cn:agent-7"
        ]
    );
    assert!(ClientIdentity::from_der(b"junk").is_none());
}

#[test]
fn client_auth_needs_a_readable_ca() {
    let made = Made::new("ca");
    let a = made.pair("a", &["localhost"]);
    let mut s = settings(vec![a.clone()]);
    s.client_auth = ClientAuth::Required;
    s.client_ca_file = Some(Path::new("/nonexistent/ca.pem").to_path_buf());
    assert!(build(&s).is_err());
    s.client_ca_file = Some(a.cert_file.clone());
    assert!(build(&s).is_ok());
}
