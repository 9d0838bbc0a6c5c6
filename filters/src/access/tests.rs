use super::*;
use crate::exchange::Identity;
use crate::testutil::{headers, policy_with, JWT_AUTH};
use policies::{AccessKind, AuthMethod, TenantName};
use serde_json::Value;

const POLICY: &str = r#"
[tenants.alpha]
api_keys_sha256 = ["c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c"]
jwt_subjects = ["alpha-*"]
[tenants.beta]
api_keys_sha256 = ["0000000000000000000000000000000000000000000000000000000000000000"]

[access]
default = "deny"

[[access.rules]]
tenants = ["alpha"]
tools = ["get-env"]
action = "deny"

[[access.rules]]
tenants = ["alpha"]
scopes = ["admin"]
tools = ["admin_*"]
action = "allow"

[[access.rules]]
tenants = ["alpha"]
tools = ["*"]
prompts = ["simple*"]
resources = ["demo://resource/static/*"]
action = "allow"

[[access.rules]]
tenants = ["beta"]
tools = ["echo"]
action = "allow"

[[access.rules]]
tenants = ["beta"]
tools = ["add"]
action = "deny"
mode = "shadow"

[[access.rules]]
tenants = ["beta"]
tools = ["add"]
action = "allow"
"#;

struct Judged {
    result: Result<(), Rejection>,
    shadowed: Vec<ShadowHit>,
    concealed: Option<Concealed>,
}

fn judge(tenant: &str, scopes: &[&str], body: &str) -> Judged {
    judge_batch(tenant, scopes, &[body])
}

fn judge_batch(tenant: &str, scopes: &[&str], bodies: &[&str]) -> Judged {
    let p = policy_with(&format!(
        "{JWT_AUTH}[limits]\nallow_batches = true\n{POLICY}"
    ));
    let h = headers(&[]);
    let mut ex = Exchange::new(&p, "POST", "/mcp", &h, b"");
    ex.messages = bodies
        .iter()
        .map(|b| crate::message::Message::from_value(serde_json::from_str(b).unwrap()).unwrap())
        .collect();
    ex.batch = bodies.len() > 1;
    ex.tenant = Some(TenantName::from(tenant));
    ex.identity = Some(Identity {
        method: AuthMethod::Jwt,
        subject: Some(format!("{tenant}-1")),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    });
    let result = match AccessFilter.check(&mut ex) {
        Decision::Continue => Ok(()),
        Decision::Reject(r) => Err(r),
    };
    Judged {
        result,
        shadowed: ex.shadowed,
        concealed: ex.concealed,
    }
}

/// Passed on, but under a placeholder: the rule that hid it.
fn hidden_by(j: &Judged) -> Option<&str> {
    assert!(j.result.is_ok(), "{:?}", j.result);
    j.concealed.as_ref().map(|c| c.rule.as_str())
}

fn call(tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
}

#[test]
fn allowed_calls_pass_untouched() {
    for (tenant, scopes, tool) in [
        ("alpha", &[][..], "echo"),
        ("beta", &[], "echo"),
        ("alpha", &["admin"], "admin_reset"),
    ] {
        let j = judge(tenant, scopes, &call(tool));
        assert_eq!(hidden_by(&j), None, "{tenant} {tool}");
        assert!(j.shadowed.is_empty());
    }
}

#[test]
fn a_hidden_tool_is_concealed_not_refused() {
    let j = judge("alpha", &[], &call("get-env"));
    assert_eq!(hidden_by(&j), Some("access.rules[1]"));
    let c = j.concealed.unwrap();
    assert_eq!(
        (c.kind, c.key, c.original.as_str()),
        (AccessKind::Tool, "name", "get-env")
    );
}

#[test]
fn the_disguised_request_names_the_placeholder_without_arguments() {
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get-env","arguments":{"secret":"s3"},"_meta":{"progressToken":1}}}"#;
    let j = judge("alpha", &[], body);
    let m = crate::message::Message::from_value(serde_json::from_str(body).unwrap()).unwrap();
    let out: Value = serde_json::from_slice(&disguise(
        &m,
        j.concealed.as_ref().unwrap(),
        "mcpgate-hidden-1",
    ))
    .unwrap();
    assert_eq!(
        out,
        serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "mcpgate-hidden-1", "arguments": {}, "_meta": {"progressToken": 1}}})
    );
}

#[test]
fn first_match_wins_and_default_applies() {
    // alpha's rule 2 needs the admin scope; without it rule 3 allows "*".
    assert_eq!(hidden_by(&judge("alpha", &[], &call("admin_reset"))), None);
    // beta: only echo and add; everything else falls to default deny.
    assert_eq!(
        hidden_by(&judge("beta", &[], &call("get-env"))),
        Some("access.default")
    );
}

#[test]
fn prompts_and_resources_are_judged_by_their_own_globs() {
    let prompt = |name: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{{"name":"{name}"}}}}"#)
    };
    let read = |uri: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{{"uri":"{uri}"}}}}"#
        )
    };
    assert_eq!(
        hidden_by(&judge("alpha", &[], &prompt("simple-prompt"))),
        None
    );
    assert!(hidden_by(&judge("alpha", &[], &prompt("complex-prompt"))).is_some());
    assert_eq!(
        hidden_by(&judge(
            "alpha",
            &[],
            &read("demo://resource/static/document/a.md")
        )),
        None
    );
    let j = judge("alpha", &[], &read("demo://resource/dynamic/1"));
    assert_eq!(j.concealed.as_ref().map(|c| c.key), Some("uri"));
    // beta has no prompt rule: default deny.
    assert!(hidden_by(&judge("beta", &[], &prompt("simple-prompt"))).is_some());
}

#[test]
fn a_batch_naming_a_hidden_target_is_refused_whole() {
    let j = judge_batch("alpha", &[], &[&call("echo"), &call("get-env")]);
    let r = j.result.unwrap_err();
    assert_eq!(r.kind, K::UnknownTarget);
    let v: Value = serde_json::from_slice(&r.json_body()).unwrap();
    assert_eq!(
        v["error"],
        serde_json::json!({"code": -32602, "message": "Unknown tool: get-env"})
    );
    assert!(r.detail.contains("access.rules[1]"), "{}", r.detail);
}

#[test]
fn shadow_rules_change_nothing_and_are_recorded() {
    let j = judge("beta", &[], &call("add"));
    assert_eq!(hidden_by(&j), None);
    assert_eq!(j.shadowed.len(), 1);
    assert_eq!(j.shadowed[0].rule, "access.rules[5]");
    assert!(judge("beta", &[], &call("echo")).shadowed.is_empty());
}

#[test]
fn other_methods_and_absent_policy_pass() {
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    assert_eq!(hidden_by(&judge("beta", &[], list)), None);
    let p = policy_with("");
    let h = headers(&[]);
    let body = call("get-env");
    let mut ex = Exchange::new(&p, "POST", "/mcp", &h, body.as_bytes());
    ex.messages =
        vec![crate::message::Message::from_value(serde_json::from_str(&body).unwrap()).unwrap()];
    assert!(matches!(AccessFilter.check(&mut ex), Decision::Continue));
    assert!(ex.concealed.is_none());
}
