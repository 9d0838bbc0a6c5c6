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
            Single::Absent => auth.anonymous_tenant.clone().ok_or("missing-api-key"),
            Single::Repeated => Err("repeated-header"),
            Single::One(v) => match bearer_token(v) {
                None => Err("not-a-bearer-token"),
                Some(key) => auth.tenant_for_key(key).cloned().ok_or("unknown-api-key"),
            },
        };
        match tenant {
            Ok(t) => {
                ex.tenant = Some(t);
                Decision::Continue
            }
            Err(rule) => Rejection::new(K::Unauthenticated, "missing or unknown API key")
                .with_rule(rule)
                .with_at("header:authorization")
                .into(),
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

    fn judged(p: &policies::Policy, h: &[(&str, &str)]) -> Result<String, &'static str> {
        let h = headers(h);
        let mut ex = Exchange::new(p, "POST", "/mcp", &h, b"");
        match AuthFilter.check(&mut ex) {
            Decision::Continue => Ok(ex.tenant.map(|t| t.to_string()).unwrap_or_default()),
            Decision::Reject(r) => {
                assert_eq!(r.kind, K::Unauthenticated);
                assert_eq!(r.at(), Some("header:authorization"));
                Err(r.rule)
            }
        }
    }

    fn tenant(p: &policies::Policy, h: &[(&str, &str)]) -> Option<String> {
        judged(p, h).ok()
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

    #[test]
    fn rules_name_what_was_wrong_with_the_key() {
        let p = policy_with(&format!(
            "[tenants.acme]\napi_keys_sha256 = [\"{FOO_HASH}\"]\n"
        ));
        assert_eq!(judged(&p, &[]), Err("missing-api-key"));
        assert_eq!(
            judged(&p, &[("authorization", "Bearer bar")]),
            Err("unknown-api-key")
        );
        assert_eq!(
            judged(&p, &[("authorization", "Basic Zm9v")]),
            Err("not-a-bearer-token")
        );
        assert_eq!(
            judged(
                &p,
                &[
                    ("authorization", "Bearer foo"),
                    ("authorization", "Bearer foo")
                ]
            ),
            Err("repeated-header")
        );
    }
}
