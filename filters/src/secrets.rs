//! Secrets and personal data in message strings (`[content.secrets]`,
//! `[content.pii]`): named rules, each a pattern with the keywords any
//! match must contain.
//!
//! Most secret patterns are those of Yelp's detect-secrets 1.5.0
//! (Apache-2.0; `detect_secrets/plugins/*.py`, named in each rule's
//! `source`): a maintained, licensed rule set whose patterns are anchored
//! on each provider's documented token prefixes, so they rarely fire on
//! ordinary text. Where it has none (GCP API keys, the tightened JWT, the
//! entropy-gated generic assignment, the personal-data rules) the pattern
//! is mcpgate's own and says so.
//!
//! Fast in the common case: one Aho-Corasick pass over the lower-cased
//! text looks for every secret rule's keywords at once, and only rules
//! whose keyword occurs run their regex; a personal-data rule runs only on
//! its cheap precondition (an `@`, a `+`, enough digits). Validators cut false positives: the Luhn check for card
//! numbers, mod-97 for IBANs, Shannon entropy for generic secrets.

use std::ops::Range;
use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use policies::DataGuardPolicy;
use regex::Regex;

/// Which policy section a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    Secrets,
    Pii,
}

impl Guard {
    pub fn name(self) -> &'static str {
        match self {
            Self::Secrets => "secrets",
            Self::Pii => "pii",
        }
    }
}

/// What confirms a regex match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    None,
    Luhn,
    Iban,
    /// Shannon entropy of the secret at least the policy's floor.
    Entropy,
    /// 8 to 15 digits in all.
    PhoneDigits,
}

struct Rule {
    name: &'static str,
    guard: Guard,
    regex: Regex,
    /// Capture group holding the secret (0: the whole match).
    group: usize,
    /// Any match contains one of these (ASCII case-insensitive). Secret
    /// rules only: a personal-data rule runs on a cheap precondition (an
    /// `@`, a `+`, enough digits).
    keywords: &'static [&'static str],
    check: Check,
    /// Where the pattern comes from.
    #[allow(dead_code)]
    source: &'static str,
}

/// One match of one rule: the byte range to redact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub rule: &'static str,
    pub guard: Guard,
    pub range: Range<usize>,
}

struct Rules {
    rules: Vec<Rule>,
    /// Keyword patterns, and the rule each belongs to.
    prefilter: AhoCorasick,
    keyword_rule: Vec<usize>,
}

