use serde_json::Value;

use super::Message;

/// The facts as the relay read them before, from the whole parsed `Value`.
fn from_value(json: &str) -> Option<[Option<Value>; 6]> {
    let v: Value = serde_json::from_str(json).ok()?;
    v.as_object()?;
    Some([
        v.get("method").cloned(),
        v.get("params").cloned(),
        v.get("id").cloned(),
        v.get("error").cloned(),
        v.pointer("/result/isError").cloned(),
        v.pointer("/result/task").cloned(),
    ])
}

fn from_message(json: &str) -> Option<[Option<Value>; 6]> {
    let m = Message::parse(json.as_bytes())?;
    let r = m.result.unwrap_or_default();
    Some([m.method, m.params, m.id, m.error, r.is_error, r.task])
}

#[test]
fn reads_what_a_whole_value_gives() {
    let big = "x".repeat(8192);
    let cases = [
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}"#.to_string(),
        format!(r#"{{"jsonrpc":"2.0","id":"a","result":{{"content":[{{"type":"text","text":"{big}"}}],"isError":true}}}}"#),
        r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"boom"}}"#.to_string(),
        r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}"#.to_string(),
        r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#.to_string(),
        r#"{"jsonrpc":"2.0","id":2,"result":{"task":{"taskId":"abc","status":"working"}}}"#.to_string(),
        // A repeated member counts as its last occurrence.
        r#"{"id":1,"id":2,"result":{"isError":true,"isError":false}}"#.to_string(),
        // Escaped member names are the same names.
        r#"{"\u0069d":3,"result":{"is\u0045rror":true}}"#.to_string(),
        // A result that is not an object has no facts.
        r#"{"id":4,"result":[1,{"isError":true}]}"#.to_string(),
        r#"{"id":5,"result":"text"}"#.to_string(),
        r#"{"id":6,"result":null,"error":null}"#.to_string(),
        r#"{"id":6,"result":{"isError":"yes","task":5}}"#.to_string(),
        r#"{}"#.to_string(),
    ];
    for json in &cases {
        assert_eq!(from_message(json), from_value(json), "{json}");
        assert!(from_message(json).is_some(), "{json}");
    }
}

#[test]
fn anything_but_an_object_yields_nothing() {
    for json in [
        "[]",
        r#"[{"id":1,"result":{}}]"#,
        "1",
        "\"s\"",
        "null",
        "{",
        "",
    ] {
        assert!(Message::parse(json.as_bytes()).is_none(), "{json}");
        assert_eq!(from_value(json), None);
    }
}
