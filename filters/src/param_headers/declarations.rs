//! The `x-mcp-header` declarations of the tools a pool listed.
//!
//! A 2026-07-28 tool may mark arguments of its `inputSchema` with
//! `x-mcp-header: "Name"`: a client then mirrors that argument into an
//! `Mcp-Param-Name` header (SEP-2243). [`scan`] reads the declarations of
//! one schema; [`ParamHeaderBook`] keeps them per tool name, filled from the
//! `tools/list` answers the proxy relays, so the filter can check a call's
//! headers against its arguments.
//!
//! Only declarations the spec admits are kept: on a property reached from
//! the root through `properties` alone, a non-empty RFC 9110 token, typed
//! `string`, `integer`, `boolean` (or `number`, which the spec forbids but a
//! client may still mirror), unique without regard to case. A malformed
//! declaration is skipped, not the tool: mcpgate checks what it can read.
//!
//! Bounded: at most [`MAX_TOOLS`] tools with declarations and
//! [`MAX_DECLARATIONS`] declarations per tool. Pure: no I/O, one lock.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

/// Most tools with declarations one book holds.
pub const MAX_TOOLS: usize = 10_000;
/// Most declarations kept per tool.
pub const MAX_DECLARATIONS: usize = 64;
/// Deepest `properties` chain followed.
const MAX_DEPTH: usize = 16;

/// The JSON Schema type a declared argument has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
}

impl ParamType {
    fn parse(schema: &Value) -> Option<Self> {
        match schema.get("type")?.as_str()? {
            "string" => Some(Self::String),
            "integer" => Some(Self::Integer),
            "number" => Some(Self::Number),
            "boolean" => Some(Self::Boolean),
            _ => None,
        }
    }

    /// Whether header and argument compare as numbers.
    pub fn numeric(self) -> bool {
        matches!(self, Self::Integer | Self::Number)
    }
}

/// One mirrored argument: where it sits in `arguments`, and its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamDeclaration {
    /// Property names from the arguments' root to the argument.
    pub path: Vec<String>,
    /// The header's name without `Mcp-Param-`, lower case (header names
    /// compare without case).
    pub header: String,
    pub kind: ParamType,
}

impl ParamDeclaration {
    /// The argument at [`Self::path`] in `args`, if present.
    pub fn value_in<'v>(&self, args: &'v Value) -> Option<&'v Value> {
        self.path.iter().try_fold(args, |node, key| node.get(key))
    }
}

/// The declarations of one `inputSchema`, in document order.
pub fn scan(input_schema: &Value) -> Vec<ParamDeclaration> {
    let mut found = Vec::new();
    let mut path = Vec::new();
    visit(input_schema, &mut path, &mut found);
    found
}

fn visit(schema: &Value, path: &mut Vec<String>, found: &mut Vec<ParamDeclaration>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    if path.len() >= MAX_DEPTH {
        return;
    }
    for (key, child) in properties {
        if found.len() >= MAX_DECLARATIONS {
            return;
        }
        path.push(key.clone());
        if let Some(decl) = declaration(child, path, found) {
            found.push(decl);
        }
        visit(child, path, found);
        path.pop();
    }
}

fn declaration(
    schema: &Value,
    path: &[String],
    found: &[ParamDeclaration],
) -> Option<ParamDeclaration> {
    let name = schema.get("x-mcp-header")?.as_str()?;
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return None;
    }
    let header = name.to_ascii_lowercase();
    if found.iter().any(|d| d.header == header) {
        return None;
    }
    Some(ParamDeclaration {
        path: path.to_vec(),
        header,
        kind: ParamType::parse(schema)?,
    })
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Tool name to its declarations. See the module documentation.
pub struct ParamHeaderBook {
    tools: RwLock<HashMap<String, Arc<[ParamDeclaration]>>>,
}

impl Default for ParamHeaderBook {
    fn default() -> Self {
        Self::new()
    }
}

impl ParamHeaderBook {
    pub fn new() -> Self {
        Self {
            tools: RwLock::new(HashMap::new()),
        }
    }

    /// Whether no tool with declarations is known.
    pub fn is_empty(&self) -> bool {
        self.tools.read().is_empty()
    }

    /// Learns the entries of one `tools/list` result page: a tool listed
    /// with declarations gets them, one listed without loses any it had.
    /// Pages are not complete listings, so a tool missing from one is kept.
    /// Returns how many tools with declarations were not learned because
    /// the book is full.
    pub fn learn_listing(&self, tools: &[Value]) -> usize {
        let mut over_capacity = 0;
        for entry in tools {
            let Some(name) = entry.get("name").and_then(Value::as_str) else {
                continue;
            };
            let found = entry.get("inputSchema").map(scan).unwrap_or_default();
            let mut known = self.tools.write();
            if found.is_empty() {
                known.remove(name);
            } else if known.len() < MAX_TOOLS || known.contains_key(name) {
                known.insert(name.to_owned(), found.into());
            } else {
                over_capacity += 1;
            }
        }
        over_capacity
    }

    /// The declarations of `tool`; `None` when it has none or was never
    /// listed.
    pub fn declarations(&self, tool: &str) -> Option<Arc<[ParamDeclaration]>> {
        self.tools.read().get(tool).cloned()
    }
}
