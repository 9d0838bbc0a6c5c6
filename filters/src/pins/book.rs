//! One pool's pins at run time, and what its listings were seen to do.
//!
//! The response filter calls [`PinBook::observe`] for every entry a listing
//! carries; the call filter asks [`PinBook::allows_call`]. What needs the
//! proxy's attention (a first-seen pin to write to the state file, a changed
//! definition to log, count and share with the other workers) is queued as
//! [`PinEvent`]s that it drains after each listing. Bounded: at most
//! [`MAX_ENTRIES`] names and [`MAX_EVENTS`] queued events. Pure: one lock,
//! no I/O.

use std::collections::HashMap;

use parking_lot::RwLock;
use serde_json::Value;

use super::lock::{changed_key, Pinned, PoolLock};
use super::{Digest, PinKind};

/// Most names (tools and prompts) one book tracks.
pub const MAX_ENTRIES: usize = 10_000;
/// Most events queued between two drains.
pub const MAX_EVENTS: usize = 4_096;

/// Where the book's pins come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinSource {
    /// A reviewed lock file: a name it does not list is not approved.
    Lock,
    /// The first definition each name was listed with.
    FirstSeen,
}

/// What one listed entry is, against its pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Listed as pinned.
    Matches,
    /// Not pinned yet: pinned now (`pin = "first-seen"`).
    FirstSeen,
    /// Listed with a definition other than its pin.
    Changed,
    /// Not in the lock file.
    NotInLock,
    /// Not pinned, and the book is full: not approved (fail closed).
    OverCapacity,
}

impl Verdict {
    /// Whether the listed definition is the approved one.
    pub fn approved(self) -> bool {
        matches!(self, Self::Matches | Self::FirstSeen)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Matches => "matches",
            Self::FirstSeen => "first-seen",
            Self::Changed => "changed",
            Self::NotInLock => "not-in-lock",
            Self::OverCapacity => "over-capacity",
        }
    }
}

/// Something a listing showed that the proxy logs, counts or persists.
#[derive(Debug, Clone, PartialEq)]
pub struct PinEvent {
    pub kind: PinKind,
    pub name: String,
    pub what: EventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// Pinned now; the definition is for the state file.
    FirstSeen(Pinned),
    /// Listed with `listed` instead of the pinned `pinned` (logged once per
    /// new listed digest, not on every listing).
    Changed { pinned: Digest, listed: Digest },
    /// Listed though the lock does not have it (once per name).
    NotInLock,
    /// Listed as pinned again after a change.
    Restored,
    /// Not tracked: the book is full (once per name).
    OverCapacity,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    /// The approved definition, `None` for a name only seen listed (not in
    /// the lock, or over capacity).
    pinned: Option<(Digest, Value)>,
    /// The digest last listed, when it is not the pinned one.
    listed_other: Option<Digest>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<(PinKind, String), Entry>,
    events: Vec<PinEvent>,
    dropped_events: u64,
}

/// One pool's pins. See the module documentation.
pub struct PinBook {
    source: PinSource,
    max_entries: usize,
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for PinBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinBook")
            .field("source", &self.source)
            .field("entries", &self.len())
            .finish()
    }
}

impl PinBook {
    /// A book of the pins of one pool of a lock file (empty: the lock has no
    /// such pool, so nothing the pool lists is approved).
    pub fn from_lock(pool: Option<&PoolLock>) -> Self {
        let book = Self::new(PinSource::Lock, MAX_ENTRIES);
        if let Some(p) = pool {
            let mut inner = book.inner.write();
            for (kind, name, pinned) in p.iter() {
                if let Some(d) = pinned.digest() {
                    inner.entries.insert(
                        (kind, name.to_owned()),
                        Entry {
                            pinned: Some((d, pinned.definition.clone())),
                            listed_other: None,
                        },
                    );
                }
            }
        }
        book
    }

    /// An empty first-seen book.
    pub fn first_seen() -> Self {
        Self::new(PinSource::FirstSeen, MAX_ENTRIES)
    }

    pub fn new(source: PinSource, max_entries: usize) -> Self {
        Self {
            source,
            max_entries,
            inner: RwLock::new(Inner::default()),
        }
    }

    pub fn source(&self) -> PinSource {
        self.source
    }

