//! Tool arguments against the tool's own `inputSchema` (`[tools]
//! validate_arguments`).
//!
//! Runs on the parsed messages, after the access and scope filters (a hidden
//! tool is never judged, so a refusal cannot reveal that it exists) and
//! before the path and SSRF guards. For each `tools/call` the filter asks
//! the proxy for the tool's compiled schema ([`ToolSchemas`], filled from the
//! `tools/list` answers the proxy relays: see [`catalog::SchemaCatalog`]):
//!
//! - a tool never listed passes: mcpgate has nothing to judge it by, and the
//!   server answers an unknown tool itself;
//! - arguments the schema refuses (a missing `arguments` is `{}`) get
//!   [`RejectionKind::InvalidArguments`] (400, -32602), rule
//!   `arguments-schema`, `at` = `params.arguments` + the JSON pointer of the
//!   first failing place (`params.arguments/count`), and `error.data`
//!   `{"pointer": "/count", "keyword": "type"}`: never the offending value;
//! - a schema mcpgate could not compile passes (`on_uncompilable = "skip"`,
//!   the proxy logged a warning when it learned it) or is refused
//!   (`"refuse"`, rule `arguments-schema-uncompilable`).
//!
//! Schemas are compiled with `jsonschema` offline: a `$ref` is never
//! fetched (no HTTP, no file), so one that does not resolve inside the
//! schema makes it uncompilable. JSON Schema 2020-12 is assumed when
//! `$schema` is absent (MCP's default); draft-07 (and 4, 6, 2019-09) when
//! `$schema` names it. `format` is not asserted (an annotation, as 2020-12
//! has it by default). Compile cost is bounded: a schema over
//! [`MAX_SCHEMA_BYTES`] of canonical JSON or nested deeper than
//! [`MAX_SCHEMA_DEPTH`] is not compiled at all.

pub mod catalog;

use std::sync::Arc;

use policies::OnUncompilable;
use serde_json::Value;

use crate::exchange::Exchange;
use crate::message::{Message, MessageKind};
use crate::rejection::{Decision, Rejection, RejectionKind as K};
use crate::tool_args::AT_ARGUMENTS;
use crate::Filter;

pub use catalog::SchemaCatalog;

/// Largest schema compiled, in bytes of canonical JSON.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// Deepest schema compiled, counting each object and array level.
pub const MAX_SCHEMA_DEPTH: usize = 32;
/// Longest pointer echoed in `at` and `error.data`; a longer one is
/// reported as the arguments as a whole.
const MAX_ECHOED_POINTER: usize = 256;

/// The compiled schemas the proxy learned, looked up by tool name. No I/O:
/// the proxy fills it from the listings it relays.
pub trait ToolSchemas: Send + Sync {
    fn validator(&self, tool: &str) -> SchemaLookup;
}

/// What is known of one tool's `inputSchema`.
#[derive(Clone)]
pub enum SchemaLookup {
    /// Never listed: nothing to judge by.
    Unknown,
    /// Listed with a schema mcpgate could not (or would not) compile.
    Uncompilable,
    /// Listed and compiled.
    Ready(Arc<CompiledSchema>),
}

/// Why a schema was not compiled (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uncompilable {
    /// Over [`MAX_SCHEMA_BYTES`].
    TooLarge(usize),
    /// Over [`MAX_SCHEMA_DEPTH`].
    TooDeep,
    /// The validator refused it: an unresolvable or remote `$ref`, an
    /// unknown `$schema`, an invalid keyword value.
    Invalid(String),
}

impl std::fmt::Display for Uncompilable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(n) => write!(f, "{n} bytes, over the {MAX_SCHEMA_BYTES}-byte limit"),
            Self::TooDeep => write!(f, "nested deeper than {MAX_SCHEMA_DEPTH}"),
            Self::Invalid(why) => write!(f, "{why}"),
        }
    }
}

/// Where and why arguments fail their schema: no part of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the arguments (`/count`; `""` for the whole).
    pub pointer: String,
    /// The schema keyword that failed (`type`, `required`, ...).
    pub keyword: String,
}

/// One tool's `inputSchema`, compiled.
pub struct CompiledSchema {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledSchema")
    }
}

impl CompiledSchema {
    /// Compiles `schema`, refusing one over the size or depth limits, and
    /// never fetching a reference.
    pub fn compile(schema: &Value) -> Result<Self, Uncompilable> {
        let size = catalog::canonical(schema).len();
        if size > MAX_SCHEMA_BYTES {
            return Err(Uncompilable::TooLarge(size));
        }
        Self::compile_bounded(schema, size)
    }