fn rules() -> &'static Rules {
    static R: OnceLock<Rules> = OnceLock::new();
    R.get_or_init(|| {
        let rule = |name, guard, pattern: &str, group, keywords, check, source| Rule {
            name,
            guard,
            regex: Regex::new(pattern).expect("a built-in pattern compiles"),
            group,
            keywords,
            check,
            source,
        };
        use Check as C;
        use Guard::{Pii as P, Secrets as S};
        let rules = vec![
            rule("private-key", S,
                 r"(?s)-----BEGIN[ A-Z0-9_-]{0,40}PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[ A-Z0-9_-]{0,40}PRIVATE KEY(?: BLOCK)?-----|\z)|PuTTY-User-Key-File-[23]:[^\n]*",
                 0, &["PRIVATE KEY", "PuTTY-User-Key-File"], C::None, "detect-secrets 1.5.0 plugins/private_key.py (the whole block)"),
            rule("aws-access-key", S, r"\b(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}\b",
                 0, &["A3T", "ABIA", "ACCA", "AKIA", "ASIA"], C::None, "detect-secrets 1.5.0 plugins/aws.py"),
            rule("aws-secret-key", S,
                 r#"(?i)aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?['"]([0-9a-zA-Z/+]{40})['"]"#,
                 1, &["aws"], C::None, "detect-secrets 1.5.0 plugins/aws.py"),
            rule("gcp-api-key", S, r"\bAIza[0-9A-Za-z_-]{35}\b",
                 0, &["AIza"], C::None, "mcpgate (Google API key format: AIza + 35)"),
            rule("azure-storage-key", S, r"AccountKey=([a-zA-Z0-9+/=]{88})",
                 1, &["AccountKey"], C::None, "detect-secrets 1.5.0 plugins/azure_storage_key.py"),
            rule("github-token", S, r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}\b|\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
                 0, &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"], C::None,
                 "detect-secrets 1.5.0 plugins/github_token.py; github_pat_ added"),
            rule("gitlab-token", S,
                 r"\b(?:glpat|gldt|glft|glsoat|glrt)-[A-Za-z0-9_-]{20,50}\b|\bGR1348941[A-Za-z0-9_-]{20,50}\b|\bglcbt-(?:[0-9a-fA-F]{2}_)?[A-Za-z0-9_-]{20,50}\b|\bglimt-[A-Za-z0-9_-]{25}\b|\bglptt-[A-Za-z0-9_-]{40}\b|\bglagent-[A-Za-z0-9_-]{50,1024}\b|\bgloas-[A-Za-z0-9_-]{64}\b",
                 0, &["glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "GR1348941", "glcbt-", "glimt-", "glptt-", "glagent-", "gloas-"],
                 C::None, "detect-secrets 1.5.0 plugins/gitlab_token.py"),
            rule("slack-token", S, r"(?i)\bxox(?:a|b|p|o|s|r)-(?:\d+-)+[a-z0-9]+",
                 0, &["xox"], C::None, "detect-secrets 1.5.0 plugins/slack.py"),
            rule("slack-webhook", S, r"(?i)https://hooks\.slack\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+",
                 0, &["hooks.slack.com"], C::None, "detect-secrets 1.5.0 plugins/slack.py"),
            rule("stripe-key", S, r"\b(?:r|s)k_live_[0-9a-zA-Z]{24,99}\b",
                 0, &["k_live_"], C::None, "detect-secrets 1.5.0 plugins/stripe.py"),
            rule("openai-key", S, r"\bsk-[A-Za-z0-9_-]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}",
                 0, &["T3BlbkFJ"], C::None, "detect-secrets 1.5.0 plugins/openai.py"),
            rule("npm-token", S, r"\bnpm_[A-Za-z0-9]{36}\b|//.+/:_authToken=\s*((?:npm_[A-Za-z0-9]+)|[A-Fa-f0-9-]{36})",
                 0, &["npm_", "_authToken"], C::None, "detect-secrets 1.5.0 plugins/npm.py; npm_ + 36 added"),
            rule("pypi-token", S, r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{70,}|pypi-AgENdGVzdC5weXBpLm9yZw[A-Za-z0-9_-]{70,}",
                 0, &["pypi-AgE"], C::None, "detect-secrets 1.5.0 plugins/pypi_token.py"),
            rule("sendgrid-key", S, r"\bSG\.[a-zA-Z0-9_-]{22}\.[a-zA-Z0-9_-]{43}\b",
                 0, &["SG."], C::None, "detect-secrets 1.5.0 plugins/sendgrid.py"),
            rule("jwt", S, r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",
                 0, &["eyJ"], C::None, "detect-secrets 1.5.0 plugins/jwt.py, tightened: a JSON header and payload and a signature"),
            rule("generic-secret", S,
                 r#"(?i)\b(?:api[_-]?key|apikey|secret|client[_-]?secret|access[_-]?key|auth[_-]?token|access[_-]?token|token|passw(?:or)?d|pwd)["']?\s*[:=]\s*["']?([A-Za-z0-9/+_.=~-]{16,200})"#,
                 1, &["key", "secret", "token", "passw", "pwd"], C::Entropy,
                 "mcpgate (detect-secrets' keyword idea, gated by entropy)"),
            rule("email", P, r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b",
                 0, &[], C::None, "mcpgate (runs when the text has an @)"),
            rule("phone", P, r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}\b",
                 0, &[], C::PhoneDigits, "mcpgate (international form only; runs when the text has a +)"),
            rule("iban", P, r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
                 0, &[], C::Iban, "mcpgate (ISO 13616, mod-97 checked)"),
            rule("card-number", P, r"\b\d(?:[ -]?\d){12,18}\b",
                 0, &[], C::Luhn, "mcpgate (13-19 digits, Luhn checked)"),
        ];
        let mut patterns = Vec::new();
        let mut keyword_rule = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            for k in r.keywords {
                patterns.push(k.to_ascii_lowercase());
                keyword_rule.push(i);
            }
        }
        // Keywords are searched in the lower-cased text, leftmost-first:
        // case-sensitive and non-overlapping, the searcher can use its SIMD
        // prefilter (Teddy). A case-insensitive or overlapping automaton
        // scanned 4 KB ten times slower. A keyword inside a longer one
        // (`key` in `accountkey`) is then not seen on its own: the longer
        // one's rule covers that text.
        let prefilter = AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostFirst)
            .build(&patterns)
            .expect("keywords build an automaton");
        Rules {
            rules,
            prefilter,
            keyword_rule,
        }
    })
}