    /// Judges one listed entry's definition against its pin, pinning it
    /// first when the book pins what it first sees.
    pub fn observe(&self, kind: PinKind, name: &str, definition: &Value) -> Verdict {
        let digest = Digest::of(definition);
        let key = (kind, name.to_owned());
        // The common case, a definition listed as pinned, takes a read lock.
        {
            let inner = self.inner.read();
            if let Some(Entry {
                pinned: Some((d, _)),
                listed_other: None,
            }) = inner.entries.get(&key)
            {
                if *d == digest {
                    return Verdict::Matches;
                }
            }
        }
        let mut inner = self.inner.write();
        let full = inner.entries.len() >= self.max_entries;
        let (verdict, event) = match inner.entries.get_mut(&key) {
            Some(e) => match &e.pinned {
                Some((d, _)) if *d == digest => {
                    let restored = e.listed_other.take().is_some();
                    (Verdict::Matches, restored.then_some(EventKind::Restored))
                }
                Some((d, _)) => {
                    let pinned = *d;
                    let new = e.listed_other.replace(digest) != Some(digest);
                    (
                        Verdict::Changed,
                        new.then_some(EventKind::Changed {
                            pinned,
                            listed: digest,
                        }),
                    )
                }
                None => (self.unpinned_verdict(), None),
            },
            None if full => (Verdict::OverCapacity, None),
            None => match self.source {
                PinSource::FirstSeen => {
                    inner.entries.insert(
                        key.clone(),
                        Entry {
                            pinned: Some((digest, definition.clone())),
                            listed_other: None,
                        },
                    );
                    (
                        Verdict::FirstSeen,
                        Some(EventKind::FirstSeen(Pinned {
                            sha256: digest.to_hex(),
                            definition: definition.clone(),
                        })),
                    )
                }
                PinSource::Lock => {
                    inner.entries.insert(key.clone(), Entry::default());
                    (Verdict::NotInLock, Some(EventKind::NotInLock))
                }
            },
        };
        // A name over capacity is not stored, so it is reported on every
        // listing that carries it.
        let event =
            event.or_else(|| (verdict == Verdict::OverCapacity).then_some(EventKind::OverCapacity));
        if let Some(what) = event {
            if inner.events.len() < MAX_EVENTS {
                inner.events.push(PinEvent {
                    kind,
                    name: name.to_owned(),
                    what,
                });
            } else {
                inner.dropped_events += 1;
            }
        }
        verdict
    }

    fn unpinned_verdict(&self) -> Verdict {
        match self.source {
            PinSource::Lock => Verdict::NotInLock,
            // A first-seen book stores no unpinned entry; kept total.
            PinSource::FirstSeen => Verdict::OverCapacity,
        }
    }

    /// Whether a call of `name` may go on under `on_change = "block"`: its
    /// last listing matched its pin. A name a first-seen book never saw
    /// listed may (nothing is known against it); a name a lock does not
    /// have may not.
    pub fn allows_call(&self, kind: PinKind, name: &str) -> bool {
        let inner = self.inner.read();
        match inner.entries.get(&(kind, name.to_owned())) {
            Some(e) => e.pinned.is_some() && e.listed_other.is_none(),
            None => self.source == PinSource::FirstSeen,
        }
    }

    /// Whether `name` has an approved definition.
    pub fn is_pinned(&self, kind: PinKind, name: &str) -> bool {
        self.inner
            .read()
            .entries
            .get(&(kind, name.to_owned()))
            .is_some_and(|e| e.pinned.is_some())
    }

    /// The events queued since the last drain, and how many were dropped
    /// because the queue was full.
    pub fn take_events(&self) -> (Vec<PinEvent>, u64) {
        let mut inner = self.inner.write();
        (
            std::mem::take(&mut inner.events),
            std::mem::take(&mut inner.dropped_events),
        )
    }

    /// The pinned tools as a `tools/list` page (`name` and `inputSchema`),
    /// for the schema catalog: arguments are checked against the pinned
    /// schema, not whatever was listed last.
    pub fn pinned_tools_listing(&self) -> Vec<Value> {
        let inner = self.inner.read();
        inner
            .entries
            .iter()
            .filter(|((k, _), _)| *k == PinKind::Tool)
            .filter_map(|((_, name), e)| {
                let (_, def) = e.pinned.as_ref()?;
                let schema = def.get("inputSchema")?;
                Some(serde_json::json!({ "name": name, "inputSchema": schema }))
            })
            .collect()
    }

    /// Pins and changes as a state file's pool: what this worker knows.
    pub fn snapshot(&self) -> PoolLock {
        let inner = self.inner.read();
        let mut out = PoolLock::default();
        for ((kind, name), e) in &inner.entries {
            let Some((d, def)) = &e.pinned else { continue };
            out.entries_mut(*kind).insert(
                name.clone(),
                Pinned {
                    sha256: d.to_hex(),
                    definition: def.clone(),
                },
            );
            if let Some(other) = e.listed_other {
                out.changed.insert(changed_key(*kind, name), other.to_hex());
            }
        }
        out
    }

    /// Takes in the instance's shared state (the state file, merged by
    /// every worker): its pins replace this worker's (a first-seen book:
    /// the first worker to write a pin wins), and its `changed` records
    /// replace this worker's (a change one worker saw blocks calls on all).
    pub fn absorb(&self, state: &PoolLock) {
        let mut inner = self.inner.write();
        if self.source == PinSource::FirstSeen {
            for (kind, name, pinned) in state.iter() {
                let Some(d) = pinned.digest() else { continue };
                let key = (kind, name.to_owned());
                if !inner.entries.contains_key(&key) && inner.entries.len() >= self.max_entries {
                    continue;
                }
                let e = inner.entries.entry(key).or_default();
                if e.pinned.as_ref().map(|(p, _)| *p) != Some(d) {
                    e.pinned = Some((d, pinned.definition.clone()));
                    e.listed_other = None;
                }
            }
        }
        for ((kind, name), e) in inner.entries.iter_mut() {
            let Some((pinned, _)) = &e.pinned else {
                continue;
            };
            e.listed_other = state
                .changed
                .get(&changed_key(*kind, name))
                .and_then(|h| Digest::from_hex(h))
                .filter(|d| d != pinned);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
