//! Helpers the section tests share: a policy of `[upstream]` plus a snippet,
//! and its errors.

use crate::{parse_policy, Policy, PolicyError};

/// The one upstream every test policy needs.
pub const UP: &str = "[upstream]\nurl = \"http://127.0.0.1:1/mcp\"\n";

/// `[upstream]` + `src`, which must be valid.
pub fn ok(src: &str) -> Policy {
    parse_policy("t.toml", &format!("{UP}{src}")).unwrap_or_else(|e| panic!("{e}"))
}

/// Every error of `[upstream]` + `src`, which must be invalid.
pub fn policy_errors(src: &str) -> Vec<PolicyError> {
    parse_policy("t.toml", &format!("{UP}{src}"))
        .expect_err("policy should be invalid")
        .0
}

/// (key path, line, message) of every error.
pub fn errors(src: &str) -> Vec<(String, usize, String)> {
    policy_errors(src)
        .into_iter()
        .map(|e| (e.key_path, e.line, e.message))
        .collect()
}

/// The one error at `path`: its line and message.
pub fn error_at(src: &str, path: &str) -> (usize, String) {
    let all = errors(src);
    let hits: Vec<_> = all.iter().filter(|(p, _, _)| p == path).collect();
    assert_eq!(hits.len(), 1, "one error at {path}: {all:?}");
    (hits[0].1, hits[0].2.clone())
}
