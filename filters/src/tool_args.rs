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

/// Location of a heuristic hit: the client's own argument names are not
/// echoed, so the hit is reported as the arguments as a whole.
pub const AT_ARGUMENTS: &str = "params.arguments";

/// Location of a policy JSON pointer into the arguments, as a JSON path:
/// `/path` is `params.arguments.path`, `/urls/0` is `params.arguments.urls[0]`,
/// a name that is not an identifier is quoted (`params.arguments["a.b"]`).
/// The pointer comes from the policy file, not from the client.
pub fn pointer_at(pointer: &str) -> String {
    let mut out = String::from(AT_ARGUMENTS);
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        let ident = seg
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else if ident {
            out.push('.');
            out.push_str(&seg);
        } else {
            let quoted = serde_json::to_string(&seg).unwrap_or_default();
            out.push_str(&format!("[{quoted}]"));
        }
    }
    out
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

    #[test]
    fn pointers_as_json_paths() {
        assert_eq!(pointer_at(""), "params.arguments");
        assert_eq!(pointer_at("/path"), "params.arguments.path");
        assert_eq!(pointer_at("/urls/0"), "params.arguments.urls[0]");
        assert_eq!(pointer_at("/a.b/x~1y"), r#"params.arguments["a.b"]["x/y"]"#);
        assert_eq!(
            pointer_at("/opts/base_url"),
            "params.arguments.opts.base_url"
        );
    }
}
