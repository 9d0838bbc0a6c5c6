use super::*;

fn rule(s: &str) -> Result<(), &'static str> {
    canonicalize(s).map(|_| ()).map_err(Finding::rule)
}

#[test]
fn plain_traversal_in_every_spelling() {
    for s in [
        "../etc/passwd",
        "a/../../b",
        "..",
        "..\\..\\windows\\win.ini",
        "file:///srv/data/../../etc/passwd",
        "demo://../secret",
        "%2e%2e%2fetc",
        "%2E%2E%2Fetc",
        "%252e%252e%252fetc",
        "%25252e%25252e%25252fetc",
        "%u002e%u002e%u2215etc",
        "．．／etc",
        "\u{2024}\u{2024}/etc",
        "\u{2025}/etc",
        "..\u{200b}/etc",
        "％２ｅ％２ｅ／etc",
        "%ef%bc%8e%ef%bc%8e/etc",
        ".. /etc",
        "... /etc",
        "..;/etc",
        "..::$INDEX_ALLOCATION/x",
        "demo://x/?file=../../etc/passwd",
        "demo://x/#../../etc",
    ] {
        assert_eq!(rule(s), Err("dot-dot-segment"), "{s}");
    }
}

#[test]
fn encoding_tricks_are_refused_as_such() {
    assert_eq!(rule("%c0%ae%c0%ae/etc"), Err("overlong-utf8"));
    assert_eq!(rule("%e0%80%ae%e0%80%ae/etc"), Err("overlong-utf8"));
    assert_eq!(rule("%c1%9c"), Err("overlong-utf8"));
    assert_eq!(rule("%ff/etc"), Err("invalid-utf8"));
    assert_eq!(rule("a%00.txt"), Err("nul-byte"));
    assert_eq!(rule("a\0.txt"), Err("nul-byte"));
    assert_eq!(rule("a%250.txt%2500"), Err("nul-byte"));
    assert_eq!(rule("a%0d%0a"), Err("control-character"));
    assert_eq!(rule("%2525252e%2525252e/x"), Err("dot-dot-segment"));
    assert_eq!(rule("%252525252e%252525252e/x"), Err("too-many-encodings"));
    assert_eq!(rule(&"a/".repeat(MAX_INSPECTED_BYTES)), Err("too-long"));
}

#[test]
fn windows_and_network_paths() {
    assert_eq!(rule("\\\\server\\share\\x"), Err("unc-path"));
    assert_eq!(rule("//?/C:/x"), Err("unc-path"));
    assert_eq!(rule("file:////server/share"), Err("unc-path"));
    assert_eq!(rule("file://server/share/x"), Err("remote-file-host"));
    assert_eq!(rule("FILE://Evil.example/x"), Err("remote-file-host"));
    assert_eq!(rule("/srv/data/C:/Windows"), Err("embedded-drive-letter"));
    assert_eq!(rule("file:///srv/c|/x"), Err("embedded-drive-letter"));
    assert_eq!(rule("C:..\\x"), Err("drive-relative-path"));
    assert_eq!(rule("C:x"), Err("drive-relative-path"));
    assert_eq!(rule("~/.ssh/id_rsa"), Err("home-directory"));
    assert_eq!(rule("~root/.bashrc"), Err("home-directory"));
}

#[test]
fn look_alikes_that_are_not_traversal_pass() {
    for s in [
        "file:///srv/data/report..final.pdf",
        "file:///srv/data/..hidden",
        "file:///srv/data/a.b.c",
        "file:///srv/data/./x",
        "file:///srv/data/My%20Documents/a.txt",
        "file:///srv/data/100%25.txt",
        "file://localhost/srv/data/x",
        "file:///C:/Users/alice/doc.txt",
        "C:\\Users\\alice\\doc.txt",
        "docs/guide.md",
        "./docs/guide.md",
        "demo://readme",
        "demo://search?q=a..b&range=1..5",
        "file:///srv/data/chapter\u{2024}1.txt",
        "file:///srv/data/%E2%80%A6notes.txt",
        "urn:isbn:0451450523",
        "file:///{path}",
        "repo://acme/src/main.rs#L10",
    ] {
        assert_eq!(rule(s), Ok(()), "{s}");
    }
}

#[test]
fn parts_and_root_form() {
    let c = canonicalize("FILE://LOCALHOST/srv//data/./a%20b.txt").unwrap();
    assert_eq!(c.scheme.as_deref(), Some("file"));
    assert_eq!(c.root_form().as_deref(), Some("file:///srv/data/a b.txt"));
    let c = canonicalize("C:\\data\\x.txt").unwrap();
    assert_eq!(c.effective_scheme(), Some("file"));
    assert_eq!(c.root_form().as_deref(), Some("file:///C:/data/x.txt"));
    let c = canonicalize("/srv/data/").unwrap();
    assert_eq!(c.root_form().as_deref(), Some("file:///srv/data/"));
    assert_eq!(canonicalize("docs/a.md").unwrap().root_form(), None);
    let c = canonicalize("Demo://Readme/x?y=1").unwrap();
    assert_eq!(c.root_form().as_deref(), Some("demo://readme/x"));
    assert_eq!(c.query.as_deref(), Some("y=1"));
    let c = canonicalize("urn:isbn:1").unwrap();
    assert_eq!(c.root_form().as_deref(), Some("urn:isbn:1"));
}
