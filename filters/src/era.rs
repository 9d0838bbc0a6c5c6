//! Tells the stateful (2025-11-25 and older) and stateless (2026-07-28)
//! revisions apart on one endpoint, from the header and the body together.
//!
//! The SDKs disagree at the edges (Python decides on the header, TypeScript on
//! the body), so a request whose header and body claim different eras is
//! refused instead of guessed: otherwise the gateway and the server could
//! apply different rules to the same message.

use crate::exchange::{Era, Exchange};
use crate::header_values::{single, single_str, Single};
use crate::rejection::{Decision, Rejection, RejectionKind as K};
use crate::Filter;

/// `_meta` key carrying the protocol version of a stateless request.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key carrying the client capabilities of a stateless request.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// The first stateless revision; dated versions from it on are "modern".
pub const FIRST_MODERN_VERSION: &str = "2026-07-28";

/// Whether a dated version string belongs to the stateless era.
pub fn is_modern_version(v: &str) -> bool {
    v.len() == 10 && v.as_bytes()[4] == b'-' && v >= FIRST_MODERN_VERSION
}

pub struct EraFilter;

impl Filter for EraFilter {
    fn name(&self) -> &'static str {
        "era"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        match classify(ex) {
            Ok(era) => {
                ex.era = era;
                Decision::Continue
            }
            Err(r) => r.into(),
        }
    }
}

/// What the `MCP-Protocol-Version` header claims.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HeaderClaim {
    Absent,
    /// A stateful version: allowlisted, or dated before the first stateless one.
    Legacy,
    /// Anything else, including versions mcpgate does not know (the modern
    /// filter then answers -32022 or -32020 as the spec says).
    Modern,
}

fn header_claim(ex: &Exchange<'_>) -> HeaderClaim {
    match single_str(ex.headers, "mcp-protocol-version") {
        None => HeaderClaim::Absent,
        Some(v) if ex.policy.protocol.legacy_versions.iter().any(|a| a == v) => HeaderClaim::Legacy,
        Some(v) if policies::is_version_date(v) && v < FIRST_MODERN_VERSION => HeaderClaim::Legacy,
        Some(_) => HeaderClaim::Modern,
    }
}

fn classify(ex: &Exchange<'_>) -> Result<Era, Rejection> {
    let header = header_claim(ex);
    let has_session = single(ex.headers, "mcp-session-id") != Single::Absent;
    if ex.method != "POST" {
        // A session id means a stateful stream or DELETE whatever the header says.
        let modern = header == HeaderClaim::Modern && !has_session;
        return Ok(if modern { Era::Modern } else { Era::Legacy });
    }
    let modern_bodies = ex
        .messages
        .iter()
        .filter(|m| {
            m.meta()
                .is_some_and(|meta| meta.contains_key(META_PROTOCOL_VERSION))
        })
        .count();
    let conflict = |rule: &'static str, at: &'static str, why: &str| {
        Err(Rejection::new(K::EraConflict, why.to_string())
            .with_rule(rule)
            .with_at(at))
    };
    if modern_bodies > 0 {
        if modern_bodies != ex.messages.len() {
            return conflict(
                "batch-mixes-eras",
                "body",
                "batch mixes stateless and stateful messages",
            );
        }
        if has_session {
            return conflict(
                "session-id-on-stateless-request",
                "header:mcp-session-id",
                "stateless request carries Mcp-Session-Id",
            );
        }
        if header == HeaderClaim::Legacy {
            return conflict(
                "legacy-version-header-on-stateless-body",
                "header:mcp-protocol-version",
                "stateless body with a stateful MCP-Protocol-Version header",
            );
        }
        return Ok(Era::Modern);
    }
    if header == HeaderClaim::Modern {
        if has_session {
            return conflict(
                "session-id-with-stateless-version-header",
                "header:mcp-session-id",
                "Mcp-Session-Id with a stateless MCP-Protocol-Version header",
            );
        }
        return Ok(Era::Modern);
    }
    Ok(Era::Legacy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::EnvelopeFilter;
    use crate::testutil::{headers, policy};

    fn judged(h: &[(&str, &str)], body: &str) -> Result<Era, Rejection> {
        let p = policy();
        let h = headers(h);
        let mut ex = Exchange::new(&p, "POST", "/mcp", &h, body.as_bytes());
        assert!(matches!(EnvelopeFilter.check(&mut ex), Decision::Continue));
        match EraFilter.check(&mut ex) {
            Decision::Continue => Ok(ex.era),
            Decision::Reject(r) => Err(r),
        }
    }

    fn era(h: &[(&str, &str)], body: &str) -> Result<Era, K> {
        judged(h, body).map_err(|r| r.kind)
    }

    fn rule_at(h: &[(&str, &str)], body: &str) -> (&'static str, String) {
        let r = judged(h, body).expect_err("refused");
        (r.rule, r.at().unwrap_or_default().to_string())
    }

    const MODERN: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    const LEGACY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}"#;

    #[test]
    fn both_agree() {
        assert_eq!(
            era(&[("mcp-protocol-version", "2026-07-28")], MODERN),
            Ok(Era::Modern)
        );
        assert_eq!(era(&[], MODERN), Ok(Era::Modern));
        assert_eq!(
            era(&[("mcp-protocol-version", "2025-11-25")], LEGACY),
            Ok(Era::Legacy)
        );
        assert_eq!(era(&[], INIT), Ok(Era::Legacy));
        assert_eq!(
            era(&[("mcp-protocol-version", "2099-01-01")], LEGACY),
            Ok(Era::Modern)
        );
    }

    #[test]
    fn disagreement_is_refused() {
        assert_eq!(
            era(&[("mcp-protocol-version", "2025-11-25")], MODERN),
            Err(K::EraConflict)
        );
        assert_eq!(
            era(&[("mcp-protocol-version", "2024-01-01")], MODERN),
            Err(K::EraConflict)
        );
        assert_eq!(
            era(&[("mcp-session-id", "abc")], MODERN),
            Err(K::EraConflict)
        );
        assert_eq!(
            era(
                &[
                    ("mcp-session-id", "abc"),
                    ("mcp-protocol-version", "2026-07-28")
                ],
                LEGACY
            ),
            Err(K::EraConflict)
        );
    }

    #[test]
    fn conflicts_name_the_header_at_fault() {
        assert_eq!(
            rule_at(&[("mcp-protocol-version", "2025-11-25")], MODERN),
            (
                "legacy-version-header-on-stateless-body",
                "header:mcp-protocol-version".into()
            )
        );
        assert_eq!(
            rule_at(&[("mcp-session-id", "abc")], MODERN),
            (
                "session-id-on-stateless-request",
                "header:mcp-session-id".into()
            )
        );
        assert_eq!(
            rule_at(
                &[
                    ("mcp-session-id", "abc"),
                    ("mcp-protocol-version", "2026-07-28")
                ],
                LEGACY
            ),
            (
                "session-id-with-stateless-version-header",
                "header:mcp-session-id".into()
            )
        );
    }
}
