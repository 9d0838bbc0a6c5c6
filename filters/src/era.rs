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

fn classify(ex: &Exchange<'_>) -> Result<Era, Rejection> {
    let header = single_str(ex.headers, "mcp-protocol-version");
    let header_modern = header.is_some_and(is_modern_version);
    if ex.method != "POST" {
        return Ok(if header_modern {
            Era::Modern
        } else {
            Era::Legacy
        });
    }
    let has_session = single(ex.headers, "mcp-session-id") != Single::Absent;
    let modern_bodies = ex
        .messages
        .iter()
        .filter(|m| {
            m.meta()
                .is_some_and(|meta| meta.contains_key(META_PROTOCOL_VERSION))
        })
        .count();
    let has_initialize = ex.messages.iter().any(|m| m.method() == "initialize");
    let conflict = |why: &str| Err(Rejection::new(K::EraConflict, why.to_string()));
    if modern_bodies > 0 {
        if modern_bodies != ex.messages.len() {
            return conflict("batch mixes stateless and stateful messages");
        }
        if has_initialize {
            return conflict("initialize carries stateless _meta");
        }
        if has_session {
            return conflict("stateless request carries Mcp-Session-Id");
        }
        if header.is_some() && !header_modern {
            return conflict("stateless body with a stateful MCP-Protocol-Version header");
        }
        return Ok(Era::Modern);
    }
    if header_modern {
        if has_initialize {
            return conflict("initialize with a stateless MCP-Protocol-Version header");
        }
        if has_session {
            return conflict("Mcp-Session-Id with a stateless MCP-Protocol-Version header");
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

    fn era(h: &[(&str, &str)], body: &str) -> Result<Era, K> {
        let p = policy();
        let h = headers(h);
        let mut ex = Exchange::new(&p, "POST", "/mcp", &h, body.as_bytes());
        assert!(matches!(EnvelopeFilter.check(&mut ex), Decision::Continue));
        match EraFilter.check(&mut ex) {
            Decision::Continue => Ok(ex.era),
            Decision::Reject(r) => Err(r.kind),
        }
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
            era(&[("mcp-protocol-version", "2026-07-28")], INIT),
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
}
