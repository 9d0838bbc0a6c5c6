//! The lock file: approved definitions per pool, for people to review.
//!
//! JSON, written by `mcpgate pin` with sorted keys and two-space indents so
//! a change shows as a small diff in review:
//!
//! ```json
//! {
//!   "version": 1,
//!   "pools": {
//!     "default": {
//!       "tools": {
//!         "echo": {
//!           "sha256": "5f1c…",
//!           "definition": { "description": "Echoes the text back.", "inputSchema": { … } }
//!         }
//!       },
//!       "prompts": { … }
//!     }
//!   }
//! }
//! ```
//!
//! Reading one checks every `sha256` against its definition: a hand-edited
//! definition with a stale hash is an error, not a silent new approval. The
//! same format is the state file of first-seen pins, where `changed` also
//! records, per entry, the digest a worker last saw listed when it differed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Digest, PinKind};

/// A whole lock (or state) file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    /// Format version ([`LockFile::VERSION`]).
    pub version: u32,
    /// Pool name to its pins.
    #[serde(default)]
    pub pools: BTreeMap<String, PoolLock>,
}

impl Default for LockFile {
    fn default() -> Self {
        Self {
            version: Self::VERSION,
            pools: BTreeMap::new(),
        }
    }
}

/// One pool's pins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolLock {
    #[serde(default)]
    pub tools: BTreeMap<String, Pinned>,
    #[serde(default)]
    pub prompts: BTreeMap<String, Pinned>,
    /// State files only: `"tool:echo"` → the digest last listed, when it
    /// differs from the pin.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changed: BTreeMap<String, String>,
}

/// One approved definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pinned {
    /// Hex SHA-256 of the definition's canonical JSON.
    pub sha256: String,
    pub definition: Value,
}

impl Pinned {
    pub fn new(definition: Value) -> Self {
        Self {
            sha256: Digest::of(&definition).to_hex(),
            definition,
        }
    }

    /// The digest, `None` when `sha256` is not 64 hex digits.
    pub fn digest(&self) -> Option<Digest> {
        Digest::from_hex(&self.sha256)
    }
}

/// The key of an entry in [`PoolLock::changed`].
pub fn changed_key(kind: PinKind, name: &str) -> String {
    format!("{}:{name}", kind.as_str())
}

impl PoolLock {
    pub fn entries(&self, kind: PinKind) -> &BTreeMap<String, Pinned> {
        match kind {
            PinKind::Tool => &self.tools,
            PinKind::Prompt => &self.prompts,
        }
    }

    pub fn entries_mut(&mut self, kind: PinKind) -> &mut BTreeMap<String, Pinned> {
        match kind {
            PinKind::Tool => &mut self.tools,
            PinKind::Prompt => &mut self.prompts,
        }
    }

    /// Every pin: `(kind, name, pinned)`.
    pub fn iter(&self) -> impl Iterator<Item = (PinKind, &str, &Pinned)> {
        PinKind::ALL
            .into_iter()
            .flat_map(move |k| self.entries(k).iter().map(move |(n, p)| (k, n.as_str(), p)))
    }

