//! Finding the tool arguments the path and SSRF guards judge: those a policy
//! marks by JSON pointer, and (heuristic) every string anywhere in them.

use serde_json::Value;

use crate::message::Message;

/// Longest string the heuristics look at; longer ones are not paths or URLs.
pub const MAX_HEURISTIC_BYTES: usize = 4096;

/// `params.name` and `params.arguments` of a `tools/call` request.
pub fn tool_call(m: &Message) -> Option<(&str, &Value)> {
    if m.method() != "tools/call" {
        return None;
    }
    let p = m.params()?;
    Some((p.get("name")?.as_str()?, p.get("arguments")?))
}

/// The strings a pointer selects: the target itself, or the strings of an
/// array target. Nothing when the pointer selects nothing.
pub fn pointed_strings<'a>(args: &'a Value, pointer: &str) -> Vec<&'a str> {
    match args.pointer(pointer) {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Calls `f(location, string)` for every string value under `v` (object keys
/// excluded), stopping at the first error. `location` is a JSON pointer.
pub fn each_string<E>(v: &Value, f: &mut impl FnMut(&str, &str) -> Result<(), E>) -> Result<(), E> {
    let mut at = String::new();
    walk(v, &mut at, f)
}

fn walk<E>(
    v: &Value,
    at: &mut String,
    f: &mut impl FnMut(&str, &str) -> Result<(), E>,
) -> Result<(), E> {
    match v {
        Value::String(s) => f(at, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = at.len();
                at.push('/');
                at.push_str(&i.to_string());
                walk(item, at, f)?;
                at.truncate(len);
            }
            Ok(())
        }
        Value::Object(map) => {
            for (k, item) in map {
                let len = at.len();
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                walk(item, at, f)?;
                at.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A value for a log line: at most 120 characters, escaped.
pub fn shown(s: &str) -> String {
    let cut: String = s.chars().take(120).collect();
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_and_walk() {
        let args = json!({"path": "a", "many": ["b", 1, "c"], "deep": {"x/y": ["d"]}});
        assert_eq!(pointed_strings(&args, "/path"), vec!["a"]);
        assert_eq!(pointed_strings(&args, "/many"), vec!["b", "c"]);
        assert!(pointed_strings(&args, "/missing").is_empty());
        let mut seen = Vec::new();
        each_string::<()>(&args, &mut |at, s| {
            seen.push(format!("{at}={s}"));
            Ok(())
        })
        .unwrap();
        assert!(seen.contains(&"/deep/x~1y/0=d".to_string()), "{seen:?}");
        assert_eq!(seen.len(), 4);
    }
}
