//! Maps the caller to a tenant: a JWT access token (`[auth.jwt]`), an API
//! key, or a verified client certificate (mTLS), in that order of precedence
//! (an `Authorization` header decides when present).
//!
//! - Tokens are verified by the proxy's [`TokenVerifier`] (keys, clock,
//!   cache); the tenant comes from `tenant_claim` (which must name a
//!   configured tenant) or the first `jwt_subjects` glob matching `sub`.
//! - API keys are compared by SHA-256 hash, so the policy file never holds
//!   them. A presented but unknown key or token is refused rather than
//!   downgraded to the anonymous tenant.
//! - A tenant may require a method (`auth_methods`).
//! - A token in the query string is refused (OAuth 2.1 §5.1.1): query
//!   strings end up in logs.

use crate::exchange::{Exchange, Identity};
use crate::header_values::{single, Single};
use crate::rejection::{Decision, Rejection, RejectionKind as K};
use crate::Filter;
use policies::{AuthMethod, TenantName};

pub struct AuthFilter;

/// Query parameters that carry a token (RFC 6750 §2.3, and the API key
/// spellings people reach for).
const TOKEN_PARAMS: &[&str] = &["access_token", "token", "api_key", "apikey", "key"];

impl Filter for AuthFilter {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        if token_in_query(ex.query) {
            return Rejection::new(K::Unauthenticated, "credential in the query string")
                .with_rule("token-in-query")
                .with_at("query")
                .into();
        }
        match identify(ex) {
            Ok((tenant, identity)) => {
                ex.tenant = Some(tenant);
                ex.identity = Some(identity);
                Decision::Continue
            }
            Err((rule, detail)) => Rejection::new(K::Unauthenticated, detail)
                .with_rule(rule)
                .with_at(if rule == "client-certificate-not-mapped" {
                    "tls"
                } else {
                    "header:authorization"
                })
                .into(),
        }
    }
}