    pub fn len(&self) -> usize {
        self.tools.len() + self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl LockFile {
    pub const VERSION: u32 = 1;

    /// Parses and checks a lock file: its version, and that every `sha256`
    /// is the digest of its definition. `changed` is refused here (it
    /// belongs to state files: [`Self::parse_state`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        let lock = Self::parse_state(text)?;
        for (pool, p) in &lock.pools {
            if !p.changed.is_empty() {
                return Err(format!(
                    "pools.{pool}.changed: only a state file records changed definitions"
                ));
            }
        }
        Ok(lock)
    }

    /// Parses a state file: a lock file that may carry `changed`.
    pub fn parse_state(text: &str) -> Result<Self, String> {
        let lock: LockFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if lock.version != Self::VERSION {
            return Err(format!(
                "version {} is not one this mcpgate reads (it reads {})",
                lock.version,
                Self::VERSION
            ));
        }
        for (pool, p) in &lock.pools {
            for (kind, name, pinned) in p.iter() {
                let at = || format!("pools.{pool}.{}.{name}", kind.member());
                let Some(d) = pinned.digest() else {
                    return Err(format!("{}.sha256: not 64 hex digits", at()));
                };
                if d != Digest::of(&pinned.definition) {
                    return Err(format!(
                        "{}: sha256 is not the digest of its definition (edited by hand? review it and run `mcpgate pin` again)",
                        at()
                    ));
                }
            }
        }
        Ok(lock)
    }

    /// The file's text: sorted keys, two-space indents, a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// How a live catalogue differs from a lock (`mcpgate pin --check`).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A pool the lock has but the configuration does not list (or the
    /// other way round).
    PoolMissing { pool: String, in_lock: bool },
    /// Listed now, not in the lock.
    Added {
        pool: String,
        kind: PinKind,
        name: String,
    },
    /// In the lock, no longer listed.
    Removed {
        pool: String,
        kind: PinKind,
        name: String,
    },
    /// Listed with another definition: each member that differs,
    /// `(member, locked, listed)`.
    Changed {
        pool: String,
        kind: PinKind,
        name: String,
        members: Vec<(String, Option<Value>, Option<Value>)>,
    },
}

/// Every difference between `lock` and `live`, pools and names in order.
pub fn diff(lock: &LockFile, live: &LockFile) -> Vec<Change> {
    let mut out = Vec::new();
    let names: std::collections::BTreeSet<&String> =
        lock.pools.keys().chain(live.pools.keys()).collect();
    for pool in names {
        let (Some(old), Some(new)) = (lock.pools.get(pool), live.pools.get(pool)) else {
            out.push(Change::PoolMissing {
                pool: pool.clone(),
                in_lock: lock.pools.contains_key(pool),
            });
            continue;
        };
        for kind in PinKind::ALL {
            let (a, b) = (old.entries(kind), new.entries(kind));
            let all: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for name in all {
                let (pool, name) = (pool.clone(), name.clone());
                match (a.get(&name), b.get(&name)) {
                    (Some(_), None) => out.push(Change::Removed { pool, kind, name }),
                    (None, Some(_)) => out.push(Change::Added { pool, kind, name }),
                    (Some(x), Some(y)) if x.sha256 != y.sha256 => out.push(Change::Changed {
                        members: members_that_differ(&x.definition, &y.definition),
                        pool,
                        kind,
                        name,
                    }),
                    _ => {}
                }
            }
        }
    }
    out
}

fn members_that_differ(a: &Value, b: &Value) -> Vec<(String, Option<Value>, Option<Value>)> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k).map(Digest::of) != b.get(*k).map(Digest::of))
        .map(|k| (k.clone(), a.get(k).cloned(), b.get(k).cloned()))
        .collect()
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::PoolMissing {
                pool,
                in_lock: true,
            } => {
                write!(f, "pool {pool:?}: in the lock, not in the configuration")
            }
            Change::PoolMissing {
                pool,
                in_lock: false,
            } => write!(f, "pool {pool:?}: not in the lock"),
            Change::Added { pool, kind, name } => {
                write!(
                    f,
                    "pool {pool:?}: {} {name:?} is listed but not in the lock",
                    kind.as_str()
                )
            }
            Change::Removed { pool, kind, name } => {
                write!(
                    f,
                    "pool {pool:?}: {} {name:?} is in the lock but no longer listed",
                    kind.as_str()
                )
            }
            Change::Changed {
                pool,
                kind,
                name,
                members,
            } => {
                write!(f, "pool {pool:?}: {} {name:?} changed", kind.as_str())?;
                for (member, old, new) in members {
                    write!(f, "\n    {member}:")?;
                    for (sign, v) in [("-", old), ("+", new)] {
                        match v {
                            Some(v) => write!(f, "\n      {sign} {}", canonical_text(v))?,
                            None => write!(f, "\n      {sign} (absent)")?,
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

fn canonical_text(v: &Value) -> String {
    String::from_utf8_lossy(&super::canonical(v)).into_owned()
}
