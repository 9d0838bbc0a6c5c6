use super::*;
use crate::exchange::Identity;
use crate::testutil::{headers, policy_with, JWT_AUTH};

fn judge(scopes: &[&str], method: AuthMethod, body: &str) -> Result<(), Rejection> {
    let p = policy_with(&format!(
        "{JWT_AUTH}[auth.scopes]\n\"tools/list\" = [\"mcp:read\"]\n\"tools/call\" = [\"mcp:read\"]\n\
         \"tools/call:delete_*\" = [\"files:write\"]\n\"resources/read:file:///secret/*\" = [\"secret:read\"]\n\
         [tenants.acme]\njwt_subjects = [\"*\"]\n"
    ));
    let h = headers(&[]);
    let mut ex = Exchange::new(&p, "POST", "/mcp", &h, body.as_bytes());
    ex.messages =
        vec![crate::message::Message::from_value(serde_json::from_str(body).unwrap()).unwrap()];
    ex.identity = Some(Identity {
        method,
        subject: Some("alice".into()),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    });
    match ScopeFilter.check(&mut ex) {
        Decision::Continue => Ok(()),
        Decision::Reject(r) => Err(r),
    }
}

const DELETE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_file","arguments":{}}}"#;
const ECHO: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
const SECRET: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///secret/a"}}"#;

#[test]
fn a_token_with_every_scope_passes() {
    assert!(judge(&["mcp:read", "files:write"], AuthMethod::Jwt, DELETE).is_ok());
    assert!(judge(&["mcp:read"], AuthMethod::Jwt, ECHO).is_ok());
}

#[test]
fn a_missing_scope_names_every_scope_the_call_needs() {
    let r = judge(&["mcp:read"], AuthMethod::Jwt, DELETE).unwrap_err();
    assert_eq!(r.kind, K::InsufficientScope);
    assert_eq!(r.kind.wire().status, 403);
    assert_eq!(r.at(), Some("params.name"));
    let v: serde_json::Value = serde_json::from_slice(&r.json_body()).unwrap();
    assert_eq!(
        v["error"]["data"]["scopes"],
        json!(["files:write", "mcp:read"])
    );
    assert!(
        !v.to_string().contains("delete_file"),
        "the tool name is not echoed"
    );
    let r = judge(&[], AuthMethod::Jwt, SECRET).unwrap_err();
    assert_eq!(r.at(), Some("params.uri"));
}

#[test]
fn api_keys_and_certificates_are_not_judged_by_scopes() {
    assert!(judge(&[], AuthMethod::ApiKey, DELETE).is_ok());
    assert!(judge(&[], AuthMethod::ClientCert, DELETE).is_ok());
}
