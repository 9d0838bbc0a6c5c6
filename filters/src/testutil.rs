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

/// A token verifier that knows a fixed set of tokens (`token` → sub, scopes).
pub struct FixedTokens(pub Vec<(&'static str, &'static str, Vec<&'static str>)>);

impl crate::exchange::TokenVerifier for FixedTokens {
    fn verify(
        &self,
        token: &str,
    ) -> Result<std::sync::Arc<crate::jwt::VerifiedToken>, crate::jwt::JwtError> {
        let (_, sub, scopes) = self.0.iter().find(|(t, _, _)| *t == token).ok_or(
            if token.matches('.').count() == 2 {
                crate::jwt::JwtError::BadSignature
            } else {
                crate::jwt::JwtError::Malformed("not three parts")
            },
        )?;
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), serde_json::json!(sub));
        claims.insert("org".into(), serde_json::json!("acme"));
        Ok(std::sync::Arc::new(crate::jwt::VerifiedToken {
            subject: sub.to_string(),
            issuer: "https://issuer.test".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_at: u64::MAX,
            claims,
        }))
    }
}

/// `[auth.jwt]` with a key file that is never read by the filters.
pub const JWT_AUTH: &str = "[auth.jwt]\nissuer = \"https://issuer.test\"\naudiences = [\"https://mcp.test/mcp\"]\njwks_file = \"/nonexistent/jwks.json\"\n";
