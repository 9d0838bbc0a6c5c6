//! JSON-RPC 2.0 message classification and response builders.
//!
//! The mock parses every body into a `serde_json::Value` once and then only
//! inspects it; this module names the shapes it can have and builds the few
//! response shapes it sends, so the era-specific handlers never hand-roll JSON.

use serde_json::{json, Map, Value};

/// Parse error: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// The body is JSON but not a JSON-RPC message (or a batch, which is not served).
pub const INVALID_REQUEST: i64 = -32600;
/// Unknown method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Bad or missing params, unknown tool, prompt or (modern) resource.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error.
pub const INTERNAL_ERROR: i64 = -32603;
/// Implementation-defined: too many sessions or streams.
pub const SERVER_BUSY: i64 = -32000;
/// Implementation-defined: legacy session not found (the TypeScript SDK's code).
pub const SESSION_NOT_FOUND: i64 = -32001;
/// Legacy (2025-11-25) resource not found.
pub const RESOURCE_NOT_FOUND: i64 = -32002;
/// 2026-07-28: HTTP headers disagree with the body, or a required one is missing.
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: the request needs a client capability it did not declare.
pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
/// 2026-07-28: unsupported protocol version.
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// One incoming JSON-RPC message, borrowed from the parsed body.
#[derive(Debug)]
pub enum Message<'a> {
    /// A request: has a method and an id.
    Request {
        id: &'a Value,
        method: &'a str,
        params: Option<&'a Map<String, Value>>,
    },
    /// A notification: has a method, no id.
    Notification {
        method: &'a str,
        params: Option<&'a Map<String, Value>>,
    },
    /// A response from the client to a server-initiated request.
    Response { id: &'a Value, body: &'a Value },
}

/// Why a JSON value is not a JSON-RPC message we serve.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    /// A JSON array: batches were removed in 2025-06-18.
    Batch,
    /// Anything else that is not a request, notification or response.
    Shape(&'static str),
}

/// Classify a parsed body. Ids must be strings or integers, never null.
pub fn classify(body: &Value) -> Result<Message<'_>, Invalid> {
    let obj = match body {
        Value::Object(obj) => obj,
        Value::Array(_) => return Err(Invalid::Batch),
        _ => return Err(Invalid::Shape("message must be a JSON object")),
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(Invalid::Shape("jsonrpc must be \"2.0\""));
    }
    let id = match obj.get("id") {
        None => None,
        Some(id @ Value::String(_)) => Some(id),
        Some(id @ Value::Number(n)) if n.is_i64() || n.is_u64() => Some(id),
        Some(_) => return Err(Invalid::Shape("id must be a string or an integer")),
    };
    let params = match obj.get("params") {
        None => None,
        Some(Value::Object(p)) => Some(p),
        Some(_) => return Err(Invalid::Shape("params must be an object")),
    };
    match (obj.get("method"), id) {
        (Some(Value::String(method)), Some(id)) => Ok(Message::Request { id, method, params }),
        (Some(Value::String(method)), None) => Ok(Message::Notification { method, params }),
        (Some(_), _) => Err(Invalid::Shape("method must be a string")),
        (None, Some(id)) if obj.contains_key("result") || obj.contains_key("error") => {
            Ok(Message::Response { id, body })
        }
        (None, _) => Err(Invalid::Shape("not a request, notification or response")),
    }
}

/// A JSON-RPC error to send back, with the HTTP status that carries it.
#[derive(Debug, Clone)]
pub struct RpcError {
    pub status: u16,
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    /// An error carried by a 200 response (plain JSON-RPC failure).
    pub fn ok(code: i64, message: impl Into<String>) -> Self {
        Self::http(200, code, message)
    }

    /// An error carried by a non-200 HTTP status.
    pub fn http(status: u16, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Attach `data` to the error object.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The full JSON-RPC error response; `id` is omitted when unknown.
    pub fn to_response(&self, id: Option<&Value>) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        let mut resp = json!({"jsonrpc": "2.0", "error": error});
        if let Some(id) = id {
            resp["id"] = id.clone();
        }
        resp
    }
}

/// A JSON-RPC success response.
pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A JSON-RPC notification.
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// A stable map key for a request id (`"7"` and `7` stay distinct).
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_shapes() {
        let req = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
        assert!(matches!(classify(&req), Ok(Message::Request { .. })));
        let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
        assert!(matches!(classify(&note), Ok(Message::Notification { .. })));
        let resp = json!({"jsonrpc":"2.0","id":"s-1","result":{}});
        assert!(matches!(classify(&resp), Ok(Message::Response { .. })));
        assert_eq!(classify(&json!([req])).unwrap_err(), Invalid::Batch);
        let null_id = json!({"jsonrpc":"2.0","id":null,"method":"ping"});
        assert!(classify(&null_id).is_err());
        assert!(classify(&json!({"jsonrpc":"1.0","id":1,"method":"x"})).is_err());
        assert!(classify(&json!({"jsonrpc":"2.0","id":1,"method":"x","params":[1]})).is_err());
    }

    #[test]
    fn error_response_omits_unknown_id() {
        let e = RpcError::http(400, PARSE_ERROR, "bad");
        assert!(e.to_response(None).get("id").is_none());
        assert_eq!(e.to_response(Some(&json!(3)))["id"], 3);
    }
}
