use super::*;
use crate::envelope::EnvelopeFilter;
use crate::era::EraFilter;
use crate::message::RequestId;
use crate::testutil::{headers, policy, policy_with};

struct Fake {
    state: SessionState,
    in_flight: Vec<RequestId>,
}

impl SessionView for Fake {
    fn state(&self) -> SessionState {
        self.state
    }
    fn negotiated_version(&self) -> &str {
        "2025-11-25"
    }
    fn is_in_flight(&self, id: &RequestId) -> bool {
        self.in_flight.contains(id)
    }
}

fn run(method: &str, h: &[(&str, &str)], session: SessionLookup<'_>, body: &str) -> Result<(), K> {
    run_with(&policy(), method, h, session, body)
}

fn run_with(
    p: &policies::Policy,
    method: &str,
    h: &[(&str, &str)],
    session: SessionLookup<'_>,
    body: &str,
) -> Result<(), K> {
    let h = headers(h);
    let mut ex = Exchange::new(p, method, "/mcp", &h, body.as_bytes());
    ex.session = session;
    for f in [&EnvelopeFilter as &dyn Filter, &EraFilter, &InitGateFilter] {
        if let Decision::Reject(r) = f.check(&mut ex) {
            return Err(r.kind);
        }
    }
    Ok(())
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const PING: &str = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const ANSWER: &str = r#"{"jsonrpc":"2.0","id":"s1","result":{}}"#;

#[test]
fn before_a_session_only_initialize_and_ping() {
    assert_eq!(run("POST", &[], SessionLookup::NoneGiven, INIT), Ok(()));
    assert_eq!(run("POST", &[], SessionLookup::NoneGiven, PING), Ok(()));
    assert_eq!(
        run("POST", &[], SessionLookup::NoneGiven, LIST),
        Err(K::SessionRequired)
    );
    assert_eq!(
        run("POST", &[], SessionLookup::NoneGiven, INITIALIZED),
        Err(K::SessionRequired)
    );
    assert_eq!(
        run("GET", &[], SessionLookup::NoneGiven, ""),
        Err(K::SessionRequired)
    );
    let old = INIT.replace("2025-11-25", "2023-01-01");
    assert_eq!(
        run("POST", &[], SessionLookup::NoneGiven, &old),
        Err(K::UnsupportedLegacyVersion)
    );
}

#[test]
fn unknown_session_is_404() {
    assert_eq!(
        run("POST", &[], SessionLookup::Unknown, LIST),
        Err(K::SessionNotFound)
    );
    assert_eq!(
        run("DELETE", &[], SessionLookup::Unknown, ""),
        Err(K::SessionNotFound)
    );
}

#[test]
fn between_response_and_initialized() {
    let s = Fake {
        state: SessionState::AwaitingInitialized,
        in_flight: vec![],
    };
    assert_eq!(
        run("POST", &[], SessionLookup::Found(&s), LIST),
        Err(K::NotInitialized)
    );
    assert_eq!(run("POST", &[], SessionLookup::Found(&s), PING), Ok(()));
    assert_eq!(
        run("POST", &[], SessionLookup::Found(&s), INITIALIZED),
        Ok(())
    );
    assert_eq!(run("POST", &[], SessionLookup::Found(&s), ANSWER), Ok(()));
}

#[test]
fn ready_session_rules() {
    let s = Fake {
        state: SessionState::Ready,
        in_flight: vec![RequestId::Number(1.into())],
    };
    assert_eq!(
        run("POST", &[], SessionLookup::Found(&s), INIT),
        Err(K::AlreadyInitialized)
    );
    assert_eq!(
        run("POST", &[], SessionLookup::Found(&s), LIST),
        Err(K::DuplicateRequestId)
    );
    assert_eq!(run("POST", &[], SessionLookup::Found(&s), PING), Ok(()));
    let h = [("mcp-protocol-version", "2025-11-25")];
    assert_eq!(run("GET", &h, SessionLookup::Found(&s), ""), Ok(()));
}

#[test]
fn default_header_mode_accepts_older_supported_versions() {
    let s = Fake {
        state: SessionState::Ready,
        in_flight: vec![],
    };
    // The default is `allowlisted`: the spec refuses only invalid or
    // unsupported versions.
    for older in ["2025-06-18", "2025-03-26"] {
        let h = [("mcp-protocol-version", older)];
        assert_eq!(
            run("POST", &h, SessionLookup::Found(&s), PING),
            Ok(()),
            "{older}"
        );
    }
    let unknown = [("mcp-protocol-version", "2024-01-01")];
    assert_eq!(
        run("POST", &unknown, SessionLookup::Found(&s), PING),
        Err(K::ProtocolVersionMismatch)
    );
}

#[test]
fn negotiated_header_mode_accepts_only_the_negotiated_version() {
    let p = policy_with("[protocol]\nsession_version_header = \"negotiated\"\n");
    let s = Fake {
        state: SessionState::Ready,
        in_flight: vec![],
    };
    let older = [("mcp-protocol-version", "2025-03-26")];
    assert_eq!(
        run_with(&p, "POST", &older, SessionLookup::Found(&s), PING),
        Err(K::ProtocolVersionMismatch)
    );
    let same = [("mcp-protocol-version", "2025-11-25")];
    assert_eq!(
        run_with(&p, "POST", &same, SessionLookup::Found(&s), PING),
        Ok(())
    );
}

// === rule names and locations (error.data) ===

fn refusal(method: &str, h: &[(&str, &str)], session: SessionLookup<'_>, body: &str) -> Rejection {
    let p = policy();
    let h = headers(h);
    let mut ex = Exchange::new(&p, method, "/mcp", &h, body.as_bytes());
    ex.session = session;
    for f in [&EnvelopeFilter as &dyn Filter, &EraFilter, &InitGateFilter] {
        if let Decision::Reject(r) = f.check(&mut ex) {
            return r;
        }
    }
    panic!("accepted {body}");
}

fn rule_at(r: &Rejection) -> (&'static str, &str) {
    (r.rule, r.at().unwrap_or_default())
}

#[test]
fn rejections_name_rule_and_place() {
    let none = || SessionLookup::NoneGiven;
    assert_eq!(
        rule_at(&refusal("POST", &[], none(), LIST)),
        ("request-before-session", "header:mcp-session-id")
    );
    assert_eq!(
        rule_at(&refusal("GET", &[], none(), "")),
        ("missing-session-id", "header:mcp-session-id")
    );
    assert_eq!(
        rule_at(&refusal("POST", &[], SessionLookup::Unknown, LIST)),
        ("unknown-session", "header:mcp-session-id")
    );
    let no_version = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#;
    assert_eq!(
        rule_at(&refusal("POST", &[], none(), no_version)),
        ("missing-protocol-version", "params.protocolVersion")
    );
    let awaiting = Fake {
        state: SessionState::AwaitingInitialized,
        in_flight: vec![],
    };
    assert_eq!(
        rule_at(&refusal("POST", &[], SessionLookup::Found(&awaiting), LIST)),
        ("not-initialized", "method")
    );
    let ready = Fake {
        state: SessionState::Ready,
        in_flight: vec![RequestId::Number(1.into())],
    };
    assert_eq!(
        rule_at(&refusal("POST", &[], SessionLookup::Found(&ready), INIT)),
        ("already-initialized", "method")
    );
    assert_eq!(
        rule_at(&refusal("POST", &[], SessionLookup::Found(&ready), LIST)),
        ("request-id-in-flight", "id")
    );
    let unlisted = [("mcp-protocol-version", "2024-01-01")];
    assert_eq!(
        rule_at(&refusal(
            "POST",
            &unlisted,
            SessionLookup::Found(&ready),
            PING
        )),
        (
            "protocol-version-not-negotiated",
            "header:mcp-protocol-version"
        )
    );
}

#[test]
fn unsupported_legacy_version_echoes_only_a_version_shaped_request() {
    let dated = INIT.replace("2025-11-25", "1999-12-31");
    let r = refusal("POST", &[], SessionLookup::NoneGiven, &dated);
    let v: Value = serde_json::from_slice(&r.json_body()).unwrap();
    assert_eq!(v["error"]["data"]["requested"], "1999-12-31", "{v}");
    let odd = INIT.replace("2025-11-25", "1999-12-31 <x7q>");
    let r = refusal("POST", &[], SessionLookup::NoneGiven, &odd);
    assert_eq!(
        rule_at(&r),
        ("unsupported-protocol-version", "params.protocolVersion")
    );
    let v: Value = serde_json::from_slice(&r.json_body()).unwrap();
    assert!(v["error"]["data"]["supported"].is_array(), "{v}");
    assert!(!v.to_string().contains("x7q"), "{v}");
}
