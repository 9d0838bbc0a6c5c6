//! Strict JSON and JSON-RPC message reading.
//!
//! Strict means: valid UTF-8, no trailing data, no duplicate object keys (a
//! proxy and a server that pick different duplicates see different messages),
//! and nesting bounded before any recursive parsing happens.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON-RPC id: a string or an integer, never null. A string id is shared,
/// not copied: the forward path, the session and the answer's checks each
/// keep the id, and copying it showed as eight allocations per request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestId {
    Number(Number),
    String(Arc<str>),
}

impl RequestId {
    /// Reads an id; `None` for null, fractions, booleans and containers.
    pub fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Some(Self::String(Arc::from(s.as_str()))),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(Self::Number(n.clone())),
            _ => None,
        }
    }

    /// Whether `v` reads as this id (compared in place, not read into a
    /// new id).
    pub fn is_json(&self, v: &Value) -> bool {
        match (self, v) {
            (Self::String(a), Value::String(b)) => **a == **b,
            (Self::Number(a), Value::Number(b)) => a == b,
            _ => false,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Self::Number(n) => Value::Number(n.clone()),
            Self::String(s) => Value::String(s.to_string()),
        }
    }
}

/// As in JSON: `7`, `"abc"` (quoted and escaped, so a log line cannot be
/// split or forged by an id).
impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::String(s) => match serde_json::to_string(&**s) {
                Ok(quoted) => f.write_str(&quoted),
                Err(_) => Err(fmt::Error),
            },
        }
    }
}

/// An optional id for a log line: the id as in JSON, or `-` when there is none.
pub fn display_id(id: Option<&RequestId>) -> impl fmt::Display + '_ {
    struct Shown<'a>(Option<&'a RequestId>);
    impl fmt::Display for Shown<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                Some(id) => id.fmt(f),
                None => f.write_str("-"),
            }
        }
    }
    Shown(id)
}

/// What a JSON-RPC message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Notification,
    Response,
}

/// One validated JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: MessageKind,
    /// Request or response id.
    pub id: Option<RequestId>,
    /// Method of a request or notification.
    pub method: Option<String>,
    /// The whole message object.
    pub body: Map<String, Value>,
}

impl Message {
    /// `params`, when it is an object.
    pub fn params(&self) -> Option<&Map<String, Value>> {
        self.body.get("params").and_then(Value::as_object)
    }

    /// `params._meta`, when it is an object.
    pub fn meta(&self) -> Option<&Map<String, Value>> {
        self.params()
            .and_then(|p| p.get("_meta"))
            .and_then(Value::as_object)
    }

    /// The method name, or "" for responses.
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }

    pub fn is_request(&self, method: &str) -> bool {
        self.kind == MessageKind::Request && self.method() == method
    }

    /// Validates one JSON value as a JSON-RPC 2.0 message.
    pub fn from_value(v: Value) -> Result<Self, Invalid> {
        let Value::Object(body) = v else {
            return Err(Invalid::new(
                "not-an-object",
                "",
                "message is not a JSON object",
            ));
        };
        if body.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(Invalid::new(
                "wrong-jsonrpc-version",
                "jsonrpc",
                "`jsonrpc` must be \"2.0\"",
            ));
        }
        if let Some(p) = body.get("params") {
            if !p.is_object() && !p.is_array() {
                return Err(Invalid::new(
                    "params-not-structured",
                    "params",
                    "`params` must be an object or array",
                ));
            }
        }
        let id = match body.get("id") {
            None => None,
            Some(raw) => Some(RequestId::from_json(raw).ok_or(Invalid::new(
                "invalid-id",
                "id",
                "`id` must be a string or an integer",
            ))?),
        };
        match body.get("method") {
            Some(Value::String(m)) => {
                if body.contains_key("result") || body.contains_key("error") {
                    return Err(Invalid::new(
                        "request-with-result",
                        if body.contains_key("result") {
                            "result"
                        } else {
                            "error"
                        },
                        "a request cannot carry `result` or `error`",
                    ));
                }
                let kind = if id.is_some() {
                    MessageKind::Request
                } else {
                    MessageKind::Notification
                };
                let method = Some(m.clone());
                Ok(Self {
                    kind,
                    id,
                    method,
                    body,
                })
            }
            Some(_) => Err(Invalid::new(
                "method-not-a-string",
                "method",
                "`method` must be a string",
            )),
            None => {
                if id.is_none() {
                    return Err(Invalid::new(
                        "response-without-id",
                        "id",
                        "a response needs an `id`",
                    ));
                }
                if body.contains_key("result") == body.contains_key("error") {
                    return Err(Invalid::new(
                        "response-result-xor-error",
                        "result",
                        "a response carries exactly one of `result` and `error`",
                    ));
                }
                Ok(Self {
                    kind: MessageKind::Response,
                    id,
                    method: None,
                    body,
                })
            }
        }
    }
}