type Refusal = (&'static str, String);

fn identify(ex: &Exchange<'_>) -> Result<(TenantName, Identity), Refusal> {
    let auth = &ex.policy.auth;
    let (tenant, identity) = match single(ex.headers, "authorization") {
        Single::Repeated => return Err(("repeated-header", "two Authorization headers".into())),
        Single::Absent => match ex.client_cert {
            Some(ids) => {
                // A certificate no tenant claims identifies its holder (the
                // subject its sessions are bound to) within the anonymous
                // tenant, when there is one: mTLS as transport security.
                let tenant = auth
                    .tenant_for_client_cert(ids)
                    .or_else(|| auth.anonymous_tenant.clone())
                    .ok_or_else(|| {
                        (
                            "client-certificate-not-mapped",
                            "no tenant's client_cert matches the certificate".to_string(),
                        )
                    })?;
                let identity = Identity {
                    method: AuthMethod::ClientCert,
                    subject: ids.first().cloned(),
                    scopes: Vec::new(),
                };
                (tenant, identity)
            }
            None => {
                let missing = if auth.jwt.is_some() {
                    "missing-token"
                } else {
                    "missing-api-key"
                };
                let tenant = auth
                    .anonymous_tenant
                    .clone()
                    .ok_or_else(|| (missing, "no credential".to_string()))?;
                return Ok((
                    tenant,
                    Identity {
                        method: AuthMethod::ApiKey,
                        subject: None,
                        scopes: Vec::new(),
                    },
                ));
            }
        },
        Single::One(v) => {
            let credential = bearer_token(v)
                .ok_or_else(|| ("not-a-bearer-token", "not a Bearer credential".to_string()))?;
            // A known API key first (a hash lookup); anything else is a
            // token when tokens are accepted, so a malformed one is refused
            // for what it is.
            match (auth.tenant_for_key(credential), ex.tokens) {
                (Some(tenant), _) => (
                    tenant.clone(),
                    Identity {
                        method: AuthMethod::ApiKey,
                        subject: None,
                        scopes: Vec::new(),
                    },
                ),
                (None, Some(tokens)) => by_token(ex, tokens, credential)?,
                (None, None) => return Err(("unknown-api-key", "unknown API key".to_string())),
            }
        }
    };
    let allowed = auth
        .tenants
        .iter()
        .find(|t| t.name == tenant)
        .is_none_or(|t| t.accepts(identity.method));
    if !allowed {
        return Err((
            "auth-method-not-allowed",
            format!("tenant {tenant} does not accept {}", identity.method.name()),
        ));
    }
    Ok((tenant, identity))
}

fn by_token(
    ex: &Exchange<'_>,
    tokens: &dyn crate::exchange::TokenVerifier,
    token: &[u8],
) -> Result<(TenantName, Identity), Refusal> {
    let auth = &ex.policy.auth;
    let token =
        std::str::from_utf8(token).map_err(|_| ("malformed", "token is not ASCII".to_string()))?;
    let verified = tokens
        .verify(token)
        .map_err(|e| (e.rule(), format!("token refused: {e}")))?;
    let tenant = match auth.jwt.as_ref().and_then(|j| j.tenant_claim.as_deref()) {
        Some(claim) => {
            let named = verified.claim_str(claim).ok_or((
                "missing-claim",
                format!("token has no string claim {claim}"),
            ))?;
            auth.tenants
                .iter()
                .find(|t| &*t.name == named)
                .map(|t| t.name.clone())
                .ok_or(("unknown-tenant", format!("claim {claim} names no tenant")))?
        }
        None => auth.tenant_for_subject(&verified.subject).ok_or((
            "subject-not-mapped",
            "no tenant's jwt_subjects matches the token's sub".to_string(),
        ))?,
    };
    Ok((
        tenant,
        Identity {
            method: AuthMethod::Jwt,
            subject: Some(verified.subject.clone()),
            scopes: verified.scopes.clone(),
        },
    ))
}

fn token_in_query(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        TOKEN_PARAMS.iter().any(|p| name.eq_ignore_ascii_case(p))
    })
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
    use crate::exchange::Identity;
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

    fn with_tokens(
        p: &policies::Policy,
        h: &[(&str, &str)],
        query: &str,
        cert: Option<&[String]>,
    ) -> Result<(String, Identity), &'static str> {
        let tokens = crate::testutil::FixedTokens(vec![
            ("a.b.c", "alice", vec!["mcp:read"]),
            ("x.y.z", "mallory", vec![]),
        ]);
        let h = headers(h);
        let mut ex = Exchange::new(p, "POST", "/mcp", &h, b"");
        ex.tokens = Some(&tokens);
        ex.query = query;
        ex.client_cert = cert;
        match AuthFilter.check(&mut ex) {
            Decision::Continue => Ok((ex.tenant.unwrap().to_string(), ex.identity.unwrap())),
            Decision::Reject(r) => {
                assert_eq!(r.kind.wire().status, 401);
                Err(r.rule)
            }
        }
    }

    fn jwt_policy() -> policies::Policy {
        policy_with(&format!(
            "{}[tenants.acme]\njwt_subjects = [\"alice\"]\napi_keys_sha256 = [\"{FOO_HASH}\"]\n\
             [tenants.keys_only]\napi_keys_sha256 = [\"{}\"]\nauth_methods = [\"api_key\"]\n",
            crate::testutil::JWT_AUTH,
            "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"
        ))
    }

    #[test]
    fn tokens_map_to_tenants_by_subject_with_their_scopes() {
        let p = jwt_policy();
        let (tenant, id) = with_tokens(&p, &[("authorization", "Bearer a.b.c")], "", None).unwrap();
        assert_eq!(tenant, "acme");
        assert_eq!(id.method, policies::AuthMethod::Jwt);
        assert_eq!(id.subject.as_deref(), Some("alice"));
        assert_eq!(id.scopes, ["mcp:read"]);
        assert_eq!(
            with_tokens(&p, &[("authorization", "Bearer x.y.z")], "", None).unwrap_err(),
            "subject-not-mapped"
        );
        assert_eq!(
            with_tokens(&p, &[("authorization", "Bearer q.q.q")], "", None).unwrap_err(),
            "bad-signature"
        );
        assert_eq!(with_tokens(&p, &[], "", None).unwrap_err(), "missing-token");
        // API keys keep working next to tokens.
        let (tenant, id) = with_tokens(&p, &[("authorization", "Bearer foo")], "", None).unwrap();
        assert_eq!(
            (tenant.as_str(), id.method),
            ("acme", policies::AuthMethod::ApiKey)
        );
    }

    #[test]
    fn a_token_in_the_query_is_refused() {
        let p = jwt_policy();
        for q in ["access_token=a.b.c", "x=1&ACCESS_TOKEN=a", "api_key=foo"] {
            assert_eq!(
                with_tokens(&p, &[("authorization", "Bearer a.b.c")], q, None).unwrap_err(),
                "token-in-query",
                "{q}"
            );
        }
        assert!(with_tokens(&p, &[("authorization", "Bearer a.b.c")], "page=2", None).is_ok());
    }

    #[test]
    fn client_certificates_map_to_tenants() {
        let p = policy_with(
            "[listen.tls]\ncert_file = \"c\"\nkey_file = \"k\"\nclient_auth = \"optional\"\nclient_ca_file = \"ca\"\n\
             [tenants.agents]\nclient_cert = [\"spiffe://example.org/ns/a/*\"]\n",
        );
        let ok = vec![
            "spiffe://example.org/ns/a/sa/b".to_string(),
            "cn:b".to_string(),
        ];
        let (tenant, id) = with_tokens(&p, &[], "", Some(&ok)).unwrap();
        assert_eq!(tenant, "agents");
        assert_eq!(id.method, policies::AuthMethod::ClientCert);
        assert_eq!(
            id.subject.as_deref(),
            Some("spiffe://example.org/ns/a/sa/b")
        );
        let other = vec!["spiffe://example.org/ns/b/sa/c".to_string()];
        assert_eq!(
            with_tokens(&p, &[], "", Some(&other)).unwrap_err(),
            "client-certificate-not-mapped"
        );
        // With an anonymous tenant, an unclaimed certificate lands there,
        // still naming its holder.
        let p = policy_with(
            "[listen.tls]\ncert_file = \"c\"\nkey_file = \"k\"\nclient_auth = \"optional\"\nclient_ca_file = \"ca\"\n\
             [auth]\nanonymous_tenant = \"public\"\n[tenants.agents]\nclient_cert = [\"spiffe://example.org/ns/a/*\"]\n",
        );
        let (tenant, id) = with_tokens(&p, &[], "", Some(&other)).unwrap();
        assert_eq!(tenant, "public");
        assert_eq!(
            id.subject.as_deref(),
            Some("spiffe://example.org/ns/b/sa/c")
        );
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
