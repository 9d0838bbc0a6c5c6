//! What the content guards did in one pool: which definitions the
//! poisoning rules hide (so calls of them are answered as calls of an
//! unknown name), the tool names listed so far, and the findings of every
//! guard (poisoning, secrets, personal data) the proxy has yet to log and
//! count.
//!
//! Bounded: at most [`MAX_HIDDEN`] hidden names (past it a definition is
//! still left out of listings, but its calls are not concealed, and the
//! finding says so) and [`MAX_EVENTS`] findings waiting (older ones are
//! dropped and counted).

use std::collections::{BTreeSet, HashMap, VecDeque};

use parking_lot::{Mutex, RwLock};

use crate::poisoning::ListedKind;

/// Most hidden names one book holds.
pub const MAX_HIDDEN: usize = 10_000;
/// Most findings waiting to be logged.
pub const MAX_EVENTS: usize = 4096;

/// One rule that fired on one definition or message, and what was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `poisoning`, `secrets` or `pii`.
    pub guard: &'static str,
    /// What the finding is about: a listed definition, or the target of
    /// the request whose answer (or arguments) carried it.
    pub kind: ListedKind,
    /// The definition's or target's name (or URI), at most [`MAX_SHOWN`]
    /// bytes.
    pub name: String,
    pub rule: &'static str,
    pub field: String,
    /// `flag`, `strip`, `hide`, `redact`, `block`, or in shadow mode
    /// `shadow-<action>`.
    pub action: &'static str,
}

/// Longest name or place a finding keeps, in bytes.
pub const MAX_SHOWN: usize = 200;

/// How a finding names its action: as done, or in shadow mode as what
/// would have been done (`shadow-hide`, ...).
pub fn shown(action: &'static str, shadow: bool) -> &'static str {
    if !shadow {
        return action;
    }
    match action {
        "hide" => "shadow-hide",
        "strip" => "shadow-strip",
        "redact" => "shadow-redact",
        "block" => "shadow-block",
        _ => "shadow-flag",
    }
}

/// `s` cut to at most `max` bytes, on a character boundary: names and
/// places in findings are bounded whatever a server sends.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// See the module documentation.
#[derive(Default)]
pub struct ContentBook {
    hidden: RwLock<HashMap<(ListedKind, String), &'static str>>,
    /// Tool names seen listed (on any page): `tool-shadowing` looks for
    /// orders about them.
    tools_seen: RwLock<BTreeSet<String>>,
    events: Mutex<VecDeque<Finding>>,
    dropped: Mutex<u64>,
}

impl std::fmt::Debug for ContentBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentBook")
            .field("hidden", &self.hidden.read().len())
            .finish_non_exhaustive()
    }
}

impl ContentBook {
    pub fn new() -> Self {
        Self::default()
    }

    /// Hides `name` by `rule`; false when the book is full.
    pub fn hide(&self, kind: ListedKind, name: &str, rule: &'static str) -> bool {
        let mut h = self.hidden.write();
        let key = (kind, name.to_owned());
        if h.len() >= MAX_HIDDEN && !h.contains_key(&key) {
            return false;
        }
        h.insert(key, rule);
        true
    }

    /// A definition listed again without a finding that hides it.
    pub fn unhide(&self, kind: ListedKind, name: &str) {
        if self.hidden.read().is_empty() {
            return;
        }
        self.hidden.write().remove(&(kind, name.to_owned()));
    }

    /// The rule that hides `name`, if one does.
    pub fn hidden_by(&self, kind: ListedKind, name: &str) -> Option<&'static str> {
        let h = self.hidden.read();
        if h.is_empty() {
            return None;
        }
        h.get(&(kind, name.to_owned())).copied()
    }

    /// Remembers tool names listed (at most [`MAX_HIDDEN`]).
    pub fn saw_tools<'n>(&self, names: impl IntoIterator<Item = &'n str>) {
        let mut seen = self.tools_seen.write();
        for n in names {
            if seen.len() >= MAX_HIDDEN {
                break;
            }
            if !seen.contains(n) {
                seen.insert(n.to_owned());
            }
        }
    }

    /// The tool names seen listed so far.
    pub fn tools_seen(&self) -> Vec<String> {
        self.tools_seen.read().iter().cloned().collect()
    }

    /// Queues a finding for the proxy.
    pub fn record(&self, f: Finding) {
        let mut q = self.events.lock();
        if q.len() >= MAX_EVENTS {
            q.pop_front();
            *self.dropped.lock() += 1;
        }
        q.push_back(f);
    }

    /// The findings queued since the last call, and how many were dropped.
    pub fn take_events(&self) -> (Vec<Finding>, u64) {
        let events: Vec<Finding> = self.events.lock().drain(..).collect();
        let dropped = std::mem::take(&mut *self.dropped.lock());
        (events, dropped)
    }
}
