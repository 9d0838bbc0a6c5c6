//! One worker's audit file: appends records as JSON lines, each carrying
//! `seq` (one more than the record before) and `prev` (the SHA-256, hex, of
//! the line before, without its newline; 64 zeros for the first record of
//! a chain), rotates by size or age, and picks the chain up again where a
//! previous process left it.
//!
//! The file is locked (`flock`) while this process writes it, so a new
//! instance started beside a draining one (an upgrade) waits for the old
//! one to let go instead of interleaving two chains in one file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::{Flock, FlockArg};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `prev` of the first record of a chain.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The longest last line read back when a chain is resumed.
const MAX_RESUMED_LINE: u64 = 64 * 1024 * 1024;

/// Where a chain stands: the last record's `seq` and line hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

impl ChainHead {
    pub(crate) fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }
}

/// The SHA-256 of one line, hex.
pub(crate) fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// When the file rotates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rotation {
    /// 0: never by size.
    pub bytes: u64,
    /// `None`: never by age.
    pub age: Option<Duration>,
}

/// The open file of one chain. Records are buffered until [`flush`]
/// (the writer flushes whenever its queue runs empty).
///
/// [`flush`]: ChainFile::flush
pub(crate) struct ChainFile {
    path: PathBuf,
    file: Flock<File>,
    /// Lines appended and not yet written, and how many.
    buf: Vec<u8>,
    buffered: u64,
    head: ChainHead,
    written: u64,
    opened: Instant,
    rotation: Rotation,
}

impl ChainFile {
    /// Opens (or creates) `path`, waiting for its lock, and resumes the
    /// chain from its last complete line. A torn last line (a crash in the
    /// middle of a write) is cut off and reported in the returned warning.
    pub(crate) fn open(path: &Path, rotation: Rotation) -> std::io::Result<(Self, Option<String>)> {
        let (file, head, written, warning) = open_locked(path, None)?;
        Ok((
            Self {
                path: path.to_path_buf(),
                file,
                buf: Vec::new(),
                buffered: 0,
                head,
                written,
                opened: Instant::now(),
                rotation,
            },
            warning,
        ))
    }

    pub(crate) fn head(&self) -> &ChainHead {
        &self.head
    }

    /// Appends one record (buffered): `fields` with `seq` and `prev` added.
    pub(crate) fn append(&mut self, mut fields: Map<String, Value>) -> std::io::Result<()> {
        fields.insert("seq".into(), Value::from(self.head.seq + 1));
        fields.insert("prev".into(), Value::from(self.head.hash.clone()));
        let mut line = serde_json::to_vec(&fields).map_err(std::io::Error::other)?;
        let hash = line_hash(&line);
        line.push(b'\n');
        self.buf.extend_from_slice(&line);
        self.buffered += 1;
        self.head = ChainHead {
            seq: self.head.seq + 1,
            hash,
        };
        self.written += line.len() as u64;
        Ok(())
    }

    /// Writes what is buffered, then rotates the file if it is due;
    /// returns how many records were written. On an error they are lost
    /// (the caller counts them) and the chain's head stays where the buffer
    /// ended, so `verify` shows the gap.
    pub(crate) fn flush(&mut self) -> Result<u64, (u64, std::io::Error)> {
        let n = std::mem::take(&mut self.buffered);
        // The buffer is kept for the next batch.
        let written = if n > 0 {
            self.file.write_all(&self.buf)
        } else {
            Ok(())
        };
        self.buf.clear();
        written.map_err(|e| (n, e))?;
        if self.due() {
            if let Err(e) = self.rotate() {
                tracing::error!(file = %self.path.display(), "audit: rotation failed, the file grows on: {e}");
            }
        }
        Ok(n)
    }

    fn due(&self) -> bool {
        self.written > 0
            && ((self.rotation.bytes > 0 && self.written >= self.rotation.bytes)
                || self
                    .rotation
                    .age
                    .is_some_and(|a| self.opened.elapsed() >= a))
    }

    /// Renames the file to `PATH.<UTC time>` and starts a new one that
    /// continues the chain.
    fn rotate(&mut self) -> std::io::Result<()> {
        let to = rotated_name(&self.path, SystemTime::now());
        std::fs::rename(&self.path, &to)?;
        let (file, _, written, _) = open_locked(&self.path, Some(self.head.clone()))?;
        // The old file's lock goes with its descriptor.
        self.file = file;
        self.written = written;
        self.opened = Instant::now();
        tracing::info!(rotated = %to.display(), "audit: file rotated; the chain goes on in {}", self.path.display());
        Ok(())
    }
}