    /// [`Self::compile`] for a schema whose canonical size is known.
    pub(crate) fn compile_bounded(schema: &Value, size: usize) -> Result<Self, Uncompilable> {
        if size > MAX_SCHEMA_BYTES {
            return Err(Uncompilable::TooLarge(size));
        }
        if deeper_than(schema, MAX_SCHEMA_DEPTH) {
            return Err(Uncompilable::TooDeep);
        }
        // `offline()`: a reference not inside the schema itself is an error,
        // whatever features the crate was built with.
        jsonschema::options()
            .offline()
            // `format` is an annotation (2020-12's default; optional in
            // draft-07): format checkers differ between implementations, and
            // a gateway must not refuse what the server itself accepts.
            .should_validate_formats(false)
            .build(schema)
            .map(|validator| Self { validator })
            .map_err(|e| Uncompilable::Invalid(e.to_string()))
    }

    /// The first place `args` fails the schema, if any.
    pub fn check(&self, args: &Value) -> Option<Violation> {
        let e = self.validator.validate(args).err()?;
        Some(Violation {
            pointer: e.instance_path().as_str().to_owned(),
            keyword: e.kind().keyword().to_owned(),
        })
    }
}

/// Whether `v` nests objects and arrays more than `limit` levels deep.
fn deeper_than(v: &Value, limit: usize) -> bool {
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Object(m) => Box::new(m.values()),
        Value::Array(a) => Box::new(a.iter()),
        _ => return false,
    };
    if limit == 0 {
        return true;
    }
    let mut children = children;
    children.any(|c| deeper_than(c, limit - 1))
}

pub struct ToolSchemaFilter;

impl Filter for ToolSchemaFilter {
    fn mode(&self, policy: &policies::Policy) -> policies::RuleMode {
        policy.tools.mode
    }

    fn name(&self) -> &'static str {
        "tool-schema"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        let Some(schemas) = ex.tool_schemas else {
            return Decision::Continue;
        };
        // A call of a hidden tool goes on under a placeholder without its
        // arguments: judging them would tell the caller the tool exists.
        if ex.concealed.is_some() {
            return Decision::Continue;
        }
        let on_uncompilable = ex.policy.tools.on_uncompilable;
        for (i, m) in ex.messages.iter().enumerate() {
            if let Err(r) = check_message(schemas, on_uncompilable, m) {
                return if ex.batch { r.in_item(i) } else { r }.into();
            }
        }
        Decision::Continue
    }
}

fn check_message(
    schemas: &dyn ToolSchemas,
    on_uncompilable: OnUncompilable,
    m: &Message,
) -> Result<(), Rejection> {
    if m.kind != MessageKind::Request || m.method() != "tools/call" {
        return Ok(());
    }
    // A call without a name is the server's to refuse.
    let Some(params) = m.params() else {
        return Ok(());
    };
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return Ok(());
    };
    let schema = match schemas.validator(name) {
        SchemaLookup::Unknown => return Ok(()),
        SchemaLookup::Uncompilable => {
            return match on_uncompilable {
                OnUncompilable::Skip => Ok(()),
                OnUncompilable::Refuse => Err(Rejection::new(
                    K::InvalidArguments,
                    format!("tool {name:?}: its inputSchema could not be compiled"),
                )
                .with_rule("arguments-schema-uncompilable")
                .with_at(AT_ARGUMENTS)),
            };
        }
        SchemaLookup::Ready(s) => s,
    };
    let empty = Value::Object(serde_json::Map::new());
    let args = params.get("arguments").unwrap_or(&empty);
    let Some(v) = schema.check(args) else {
        return Ok(());
    };
    // The pointer names the caller's own argument keys at most; the value
    // is never echoed, not even to the log.
    let pointer = if v.pointer.len() <= MAX_ECHOED_POINTER {
        v.pointer
    } else {
        String::new()
    };
    Err(Rejection::new(
        K::InvalidArguments,
        format!(
            "tool {name:?}: arguments fail {:?} at {pointer:?}",
            v.keyword
        ),
    )
    .with_rule("arguments-schema")
    .with_at(format!("{AT_ARGUMENTS}{pointer}"))
    .with_data(serde_json::json!({ "pointer": pointer, "keyword": v.keyword })))
}

#[cfg(test)]
mod tests;
