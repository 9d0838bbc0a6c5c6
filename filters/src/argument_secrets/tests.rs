use super::*;
use crate::content_book::ContentBook;
use crate::envelope::EnvelopeFilter;
use crate::testutil::{headers, policy_with};

fn judge(content: &str, args: serde_json::Value) -> (Result<serde_json::Value, Rejection>, usize) {
    let p = policy_with(content);
    let h = headers(&[]);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "send", "arguments": args}})
    .to_string();
    let book = ContentBook::new();
    let mut ex = Exchange::new(&p, "POST", "/mcp", &h, body.as_bytes());
    ex.content_book = Some(&book);
    assert!(matches!(EnvelopeFilter.check(&mut ex), Decision::Continue));
    let out = match ArgumentSecretsFilter.check(&mut ex) {
        Decision::Continue => Ok(serde_json::Value::Object(ex.messages[0].body.clone())),
        Decision::Reject(r) => Err(r),
    };
    let rewritten = ex.rewritten;
    let findings = book.take_events().0.len();
    if out.is_ok() {
        assert_eq!(rewritten, findings > 0 && !content.contains("flag"));
    }
    (out, findings)
}

fn key() -> String {
    format!("ghp_{}", "aB1".repeat(12))
}

#[test]
fn secrets_in_arguments() {
    // Off unless asked for.
    let (out, n) = judge("[content.secrets]\n", json!({"text": key()}));
    assert!(out.is_ok() && n == 0);
    let on = "[content.secrets]\nin_arguments = true\n";
    let (out, n) = judge(on, json!({"text": format!("token {}", key()), "n": 1}));
    assert_eq!(
        out.unwrap()["params"]["arguments"]["text"],
        "token [REDACTED:github-token]"
    );
    assert_eq!(n, 1);
    let block = "[content.secrets]\nin_arguments = true\naction = \"block\"\n";
    let (out, _) = judge(block, json!({"nested": {"k": key()}}));
    let r = out.unwrap_err();
    assert_eq!((r.kind, r.rule), (K::InvalidArguments, "github-token"));
    assert_eq!(r.at(), Some("params.arguments/nested/k"));
    let flag = "[content.secrets]\nin_arguments = true\naction = \"flag\"\n";
    let (out, n) = judge(flag, json!({"text": key()}));
    assert_eq!(out.unwrap()["params"]["arguments"]["text"], key());
    assert_eq!(n, 1);
}
