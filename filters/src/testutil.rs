//! Helpers shared by the filters' unit tests.

use http::{HeaderMap, HeaderName, HeaderValue};
use policies::Policy;

pub fn policy() -> Policy {
    policy_with("")
}

pub fn policy_with(extra: &str) -> Policy {
    let src = format!("[upstream]\nurl = \"http://127.0.0.1:9100/mcp\"\n{extra}");
    policies::parse_policy("test.toml", &src).expect("test policy is valid")
}

pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}
