//! Pinned tool and prompt definitions: the rug-pull defence (`[tools]
//! lock_file`, `pin`, `on_change`).
//!
//! A server that lists a harmless tool today can list it with a poisoned
//! description tomorrow, and the model reads whatever the latest listing
//! says. So every listed definition is compared with an approved one: from a
//! lock file `mcpgate pin` wrote and a person reviewed ([`LockFile`]), or
//! from what each pool listed first (`pin = "first-seen"`).
//!
//! A definition is what a listing says of one entry that the model reads or
//! that governs its calls ([`definition`]): for a tool its `description`,
//! `title`, `inputSchema`, `outputSchema` and `annotations`; for a prompt its
//! `description`, `title` and `arguments`. Its [`Digest`] is the SHA-256 of
//! its RFC 8785 (JCS) canonical JSON, so the same definition hashes the same
//! whatever key order, spacing or number spelling a server writes.
//!
//! [`PinBook`] holds one pool's pins at run time and judges each listed
//! entry; the response filter ([`crate::response::pinning`]) and the call
//! filter ([`crate::pinned_calls`]) read it. Nothing here does I/O: the
//! proxy reads and writes the files.

pub mod book;
pub mod lock;

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

pub use book::{PinBook, PinEvent, PinSource, Verdict};
pub use lock::{Change, LockFile, Pinned, PoolLock};

/// What a pin is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PinKind {
    Tool,
    Prompt,
}

impl PinKind {
    pub const ALL: [PinKind; 2] = [PinKind::Tool, PinKind::Prompt];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Prompt => "prompt",
        }
    }

    /// The method that lists this kind.
    pub fn list_method(self) -> &'static str {
        match self {
            Self::Tool => "tools/list",
            Self::Prompt => "prompts/list",
        }
    }

    /// The member of a listing result (and of a lock's pool) that holds them.
    pub fn member(self) -> &'static str {
        match self {
            Self::Tool => "tools",
            Self::Prompt => "prompts",
        }
    }

    /// The capability a server announces for this kind.
    pub fn capability(self) -> &'static str {
        self.member()
    }

    /// The kind a listing method lists.
    pub fn listed_by(method: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.list_method() == method)
    }

    /// The kind a method uses by name (`tools/call`, `prompts/get`).
    pub fn used_by(method: &str) -> Option<Self> {
        match method {
            "tools/call" => Some(Self::Tool),
            "prompts/get" => Some(Self::Prompt),
            _ => None,
        }
    }

    /// The members of a listed entry that make its definition.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Self::Tool => &[
                "description",
                "title",
                "inputSchema",
                "outputSchema",
                "annotations",
            ],
            Self::Prompt => &["description", "title", "arguments"],
        }
    }
}

/// One listed entry's name and definition (the members of
/// [`PinKind::fields`] it has); `None` without a string `name`.
pub fn definition(kind: PinKind, entry: &Value) -> Option<(&str, Value)> {
    let obj = entry.as_object()?;
    let name = obj.get("name")?.as_str()?;
    let def: Map<String, Value> = kind
        .fields()
        .iter()
        .filter_map(|f| Some((f.to_string(), obj.get(*f)?.clone())))
        .collect();
    Some((name, Value::Object(def)))
}

/// The SHA-256 of a definition's RFC 8785 canonical JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(definition: &Value) -> Self {
        Self(Sha256::digest(canonical(definition)).into())
    }

    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

/// RFC 8785 canonical JSON of `v` (`serde_json_canonicalizer`: UTF-16 key
/// order and ECMAScript number spelling, which hand-written sorting gets
/// wrong). A `Value` always canonicalizes: it holds no NaN or infinity.
pub fn canonical(v: &Value) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(v)
        .unwrap_or_else(|_| serde_json::to_vec(v).unwrap_or_default())
}

#[cfg(test)]
mod tests;
