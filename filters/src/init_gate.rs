//! The legacy (2025-11-25 and older) initialization gate, per session.
//!
//! Before a session exists only `initialize` and `ping` may pass; between the
//! initialize response and `notifications/initialized` only `ping`,
//! notifications and the client's answers to server requests; a second
//! `initialize` is refused; the `MCP-Protocol-Version` header must name the
//! negotiated version. Unknown, ended or foreign sessions look alike: 404.

use policies::SessionVersionHeader;
use serde_json::{json, Value};

use crate::exchange::{Era, Exchange, SessionLookup, SessionState, SessionView};
use crate::header_values::single_str;
use crate::message::{Message, MessageKind};
use crate::rejection::{Decision, Rejection, RejectionKind as K};
use crate::Filter;

pub struct InitGateFilter;

impl Filter for InitGateFilter {
    fn name(&self) -> &'static str {
        "init_gate"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        if ex.era != Era::Legacy {
            return Decision::Continue;
        }
        let result = match ex.session {
            SessionLookup::Unknown => Err(Rejection::new(K::SessionNotFound, "unknown session")
                .with_at("header:mcp-session-id")),
            SessionLookup::NoneGiven => without_session(ex),
            SessionLookup::Found(s) => with_session(ex, s),
        };
        match result {
            Ok(()) => Decision::Continue,
            Err(r) => r.into(),
        }
    }
}

fn without_session(ex: &Exchange<'_>) -> Result<(), Rejection> {
    if ex.method != "POST" {
        return Err(Rejection::new(
            K::SessionRequired,
            format!("{} without a session", ex.method),
        )
        .with_rule("missing-session-id")
        .with_at("header:mcp-session-id"));
    }
    for (i, m) in ex.messages.iter().enumerate() {
        let item = |r: Rejection| if ex.batch { r.in_item(i) } else { r };
        match (m.kind, m.method()) {
            (MessageKind::Request, "initialize") => {
                if ex.batch {
                    return Err(item(
                        Rejection::new(K::InvalidRequest, "initialize inside a batch")
                            .with_rule("initialize-in-batch")
                            .with_at("method"),
                    ));
                }
                check_requested_version(ex, m)?;
            }
            (MessageKind::Request, "ping") => {}
            (_, method) => {
                return Err(item(
                    Rejection::new(
                        K::SessionRequired,
                        format!("{method:?} before a session exists"),
                    )
                    .with_rule("request-before-session")
                    .with_at("header:mcp-session-id"),
                ));
            }
        }
    }
    Ok(())
}

fn check_requested_version(ex: &Exchange<'_>, m: &Message) -> Result<(), Rejection> {
    let allowed = &ex.policy.protocol.legacy_versions;
    let requested = m
        .params()
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str);
    match requested {
        Some(v) if allowed.iter().any(|a| a == v) => Ok(()),
        // The requested version is echoed only when it has a version's shape.
        Some(v) => Err(Rejection::new(
            K::UnsupportedLegacyVersion,
            format!("initialize asks for {v:?}"),
        )
        .with_at("params.protocolVersion")
        .with_data(match crate::modern::echoable_version(v) {
            Some(v) => json!({ "supported": allowed, "requested": v }),
            None => json!({ "supported": allowed }),
        })),
        None => Err(Rejection::new(
            K::InvalidRequest,
            "initialize without params.protocolVersion",
        )
        .with_rule("missing-protocol-version")
        .with_at("params.protocolVersion")),
    }
}

fn with_session(ex: &Exchange<'_>, s: &dyn SessionView) -> Result<(), Rejection> {
    if let Some(v) = single_str(ex.headers, "mcp-protocol-version") {
        let negotiated = s.negotiated_version();
        let accepted = match ex.policy.protocol.session_version_header {
            SessionVersionHeader::Negotiated => v == negotiated,
            SessionVersionHeader::Allowlisted => {
                v <= negotiated && ex.policy.protocol.legacy_versions.iter().any(|a| a == v)
            }
        };
        if !accepted {
            return Err(Rejection::new(
                K::ProtocolVersionMismatch,
                format!(
                    "header {v:?} but session negotiated {:?}",
                    s.negotiated_version()
                ),
            )
            .with_rule("protocol-version-not-negotiated")
            .with_at("header:mcp-protocol-version"));
        }
    }
    for (i, m) in ex.messages.iter().enumerate() {
        let item = |r: Rejection| if ex.batch { r.in_item(i) } else { r };
        match m.kind {
            MessageKind::Request if m.method() == "initialize" => {
                return Err(item(
                    Rejection::new(K::AlreadyInitialized, "second initialize on a session")
                        .with_at("method"),
                ));
            }
            MessageKind::Request => {
                if s.state() == SessionState::AwaitingInitialized && m.method() != "ping" {
                    return Err(item(
                        Rejection::new(
                            K::NotInitialized,
                            format!("{:?} before notifications/initialized", m.method()),
                        )
                        .with_at("method"),
                    ));
                }
                if m.id.as_ref().is_some_and(|id| s.is_in_flight(id)) {
                    return Err(item(
                        Rejection::new(K::DuplicateRequestId, "request id already in flight")
                            .with_at("id"),
                    ));
                }
            }
            MessageKind::Notification | MessageKind::Response => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