/// The names of every rule of `guard` (checked against the policy's list).
pub fn rule_names(guard: Guard) -> Vec<&'static str> {
    rules()
        .rules
        .iter()
        .filter(|r| r.guard == guard)
        .map(|r| r.name)
        .collect()
}

/// Every match in `text` of the rules `secrets` and `pii` check, sorted,
/// overlaps merged (the earliest, then the longest, wins).
pub fn find(secrets: &DataGuardPolicy, pii: &DataGuardPolicy, text: &str) -> Vec<Match> {
    let r = rules();
    let checked = |rule: &Rule| match rule.guard {
        Guard::Secrets => secrets.checks(rule.name),
        Guard::Pii => pii.checks(rule.name),
    };
    let mut candidate = vec![false; r.rules.len()];
    if secrets.enabled {
        let lower = text.to_ascii_lowercase();
        for m in r.prefilter.find_iter(&lower) {
            candidate[r.keyword_rule[m.pattern().as_usize()]] = true;
        }
    }
    // The personal-data rules' preconditions: an `@`, a `+`, digits.
    let (digits, at, plus) = if pii.enabled {
        (
            text.bytes().filter(u8::is_ascii_digit).count(),
            text.contains('@'),
            text.contains('+'),
        )
    } else {
        (0, false, false)
    };
    let mut out: Vec<Match> = Vec::new();
    for (i, rule) in r.rules.iter().enumerate() {
        let wanted = match rule.guard {
            Guard::Secrets => candidate[i],
            Guard::Pii => match rule.check {
                Check::Iban => digits >= 4,
                Check::Luhn => digits >= 13,
                Check::PhoneDigits => plus && digits >= 8,
                _ => at,
            },
        };
        if !wanted || !checked(rule) {
            continue;
        }
        for caps in rule.regex.captures_iter(text) {
            let Some(m) = caps.get(rule.group).or_else(|| caps.get(0)) else {
                continue;
            };
            let value = m.as_str();
            // AWS's documentation example keys (AKIAIOSFODNN7EXAMPLE and
            // its secret) are quoted in every guide: not secrets.
            if rule.name.starts_with("aws-") && value.ends_with("EXAMPLE")
                || rule.name == "aws-secret-key" && value.ends_with("EXAMPLEKEY")
            {
                continue;
            }
            let ok = match rule.check {
                Check::None => true,
                Check::Luhn => luhn(value),
                Check::Iban => iban(value),
                Check::Entropy => entropy(value) >= secrets.min_entropy,
                Check::PhoneDigits => {
                    (8..=15).contains(&value.bytes().filter(u8::is_ascii_digit).count())
                }
            };
            if ok {
                out.push(Match {
                    rule: rule.name,
                    guard: rule.guard,
                    range: m.range(),
                });
            }
        }
    }
    out.sort_by(|a, b| {
        a.range
            .start
            .cmp(&b.range.start)
            .then(b.range.end.cmp(&a.range.end))
    });
    let mut merged: Vec<Match> = Vec::new();
    for m in out {
        match merged.last() {
            Some(last) if m.range.start < last.range.end => {}
            _ => merged.push(m),
        }
    }
    merged
}

/// `text` with each match replaced by `[REDACTED:rule]`.
pub fn redact(text: &str, matches: &[&Match]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for m in matches {
        if m.range.start < from {
            continue;
        }
        out.push_str(&text[from..m.range.start]);
        out.push_str("[REDACTED:");
        out.push_str(m.rule);
        out.push(']');
        from = m.range.end;
    }
    out.push_str(&text[from..]);
    out
}

/// The Luhn checksum of the digits of `s`.
fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) || digits.iter().all(|d| *d == digits[0]) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The ISO 13616 check of an IBAN (spaces ignored): mod 97 == 1.
fn iban(s: &str) -> bool {
    let compact: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rotated = compact[4..].iter().chain(&compact[..4]);
    let mut rem: u32 = 0;
    for c in rotated {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Shannon entropy of `s`, in bits per character.
fn entropy(s: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut n = 0usize;
    for c in s.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests;
