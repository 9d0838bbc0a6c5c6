use super::*;

fn policies(extra: &str) -> (DataGuardPolicy, DataGuardPolicy) {
    let src = format!(
        "[upstream]\nurl = \"http://127.0.0.1:9/mcp\"\n[content.secrets]\n[content.pii]\n{extra}"
    );
    let p = policies::parse_policy("t.toml", &src).expect("valid policy");
    (p.content.secrets, p.content.pii)
}

fn rules_in(text: &str) -> Vec<&'static str> {
    let (s, p) = policies("");
    find(&s, &p, text).into_iter().map(|m| m.rule).collect()
}

/// Token-shaped test values are built at run time, so the source itself
/// holds no string a secret scanner would report.
fn token(prefix: &str, body: &str, n: usize) -> String {
    format!(
        "{prefix}{}",
        body.repeat(n / body.len() + 1)[..n].to_owned()
    )
}

#[test]
fn the_policy_and_the_patterns_name_the_same_rules() {
    assert_eq!(rule_names(Guard::Secrets), policies::SECRET_RULES);
    assert_eq!(rule_names(Guard::Pii), policies::PII_RULES);
}

#[test]
fn each_secret_rule_finds_its_kind() {
    let cases = [
        (
            "private-key",
            format!(
                "x\n-----BEGIN {}PRIVATE KEY-----\nMIIEv\nabc\n-----END {}PRIVATE KEY-----\ny",
                "RSA ", "RSA "
            ),
        ),
        (
            "aws-access-key",
            format!("key {}", token("AKIA", "IOSFODNN7EXAMPL", 16)),
        ),
        (
            "aws-secret-key",
            format!(
                "aws_secret_access_key = \"{}\"",
                token("", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY", 40)
            ),
        ),
        ("gcp-api-key", token("AIza", "SyD-9tSrke72PouQMnMX", 35)),
        (
            "azure-storage-key",
            format!("AccountKey={};", token("", "aB3dE5fG7hJ9kL1mN", 86) + "=="),
        ),
        (
            "github-token",
            token("ghp_", "16C7e42F292c6912E7710c838347Ae178B4a", 36),
        ),
        ("gitlab-token", token("glpat-", "xYz123AbC456dEf789gH", 20)),
        (
            "slack-token",
            "xoxb-123456789012-123456789012-AbCdEfGhIjKlMnOp".to_owned(),
        ),
        (
            "stripe-key",
            token("sk_live_", "4eC39HqLyjWDarjtT1zdp7dc", 24),
        ),
        (
            "jwt",
            format!(
                "{}.{}.{}",
                token("eyJ", "hbGciOiJIUzI1NiIsInR5cCI6", 20),
                token("eyJ", "zdWIiOiIxMjM0NTY3ODkw", 20),
                token("", "SflKxwRJSMeKKF2QT4fwpM", 30)
            ),
        ),
        (
            "generic-secret",
            "config: api_key=\"Zx8q-2LmPv9rT4sWk7Yb\"".to_owned(),
        ),
    ];
    for (rule, text) in cases {
        assert_eq!(rules_in(&text), [rule], "{text}");
    }
}

#[test]
fn ordinary_text_has_no_secret() {
    for text in [
        "The quick brown fox jumps over the lazy dog.",
        "token = \"aaaaaaaaaaaaaaaaaaaaaaaa\"", // too little entropy
        "password: hunter2",                    // too short
        "Use the API key from your dashboard.",
        "file modified 2026-11-30 12:34:56, size 1234567890123",
        "see https://example.com/docs?page=2",
        "{\"type\":\"object\",\"properties\":{\"token\":{\"type\":\"string\"}}}",
        // AWS's documentation examples.
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"",
    ] {
        assert_eq!(rules_in(text), Vec::<&str>::new(), "{text}");
    }
}

#[test]
fn personal_data_with_validators() {
    assert_eq!(rules_in("write to jane.doe@example.org today"), ["email"]);
    assert_eq!(rules_in("call +44 20 7946 0958 now"), ["phone"]);
    assert_eq!(rules_in("IBAN GB82 WEST 1234 5698 7654 32"), ["iban"]);
    assert_eq!(
        rules_in("IBAN GB82 WEST 1234 5698 7654 33"),
        Vec::<&str>::new()
    );
    assert_eq!(rules_in("card 4111 1111 1111 1111 exp"), ["card-number"]);
    assert_eq!(rules_in("card 4111 1111 1111 1112 exp"), Vec::<&str>::new());
    assert_eq!(rules_in("order 1234567890123"), Vec::<&str>::new());
}

#[test]
fn rules_switched_off_or_allowed_do_not_match() {
    let (s, p) = policies("[content.secrets.rules.jwt]\naction = \"off\"\n");
    let jwt = format!(
        "{}.{}.{}",
        token("eyJ", "hbGciOiJ", 12),
        token("eyJ", "zdWIiOi", 12),
        token("", "Sfl", 20)
    );
    assert!(find(&s, &p, &jwt).is_empty());
    // Allowlists are the caller's to apply per match (value, tool, tenant).
    let (s, _) = policies(
        "[content.secrets.rules.aws-access-key]\nallow_values = [\"AKIAIOSFODNN7EXAMPLE\"]\n",
    );
    assert_eq!(
        s.action_for("aws-access-key", "AKIAIOSFODNN7EXAMPLE", None, "t"),
        policies::DataAction::Off
    );
}

#[test]
fn redaction_keeps_the_rest() {
    let (s, p) = policies("");
    let text = format!("a {} b {} c", token("ghp_", "x1", 36), "jane@example.org");
    let found = find(&s, &p, &text);
    let refs: Vec<&Match> = found.iter().collect();
    assert_eq!(
        redact(&text, &refs),
        "a [REDACTED:github-token] b [REDACTED:email] c"
    );
    // The secret of an assignment is its value only.
    let text = "aws_key = 'abcdefghij0123456789ABCDEFGHIJ0123456789'";
    let found = find(&s, &p, text);
    let refs: Vec<&Match> = found.iter().collect();
    assert_eq!(redact(text, &refs), "aws_key = '[REDACTED:aws-secret-key]'");
}