/// Why a JSON value is not a JSON-RPC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    /// Rule name, as in [`crate::Rejection::rule`].
    pub rule: &'static str,
    /// Member of the message at fault (`id`, `params`); empty for the whole.
    pub at: &'static str,
    /// For the log.
    pub detail: &'static str,
}

impl Invalid {
    const fn new(rule: &'static str, at: &'static str, detail: &'static str) -> Self {
        Self { rule, at, detail }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail)
    }
}

/// Best-effort read of a body's JSON-RPC id, for echoing it in an error, and
/// whether the body is a notification or response (which get a bare status).
pub fn peek_id(body: &[u8]) -> (Option<RequestId>, bool) {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) else {
        return (None, false);
    };
    let id = m.get("id").and_then(RequestId::from_json);
    let is_request = m.contains_key("method") && id.is_some();
    let bare = m.contains_key("method") && !m.contains_key("id")
        || m.contains_key("result")
        || m.contains_key("error");
    (if is_request { id } else { None }, bare)
}

/// Deepest `[`/`{` nesting in `bytes`, stopping early past `limit`.
pub fn nesting_depth(bytes: &[u8], limit: usize) -> usize {
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Jump over the string: to its closing quote, stepping over
                // escapes. Strings are most of an MCP body (arguments,
                // results), so they are scanned with memchr, not byte by byte.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &bytes[i.min(bytes.len())..]) {
                        None => return max,
                        Some(at) if bytes[i + at] == b'\\' => i += at + 2,
                        Some(at) => {
                            i += at;
                            break;
                        }
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    max = depth;
                    if max > limit {
                        return max;
                    }
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    max
}

/// Parses strict JSON: one value, UTF-8, no duplicate keys.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = StrictValue.deserialize(&mut de).map_err(|e| {
        let rule = if std::str::from_utf8(bytes).is_err() {
            "invalid-utf8"
        } else if e.is_eof() {
            "truncated-json"
        } else if e.is_data() && e.to_string().starts_with(DUPLICATE_KEY) {
            "duplicate-key"
        } else {
            "invalid-json"
        };
        JsonError::new(rule, &e)
    })?;
    de.end().map_err(|e| JsonError::new("trailing-data", &e))?;
    Ok(v)
}

/// Why a body is not strict JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Rule name: `invalid-json`, `truncated-json`, `trailing-data`,
    /// `duplicate-key` or `invalid-utf8`.
    pub rule: &'static str,
    /// serde_json's message, for the log (it may quote the body).
    pub detail: String,
}

