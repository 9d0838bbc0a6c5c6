//! Pinned definitions on disk: the lock file read at start, and the state
//! file the instance's workers share (`[tools] lock_file`, `pin`,
//! `state_file`).
//!
//! Each pool gets a [`PinBook`] (in [`crate::upstream::pool::Pool`]); the
//! filters judge with it, and this module does the I/O around it:
//!
//! - at start, the lock file is read and checked (a stale hash or an
//!   unreadable file stops the start with the reason), and the state file,
//!   if there is one, is taken in;
//! - before a listing is judged, and every second in the background, a state
//!   file another worker changed is taken in again ([`PinFiles::refresh`]);
//! - after a listing, what the book saw (a first pin, a changed definition,
//!   its end) is logged, counted and merged into the state file under an
//!   advisory lock on `<state_file>.lock`, then the merged state is taken
//!   in: the first worker to pin a name wins, and a change one worker saw
//!   blocks calls on every worker.
//!
//! The schema catalog of a pool with pins learns each tool's pinned
//! `inputSchema` (arguments are checked against what was approved), and
//! from listings only the tools that have no pin.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use filters::pins::book::EventKind;
use filters::pins::lock::changed_key;
use filters::pins::{LockFile, PinBook, PinEvent};
use parking_lot::Mutex;
use policies::{PinMode, Policy};

use crate::gate::McpGate;
use crate::upstream::pool::Pool;

/// Largest lock or state file read.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The pin books of every pool of a policy (empty when pins are off).
pub(crate) fn books(policy: &Policy) -> Result<BTreeMap<String, PinBook>, String> {
    let t = &policy.tools;
    let mut out = BTreeMap::new();
    if let Some(path) = &t.lock_file {
        let lock = read_lock(path)?;
        for pool in &policy.upstreams {
            let pins = lock.pools.get(&pool.name);
            if pins.is_none() {
                tracing::warn!(pool = %pool.name, "tools: the lock file {} has no pool {:?}: nothing it lists is approved", path.display(), pool.name);
            }
            out.insert(pool.name.clone(), PinBook::from_lock(pins));
        }
        for name in lock.pools.keys() {
            if !policy.upstreams.iter().any(|p| &p.name == name) {
                tracing::warn!(
                    "tools: the lock file {} has pool {name:?}, which the configuration does not",
                    path.display()
                );
            }
        }
    } else if t.pin == PinMode::FirstSeen {
        for pool in &policy.upstreams {
            out.insert(pool.name.clone(), PinBook::first_seen());
        }
    }
    Ok(out)
}

/// Reads and checks a lock file.
pub(crate) fn read_lock(path: &Path) -> Result<LockFile, String> {
    let text = read_bounded(path).map_err(|e| format!("{}: {e}", path.display()))?;
    LockFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    let len = std::fs::metadata(path)?.len();
    if len > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "{len} bytes, over the {MAX_FILE_BYTES}-byte limit"
        )));
    }
    std::fs::read_to_string(path)
}

/// The state file of one worker's view: where it is and which version of
/// it was last taken in.
pub(crate) struct PinFiles {
    state_file: Option<PathBuf>,
    /// `(modified, length)` of the version taken in last.
    seen: Mutex<Option<(SystemTime, u64)>>,
}

impl PinFiles {
    pub(crate) fn new(policy: &Policy) -> Self {
        Self {
            state_file: policy
                .tools
                .pins_active()
                .then(|| policy.tools.state_file.clone())
                .flatten(),
            seen: Mutex::new(None),
        }
    }

    /// Takes in the state file when it changed since last time.
    pub(crate) fn refresh(&self, gate: &McpGate) {
        let Some(path) = &self.state_file else {
            return;
        };
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let version = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
        );
        if *self.seen.lock() == Some(version) {
            return;
        }
        match read_bounded(path)
            .map_err(|e| e.to_string())
            .and_then(|t| LockFile::parse_state(&t))
        {
            Ok(state) => {
                *self.seen.lock() = Some(version);
                take_in(gate, &state);
            }
            Err(e) => {
                *self.seen.lock() = Some(version);
                tracing::error!(
                    "tools: the state file {} cannot be read ({e}); pins stay as they were",
                    path.display()
                );
            }
        }
    }

    /// Logs and counts what `pool`'s book saw since the last call, and
    /// merges it into the state file.
    pub(crate) fn after_listing(&self, gate: &McpGate, pool: &Pool) {
        let Some(book) = &pool.pins else {
            return;
        };
        let (events, dropped) = book.take_events();
        if dropped > 0 {
            tracing::warn!(pool = %pool.config.name, "tools: {dropped} pin events not recorded (queue full)");
        }
        if events.is_empty() {
            return;
        }
        let name = pool.config.name.as_str();
        let on_change = gate.policy.tools.on_change.as_str();
        let mut pins_changed = false;
        for e in &events {
            report(gate, name, on_change, e);
            pins_changed |= matches!(e.what, EventKind::FirstSeen(_));
        }
        if let Some(path) = &self.state_file {
            match merge_into_state_file(path, name, &events) {
                Ok(state) => {
                    if let Some(p) = state.pools.get(name) {
                        book.absorb(p);
                        pins_changed = true;
                    }
                }
                Err(e) => tracing::error!(
                    pool = name,
                    "tools: the state file {} was not updated: {e}",
                    path.display()
                ),
            }
        }
        // Once, after the shared state was taken in.
        if pins_changed {
            feed_schemas(&gate.policy, pool, book);
        }
    }
}

