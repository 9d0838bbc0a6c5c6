//! The compiled `inputSchema` of every tool a worker saw listed.
//!
//! The proxy feeds it each `tools/list` result page it relays
//! ([`SchemaCatalog::learn_listing`]) and hands it to the filter as
//! [`ToolSchemas`]. Each tool keeps the SHA-256 of its schema's canonical
//! JSON (RFC 8785, as the pins use): a page that lists a schema again
//! costs a hash, not a compile, and a changed schema replaces the old one.
//! Pages are not complete listings, so a tool missing from one is kept.
//!
//! Bounded: at most [`MAX_TOOLS`] names. Past it, a new name is not
//! learned (its calls pass, as an unlisted tool's do) and is counted in
//! [`Learned::over_capacity`] so the proxy can say so; known tools still
//! follow their listings. Pure: no I/O, one lock.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{CompiledSchema, SchemaLookup, ToolSchemas, Uncompilable};

/// Most tool names one catalog holds.
pub const MAX_TOOLS: usize = 10_000;

/// One tool: the hash of its schema and what compiling it gave.
struct Entry {
    hash: [u8; 32],
    compiled: Option<Arc<CompiledSchema>>,
}

/// What one listing page taught the catalog.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Learned {
    /// Tools whose schema was compiled now (new, or changed).
    pub compiled: usize,
    /// Tools listed with the schema already known (no compile).
    pub unchanged: usize,
    /// Tools whose schema could not be compiled, newly or since it changed:
    /// `(name, why)`. A schema listed again unchanged is not reported again,
    /// so a warning per entry is logged once.
    pub uncompilable: Vec<(String, Uncompilable)>,
    /// New tool names not learned: the catalog is full.
    pub over_capacity: usize,
    /// Entries without a string `name` or an `inputSchema`: ignored.
    pub malformed: usize,
}

/// Tool name to compiled schema. See the module documentation.
pub struct SchemaCatalog {
    tools: RwLock<HashMap<String, Entry>>,
    max_tools: usize,
}

impl std::fmt::Debug for SchemaCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCatalog")
            .field("tools", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for SchemaCatalog {
    fn default() -> Self {
        Self::new()
    }
}

impl SchemaCatalog {
    /// An empty catalog of at most [`MAX_TOOLS`] tools.
    pub fn new() -> Self {
        Self::with_capacity(MAX_TOOLS)
    }

    /// An empty catalog of at most `max_tools` tools.
    pub fn with_capacity(max_tools: usize) -> Self {
        Self {
            tools: RwLock::new(HashMap::new()),
            max_tools,
        }
    }

    /// How many tools it knows.
    pub fn len(&self) -> usize {
        self.tools.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Learns the entries of one `tools/list` result page (`result.tools`):
    /// each entry's `name` and `inputSchema`. Compiles outside the lock.
    pub fn learn_listing(&self, tools: &[Value]) -> Learned {
        self.learn_member(tools, "inputSchema")
    }

    /// [`Self::learn_listing`] for the tools' `outputSchema`s (a
    /// catalog of its own): a tool listed without one is forgotten, its
    /// results then unjudged.
    pub fn learn_output_schemas(&self, tools: &[Value]) -> Learned {
        self.learn_member(tools, "outputSchema")
    }

    fn learn_member(&self, tools: &[Value], member: &str) -> Learned {
        let mut learned = Learned::default();
        for entry in tools {
            let name = entry.get("name").and_then(Value::as_str);
            if let (Some(name), None, "outputSchema") = (name, entry.get(member), member) {
                self.tools.write().remove(name);
                continue;
            }
            let (Some(name), Some(schema)) = (name, entry.get(member)) else {
                learned.malformed += 1;
                continue;
            };
            let canonical = canonical(schema);
            let hash: [u8; 32] = Sha256::digest(&canonical).into();
            {
                let known = self.tools.read();
                match known.get(name) {
                    Some(e) if e.hash == hash => {
                        learned.unchanged += 1;
                        continue;
                    }
                    None if known.len() >= self.max_tools => {
                        learned.over_capacity += 1;
                        continue;
                    }
                    _ => {}
                }
            }
            let compiled = match CompiledSchema::compile_bounded(schema, canonical.len()) {
                Ok(c) => {
                    learned.compiled += 1;
                    Some(Arc::new(c))
                }
                Err(why) => {
                    learned.uncompilable.push((name.to_owned(), why));
                    None
                }
            };
            let mut known = self.tools.write();
            // Checked again: another thread may have filled it meanwhile.
            if !known.contains_key(name) && known.len() >= self.max_tools {
                learned.over_capacity += 1;
                continue;
            }
            known.insert(name.to_owned(), Entry { hash, compiled });
        }
        learned
    }
}

impl ToolSchemas for SchemaCatalog {
    fn validator(&self, tool: &str) -> SchemaLookup {
        match self.tools.read().get(tool) {
            None => SchemaLookup::Unknown,
            Some(Entry { compiled: None, .. }) => SchemaLookup::Uncompilable,
            Some(Entry {
                compiled: Some(c), ..
            }) => SchemaLookup::Ready(c.clone()),
        }
    }
}

/// Canonical JSON (RFC 8785): the same bytes whatever key order or number
/// spelling a server wrote. One canonical form for the whole crate: the
/// pins hash definitions with it too.
pub use crate::pins::canonical;
