//! The static resource and prompt the mock serves, and the server's identity.

use serde_json::{json, Map, Value};

use super::jsonrpc::{RpcError, INVALID_PARAMS};

/// Name reported in `serverInfo`.
pub const SERVER_NAME: &str = "mcpgate-demo-upstream";
/// URI of the one resource.
pub const README_URI: &str = "demo://readme";
/// Text of the one resource.
const README_TEXT: &str = "demo-upstream: an MCP mock server for mcpgate tests and benchmarks.\n";

/// `serverInfo` / `Implementation`.
pub fn server_info() -> Value {
    json!({"name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION")})
}

/// The `resources/list` entries.
pub fn resources() -> Value {
    json!([{"uri": README_URI, "name": "readme", "title": "Read me", "mimeType": "text/plain"}])
}

/// Contents of `uri`, or `None` if it is not served.
pub fn read_resource(uri: &str) -> Option<Value> {
    (uri == README_URI)
        .then(|| json!([{"uri": README_URI, "mimeType": "text/plain", "text": README_TEXT}]))
}

/// The `prompts/list` entries.
pub fn prompts() -> Value {
    json!([{
        "name": "greeting",
        "description": "Greets someone by name.",
        "arguments": [{"name": "name", "description": "Who to greet", "required": false}]
    }])
}

/// The `prompts/get` result for `name` with `arguments`.
pub fn get_prompt(name: &str, args: Option<&Map<String, Value>>) -> Result<Value, RpcError> {
    if name != "greeting" {
        return Err(RpcError::ok(
            INVALID_PARAMS,
            format!("Unknown prompt: {name}"),
        ));
    }
    let who = args
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("world");
    Ok(json!({
        "description": "A friendly greeting",
        "messages": [{"role": "user", "content": {"type": "text", "text": format!("Please greet {who}.")}}]
    }))
}