/// Takes in a whole state file: every pool's pins and changes.
fn take_in(gate: &McpGate, state: &LockFile) {
    for (name, pool) in &gate.pools {
        if let (Some(book), Some(p)) = (&pool.pins, state.pools.get(name)) {
            book.absorb(p);
            feed_schemas(&gate.policy, pool, book);
        }
    }
}

/// The pool's schema catalog learns the pinned schemas (only when calls'
/// arguments are validated: nothing else reads the catalog).
pub(crate) fn feed_schemas(policy: &Policy, pool: &Pool, book: &PinBook) {
    if !policy.tools.validate_arguments {
        return;
    }
    let pinned = book.pinned_tools_listing();
    if !pinned.is_empty() {
        pool.schemas.learn_listing(&pinned);
    }
}

fn report(gate: &McpGate, pool: &str, on_change: &str, e: &PinEvent) {
    let kind = e.kind.as_str();
    let outcome = match &e.what {
        EventKind::FirstSeen(p) => {
            tracing::info!(
                pool,
                "tools: pinned {kind} {:?} as first listed (sha256 {})",
                e.name,
                p.sha256
            );
            "first-seen"
        }
        EventKind::Changed { pinned, listed } => {
            tracing::warn!(pool, on_change, "tools: {kind} {:?} is listed with a definition that is not the approved one (pinned sha256 {pinned}, listed {listed})", e.name);
            "changed"
        }
        EventKind::NotInLock => {
            tracing::warn!(
                pool,
                on_change,
                "tools: {kind} {:?} is listed but not in the lock file",
                e.name
            );
            "not-in-lock"
        }
        EventKind::Restored => {
            tracing::info!(
                pool,
                "tools: {kind} {:?} is listed as approved again",
                e.name
            );
            "restored"
        }
        EventKind::OverCapacity => {
            tracing::warn!(
                pool,
                "tools: {kind} {:?} not pinned: the pool has {} pinned names already",
                e.name,
                filters::pins::book::MAX_ENTRIES
            );
            "over-capacity"
        }
    };
    gate.metrics
        .tool_pins
        .with_label_values(&[pool, kind, outcome])
        .inc();
}

/// Merges one worker's events into the state file, under the lock, and
/// returns the merged state. A state file that cannot be parsed is left as
/// it is (an error): it may hold pins someone relies on.
fn merge_into_state_file(path: &Path, pool: &str, events: &[PinEvent]) -> Result<LockFile, String> {
    let lock_path = lock_path_of(path);
    let guard = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    guard
        .lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    let mut state = match read_bounded(path) {
        Ok(text) => LockFile::parse_state(&text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => LockFile::default(),
        Err(e) => return Err(e.to_string()),
    };
    let p = state.pools.entry(pool.to_owned()).or_default();
    for e in events {
        match &e.what {
            EventKind::FirstSeen(pinned) => {
                p.entries_mut(e.kind)
                    .entry(e.name.clone())
                    .or_insert_with(|| pinned.clone());
            }
            EventKind::Changed { listed, .. } => {
                p.changed
                    .insert(changed_key(e.kind, &e.name), listed.to_hex());
            }
            EventKind::Restored => {
                p.changed.remove(&changed_key(e.kind, &e.name));
            }
            EventKind::NotInLock | EventKind::OverCapacity => {}
        }
    }
    // A listed digest that is the pin after all (another worker pinned it
    // first) is no change.
    let pinned: BTreeMap<String, String> = p
        .iter()
        .map(|(k, n, pin)| (changed_key(k, n), pin.sha256.clone()))
        .collect();
    p.changed.retain(|k, d| pinned.get(k) != Some(d));
    write_atomically(path, state.to_json().as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    drop(guard);
    Ok(state)
}

fn lock_path_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Writes `bytes` to a temporary file beside `path` and renames it over
/// `path`: a reader sees the old file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests;
