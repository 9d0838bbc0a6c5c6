use crate::testutil::UP;
use crate::{parse_policy, ClientAuth, TlsVersion};

fn errors(src: &str) -> String {
    parse_policy("t.toml", &format!("{UP}{src}"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn absent_means_plain_http() {
    let p = parse_policy("t.toml", UP).unwrap();
    assert!(p.listen.tls.is_none());
}

#[test]
fn a_default_pair_and_sni_pairs() {
    let src = format!(
        "{UP}[listen.tls]\ncert_file = \"a.pem\"\nkey_file = \"a.key\"\nmin_version = \"1.3\"\n\
         client_ca_file = \"ca.pem\"\nclient_auth = \"optional\"\n\
         [[listen.tls.certificates]]\nserver_names = [\"B.example.org\", \"*.c.example\"]\n\
         cert_file = \"b.pem\"\nkey_file = \"b.key\"\n"
    );
    let tls = parse_policy("t.toml", &src).unwrap().listen.tls.unwrap();
    assert_eq!(tls.certificates.len(), 2);
    assert!(tls.certificates[0].server_names.is_empty());
    assert_eq!(
        tls.certificates[1].server_names,
        ["b.example.org", "*.c.example"]
    );
    assert_eq!(tls.min_version, TlsVersion::V1_3);
    assert_eq!(tls.client_auth, ClientAuth::Optional);
    assert_eq!(tls.handshake_timeout_ms, 10_000);
}

#[test]
fn shapes_that_cannot_work_are_errors() {
    assert!(errors("[listen.tls]\ncert_file = \"a.pem\"\n").contains("go together"));
    assert!(errors("[listen.tls]\nmin_version = \"1.2\"\n").contains("needs cert_file"));
    assert!(
        errors("[listen.tls]\ncert_file = \"a\"\nkey_file = \"b\"\nmin_version = \"1.1\"\n")
            .contains("`1.1`")
    );
    assert!(errors(
        "[listen.tls]\ncert_file = \"a\"\nkey_file = \"b\"\nclient_auth = \"required\"\n"
    )
    .contains("client_ca_file"));
    assert!(errors(
        "[listen.tls]\ncert_file = \"a\"\nkey_file = \"b\"\n[[listen.tls.certificates]]\ncert_file = \"c\"\nkey_file = \"d\"\n"
    )
    .contains("server_names"));
    assert!(
        errors("[listen.tls]\ncert_file = \"a\"\nkey_file = \"b\"\nciphers = \"x\"\n")
            .contains("unknown key")
    );
}