/// `PATH.<YYYYmmddTHHMMSS.ffffffZ>` (with `.N` added while that exists):
/// rotated files sort by name in the order they were written.
fn rotated_name(path: &Path, now: SystemTime) -> PathBuf {
    let stamp = super::record::utc_compact(now);
    let base = format!("{}.{stamp}", path.display());
    let mut to = PathBuf::from(&base);
    let mut n = 1;
    while to.exists() {
        to = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    to
}

/// Opens `path` for appending under an exclusive lock (waiting for it),
/// and finds the chain's head: `known` when the caller knows it (a file it
/// just rotated away), else the last complete line's.
fn open_locked(
    path: &Path,
    known: Option<ChainHead>,
) -> std::io::Result<(Flock<File>, ChainHead, u64, Option<String>)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    let mut file = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| std::io::Error::other(format!("locking {}: {e}", path.display())))?;
    // While this waited for the lock, the holder may have rotated the file
    // away: the lock is then on the rotated file. Start over on `path`.
    if !same_file(&file, path) {
        drop(file);
        return open_locked(path, known);
    }
    let (head, len, warning) = match known {
        Some(h) => (h, file.metadata()?.len(), None),
        None => resume(&mut file, path)?,
    };
    Ok((file, head, len, warning))
}

/// Whether the open `file` is the one at `path` now.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// The head of the chain in `file` (at `path`): its last complete
/// line's; for an empty file, the last rotated file's. A torn tail (no
/// final newline) is cut off. Returns the head, the file's length after any
/// cut, and a warning about the cut.
fn resume(file: &mut File, path: &Path) -> std::io::Result<(ChainHead, u64, Option<String>)> {
    let len = file.metadata()?.len();
    if len == 0 {
        // A file rotated away last: the chain goes on from there.
        let head = match latest_rotated(path) {
            Some(older) => last_record(&mut File::open(&older)?)?.0,
            None => ChainHead::genesis(),
        };
        return Ok((head, 0, None));
    }
    let (mut head, torn) = last_record(file)?;
    if torn == len {
        // Nothing but a torn record: the chain goes on from the file
        // rotated away before it, if any.
        if let Some(older) = latest_rotated(path) {
            head = last_record(&mut File::open(&older)?)?.0;
        }
    }
    let mut warning = None;
    if torn > 0 {
        // The file is in append mode: cutting needs the length only.
        file.set_len(len - torn)?;
        warning = Some(format!(
            "the last {torn} bytes were a record cut short (a crash mid-write) and were removed"
        ));
    }
    Ok((head, len - torn, warning))
}

/// The head the last complete line of `file` makes (genesis if none), and
/// how many bytes after it are a torn line.
fn last_record(file: &mut File) -> std::io::Result<(ChainHead, u64)> {
    let len = file.metadata()?.len();
    let take = len.min(MAX_RESUMED_LINE);
    file.seek(SeekFrom::Start(len - take))?;
    let mut tail = Vec::with_capacity(take as usize);
    Read::by_ref(file).take(take).read_to_end(&mut tail)?;
    let end = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let torn = (tail.len() - end) as u64;
    let body = &tail[..end.saturating_sub(1)];
    let last = &body[body.iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1)..];
    if end == 0 || last.is_empty() {
        return Ok((ChainHead::genesis(), torn));
    }
    let seq = serde_json::from_slice::<Value>(last)
        .ok()
        .and_then(|v| v.get("seq").and_then(Value::as_u64))
        .unwrap_or(0);
    Ok((
        ChainHead {
            seq,
            hash: line_hash(last),
        },
        torn,
    ))
}

/// The newest file rotated away from `path` (`PATH.<time>[.N]`), if any.
fn latest_rotated(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = format!("{name}.");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .max_by_key(|p| {
            rotation_order(&p.file_name().unwrap_or_default().to_string_lossy()[prefix.len()..])
        })
}

/// Sorts rotated names: the time, then the `.N` of names made in the same
/// microsecond.
fn rotation_order(suffix: &str) -> (String, u64) {
    match suffix.split_once("Z.") {
        Some((time, n)) => (time.to_string(), n.parse().unwrap_or(0)),
        None => (suffix.trim_end_matches('Z').to_string(), 0),
    }
}