impl JsonError {
    fn new(rule: &'static str, e: &serde_json::Error) -> Self {
        Self {
            rule,
            detail: e.to_string(),
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

const DUPLICATE_KEY: &str = "duplicate key";

/// A `Value` seed that refuses duplicate object keys.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("{DUPLICATE_KEY} `{key}`")));
            }
            let v = map.next_value_seed(StrictValue)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_and_trailing_data_are_refused() {
        let rule = |b: &[u8]| parse_strict(b).unwrap_err().rule;
        assert_eq!(rule(br#"{"a":1,"a":2}"#), "duplicate-key");
        assert_eq!(rule(br#"{"a":{"b":1,"b":1}}"#), "duplicate-key");
        assert_eq!(rule(br#"{"a":1} {"#), "trailing-data");
        assert_eq!(rule(b"{\"a\":\"\xff\"}"), "invalid-utf8");
        assert_eq!(rule(br#"{"a":"\ud800"}"#), "invalid-json");
        assert_eq!(rule(br#"{"a":"#), "truncated-json");
        assert_eq!(rule(br#"{"a" 1}"#), "invalid-json");
        assert!(parse_strict(br#"{"a":1,"a":2}"#)
            .unwrap_err()
            .detail
            .contains("duplicate"));
        assert_eq!(
            parse_strict(br#" {"a":[1,2.5,"x",null,true]} "#).unwrap()["a"][1],
            2.5
        );
    }

    #[test]
    fn an_id_is_matched_in_place_as_reading_it_would() {
        let values: Vec<Value> = serde_json::from_str(
            r#"["a", "b", "", 7, 8, -7, 7.0, 18446744073709551615, null, true, ["a"], {"a": 1}]"#,
        )
        .unwrap();
        for id in values.iter().filter_map(RequestId::from_json) {
            for v in &values {
                let read = RequestId::from_json(v).is_some_and(|r| r == id);
                assert_eq!(id.is_json(v), read, "{id} against {v}");
            }
        }
    }

    #[test]
    fn peek_id_for_errors() {
        assert_eq!(
            peek_id(br#"{"jsonrpc":"2.0","id":"a","method":"x"}"#),
            (Some(RequestId::String("a".into())), false)
        );
        assert_eq!(peek_id(br#"{"jsonrpc":"2.0","method":"n"}"#), (None, true));
        assert_eq!(
            peek_id(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            (None, true)
        );
        assert_eq!(peek_id(b"garbage"), (None, false));
    }

    #[test]
    fn ids_print_as_json() {
        assert_eq!(RequestId::Number(7.into()).to_string(), "7");
        assert_eq!(RequestId::String("abc".into()).to_string(), r#""abc""#);
        assert_eq!(
            RequestId::String("a\"b\nc\u{1b}".into()).to_string(),
            r#""a\"b\nc\u001b""#
        );
        assert_eq!(display_id(None).to_string(), "-");
        let id = RequestId::Number((-3).into());
        assert_eq!(format!("id={}", display_id(Some(&id))), "id=-3");
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(nesting_depth(br#"{"a":"[[[[{{{"}"#, 64), 1);
        assert_eq!(nesting_depth(br#"{"a":"\"[[","b":[[1]]}"#, 64), 3);
        assert_eq!(nesting_depth(&[b'['; 1000], 10), 11);
        // An escaped backslash ends before the quote that closes the string.
        assert_eq!(nesting_depth(br#"{"a":"x\\","b":[[1]]}"#, 64), 3);
        assert_eq!(nesting_depth(br#"{"a":"\\\"[","b":{}}"#, 64), 2);
        // Unterminated strings and a trailing backslash end the scan.
        assert_eq!(nesting_depth(br#"[{"a":"[[[\"#, 64), 2);
        assert_eq!(nesting_depth(br#"[["abc"#, 64), 2);
    }

    /// The byte-by-byte scan the memchr version replaced.
    fn reference_depth(bytes: &[u8], limit: usize) -> usize {
        let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
        for &b in bytes {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        max = depth;
                        if max > limit {
                            return max;
                        }
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        max
    }

    #[test]
    fn nesting_scan_agrees_with_the_byte_by_byte_scan() {
        // Every string of up to 7 symbols over the bytes that matter.
        let alphabet = [b'"', b'\\', b'[', b']', b'{', b'}', b'a'];
        let mut input = Vec::new();
        for len in 0..=7u32 {
            for mut n in 0..alphabet.len().pow(len) {
                input.clear();
                for _ in 0..len {
                    input.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                for limit in [1, 3, 64] {
                    assert_eq!(
                        nesting_depth(&input, limit),
                        reference_depth(&input, limit),
                        "{:?} limit {limit}",
                        String::from_utf8_lossy(&input)
                    );
                }
            }
        }
    }

    fn msg(s: &str) -> Result<Message, Invalid> {
        Message::from_value(serde_json::from_str(s).unwrap())
    }

    #[test]
    fn envelope_rules() {
        assert_eq!(
            msg(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
                .unwrap()
                .kind,
            MessageKind::Request
        );
        assert_eq!(
            msg(r#"{"jsonrpc":"2.0","method":"n"}"#).unwrap().kind,
            MessageKind::Notification
        );
        assert_eq!(
            msg(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#)
                .unwrap()
                .kind,
            MessageKind::Response
        );
        assert!(msg(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#).is_err());
        assert!(msg(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#).is_err());
        assert!(msg(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#).is_err());
        assert!(msg(r#"{"jsonrpc":"2.0","id":1,"method":3}"#).is_err());
        assert!(msg(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#).is_err());
        assert!(msg(r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#).is_err());
        assert!(msg(r#"{"jsonrpc":"2.0","result":{}}"#).is_err());
        assert!(msg(r#"[1]"#).is_err());
    }

    #[test]
    fn envelope_rules_are_named_and_located() {
        let why = |s: &str| {
            let e = msg(s).unwrap_err();
            (e.rule, e.at)
        };
        assert_eq!(why(r#"42"#), ("not-an-object", ""));
        assert_eq!(
            why(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            ("wrong-jsonrpc-version", "jsonrpc")
        );
        assert_eq!(
            why(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            ("invalid-id", "id")
        );
        assert_eq!(
            why(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#),
            ("params-not-structured", "params")
        );
        assert_eq!(
            why(r#"{"jsonrpc":"2.0","id":1,"method":3}"#),
            ("method-not-a-string", "method")
        );
        assert_eq!(
            why(r#"{"jsonrpc":"2.0","id":1,"method":"x","error":{}}"#),
            ("request-with-result", "error")
        );
        assert_eq!(
            why(r#"{"jsonrpc":"2.0","result":{}}"#),
            ("response-without-id", "id")
        );
        assert_eq!(
            why(r#"{"jsonrpc":"2.0","id":1}"#),
            ("response-result-xor-error", "result")
        );
    }
}
