//! Strict JSON and JSON-RPC message reading.
//!
//! Strict means: valid UTF-8, no trailing data, no duplicate object keys (a
//! proxy and a server that pick different duplicates see different messages),
//! and nesting bounded before any recursive parsing happens.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON-RPC id: a string or an integer, never null.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestId {
    Number(Number),
    String(String),
}

impl RequestId {
    /// Reads an id; `None` for null, fractions, booleans and containers.
    pub fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Some(Self::String(s.clone())),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(Self::Number(n.clone())),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Self::Number(n) => Value::Number(n.clone()),
            Self::String(s) => Value::String(s.clone()),
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::String(s) => write!(f, "{s:?}"),
        }
    }
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
    pub fn from_value(v: Value) -> Result<Self, String> {
        let Value::Object(body) = v else {
            return Err("message is not a JSON object".into());
        };
        if body.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err("`jsonrpc` must be \"2.0\"".into());
        }
        if let Some(p) = body.get("params") {
            if !p.is_object() && !p.is_array() {
                return Err("`params` must be an object or array".into());
            }
        }
        let id = match body.get("id") {
            None => None,
            Some(raw) => {
                Some(RequestId::from_json(raw).ok_or("`id` must be a string or an integer")?)
            }
        };
        match body.get("method") {
            Some(Value::String(m)) => {
                if body.contains_key("result") || body.contains_key("error") {
                    return Err("a request cannot carry `result` or `error`".into());
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
            Some(_) => Err("`method` must be a string".into()),
            None => {
                if id.is_none() {
                    return Err("a response needs an `id`".into());
                }
                if body.contains_key("result") == body.contains_key("error") {
                    return Err("a response carries exactly one of `result` and `error`".into());
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

/// Parses strict JSON: one value, UTF-8, no duplicate keys.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = StrictValue
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(v)
}

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
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
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
        assert!(parse_strict(br#"{"a":1,"a":2}"#)
            .unwrap_err()
            .contains("duplicate"));
        assert!(parse_strict(br#"{"a":{"b":1,"b":1}}"#).is_err());
        assert!(parse_strict(br#"{"a":1} {"#).is_err());
        assert!(parse_strict(b"{\"a\":\"\xff\"}").is_err());
        assert!(parse_strict(br#"{"a":"\ud800"}"#).is_err());
        assert_eq!(
            parse_strict(br#" {"a":[1,2.5,"x",null,true]} "#).unwrap()["a"][1],
            2.5
        );
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
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(nesting_depth(br#"{"a":"[[[[{{{"}"#, 64), 1);
        assert_eq!(nesting_depth(br#"{"a":"\"[[","b":[[1]]}"#, 64), 3);
        assert_eq!(nesting_depth(&[b'['; 1000], 10), 11);
    }

    fn msg(s: &str) -> Result<Message, String> {
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
}
