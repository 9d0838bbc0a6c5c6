//! Maps the caller to a tenant by API key (`Authorization: Bearer <key>`).
//!
//! Keys are compared by SHA-256 hash, so the policy file never holds them.
//! A presented but unknown key is refused rather than downgraded to the
//! anonymous tenant.

use crate::exchange::Exchange;
use crate::header_values::{single, Single};
use crate::rejection::{Decision, Rejection, RejectionKind as K};
use crate::Filter;

pub struct AuthFilter;

impl Filter for AuthFilter {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        let auth = &ex.policy.auth;
        let tenant = match single(ex.headers, "authorization") {
            Single::Absent => auth.anonymous_tenant.clone(),
            Single::Repeated => None,
            Single::One(v) => bearer_token(v)
                .and_then(|key| auth.tenant_for_key(key))
                .cloned(),
        };
        match tenant {
            Some(t) => {
                ex.tenant = Some(t);
                Decision::Continue
            }
            None => Rejection::new(K::Unauthenticated, "missing or unknown API key").into(),
        }
    }
}

fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at(value.iter().position(|b| *b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{headers, policy, policy_with};

    const FOO_HASH: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    fn tenant(p: &policies::Policy, h: &[(&str, &str)]) -> Option<String> {
        let h = headers(h);
        let mut ex = Exchange::new(p, "POST", "/mcp", &h, b"");
        match AuthFilter.check(&mut ex) {
            Decision::Continue => ex.tenant.map(|t| t.to_string()),
            Decision::Reject(r) => {
                assert_eq!(r.kind, K::Unauthenticated);
                None
            }
        }
    }

    #[test]
    fn keys_select_tenants() {
        let p = policy_with(&format!("[auth]\nanonymous_tenant = \"public\"\n[tenants.acme]\napi_keys_sha256 = [\"{FOO_HASH}\"]\n"));
        assert_eq!(
            tenant(&p, &[("authorization", "Bearer foo")]).as_deref(),
            Some("acme")
        );
        assert_eq!(
            tenant(&p, &[("authorization", "bearer  foo ")]).as_deref(),
            Some("acme")
        );
        assert_eq!(tenant(&p, &[]).as_deref(), Some("public"));
        assert_eq!(tenant(&p, &[("authorization", "Bearer bar")]), None);
        assert_eq!(tenant(&p, &[("authorization", "Basic Zm9v")]), None);
    }

    #[test]
    fn no_anonymous_tenant_requires_a_key() {
        let p = policy_with(&format!(
            "[tenants.acme]\napi_keys_sha256 = [\"{FOO_HASH}\"]\n"
        ));
        assert_eq!(tenant(&p, &[]), None);
        assert_eq!(tenant(&policy(), &[]).as_deref(), Some("anonymous"));
    }
}
