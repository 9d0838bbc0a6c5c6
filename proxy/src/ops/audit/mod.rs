//! `[audit]`: the audit trail, one JSON line per request.
//!
//! Each record says who (tenant, subject, a digest of the session id),
//! what (method, tool, request id, a digest of the arguments, the values
//! only with `arguments = "values"`), what mcpgate decided (`admitted`, or
//! `refused` with the kind, filter, rule and JSON-RPC code), how the answer
//! ended and how long it took, where (instance, worker) and when. Records
//! are chained ([`chain`]): `mcpgate audit verify` ([`verify`]) finds the
//! first one changed, removed or reordered.
//!
//! Writing never blocks a request: each worker hands its records to a
//! bounded queue that one thread of its own drains into its own file. A
//! record over the queue is dropped and counted (`on_full = "drop"`), or,
//! with `"block"`, waits for a place (the answer has gone out; the
//! connection's next request waits with it), so no record is ever lost.
//! Counted in `mcpgate_audit_records_total{outcome}`.

mod chain;
pub(crate) mod record;
pub(crate) mod verify;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use policies::{AuditPolicy, OnFull};
use prometheus::IntCounterVec;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

pub(crate) use record::{Note, Writer};

/// Most records written in one go.
const MAX_BATCH: u64 = 1024;
/// The writer rests this long after a write that emptied the queue: under
/// load, one wake-up and one `write` carry many records instead of one
/// each (a record reaches the file at most this much later).
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// Runs one request's handling, noting what it learns when `on` (the
/// trail is on); the note is `None` otherwise.
pub(crate) async fn noting_if<F: std::future::Future>(
    on: bool,
    fut: F,
) -> (F::Output, Option<Note>) {
    if on {
        let (out, note) = record::noting(fut).await;
        (out, Some(note))
    } else {
        (fut.await, None)
    }
}

/// One worker's audit trail.
pub(crate) struct AuditTrail {
    queue: mpsc::Sender<Map<String, Value>>,
    on_full: OnFull,
    counts: IntCounterVec,
    /// Records queued and not yet written (or failed).
    pending: Arc<AtomicU64>,
    pub(crate) argument_values: bool,
    /// The file this worker writes.
    pub(crate) path: PathBuf,
    /// Who writes: the instance id (hex) and the worker's index.
    instance: String,
    worker: usize,
}

/// The file worker `index` of `workers` writes: `path` itself for a single
/// worker, else `-wN` before the extension (`audit-w1.jsonl`).
pub(crate) fn worker_path(path: &Path, index: usize, workers: usize) -> PathBuf {
    if workers <= 1 {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-w{index}.{}", ext.to_string_lossy()),
        None => format!("{stem}-w{index}"),
    };
    path.with_file_name(name)
}

impl AuditTrail {
    /// Starts the writer thread of worker `me`'s file ([`worker_path`]).
    /// The file is opened (and its lock awaited) by that thread, so a start
    /// beside a draining instance does not wait here; meanwhile records fill
    /// the queue, and what does not fit is dropped or waits, as `on_full`
    /// says.
    pub(crate) fn start(
        policy: &AuditPolicy,
        me: &crate::ops::worker_identity::WorkerIdentity,
        counts: IntCounterVec,
    ) -> Self {
        let file = worker_path(&policy.path, me.index, me.workers);
        let (tx, mut rx) = mpsc::channel::<Map<String, Value>>(policy.queue);
        let rotation = chain::Rotation {
            bytes: policy.rotate_bytes,
            age: (policy.rotate_secs > 0).then(|| Duration::from_secs(policy.rotate_secs)),
        };
        let path = file.clone();
        let thread_counts = counts.clone();
        let pending = Arc::new(AtomicU64::new(0));
        let thread_pending = pending.clone();
        let spawned = std::thread::Builder::new()
            .name("mcpgate-audit".into())
            .spawn(move || {
                let mut out = match chain::ChainFile::open(&path, rotation) {
                    Ok((f, warning)) => {
                        if let Some(w) = warning {
                            tracing::warn!(file = %path.display(), "audit: {w}");
                        }
                        tracing::info!(file = %path.display(), seq = f.head().seq, "audit: writing the trail");
                        f
                    }
                    Err(e) => {
                        tracing::error!(file = %path.display(), "audit: cannot open the trail: {e}; records are counted as failed");
                        while rx.blocking_recv().is_some() {
                            thread_counts.with_label_values(&["failed"]).inc();
                            thread_pending.fetch_sub(1, Ordering::AcqRel);
                        }
                        return;
                    }
                };
                // Whatever is queued goes out in one write.
                while let Some(first) = rx.blocking_recv() {
                    let mut taken = 0u64;
                    let mut next = Some(first);
                    while let Some(rec) = next {
                        taken += 1;
                        if let Err(e) = out.append(rec) {
                            thread_counts.with_label_values(&["failed"]).inc();
                            tracing::error!(file = %path.display(), "audit: a record was not written: {e}");
                        }
                        next = if taken < MAX_BATCH { rx.try_recv().ok() } else { None };
                    }
                    match out.flush() {
                        Ok(n) => thread_counts.with_label_values(&["written"]).inc_by(n),
                        Err((n, e)) => {
                            thread_counts.with_label_values(&["failed"]).inc_by(n);
                            tracing::error!(file = %path.display(), "audit: {n} records were not written: {e}");
                        }
                    }
                    thread_pending.fetch_sub(taken, Ordering::AcqRel);
                    if taken < MAX_BATCH {
                        std::thread::sleep(BATCH_PAUSE);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("audit: cannot start the writer thread: {e}");
        }
        Self {
            queue: tx,
            on_full: policy.on_full,
            counts,
            pending,
            argument_values: policy.arguments == policies::AuditArguments::Values,
            path: file,
            instance: hex::encode(me.instance),
            worker: me.index,
        }
    }

    /// Writes the record of one request (none for a request handed to the
    /// worker owning its session: that worker writes it); with
    /// `on_full = "block"` waits for a place in the queue.
    pub(crate) async fn write(
        &self,
        note: &Note,
        http_method: &str,
        status: Option<u16>,
        elapsed: Duration,
    ) {
        if note.handed_over {
            return;
        }
        let by = Writer {
            instance: &self.instance,
            worker: self.worker,
            argument_values: self.argument_values,
        };
        let rec = record::record(
            note,
            &by,
            http_method,
            status,
            elapsed,
            std::time::SystemTime::now(),
        );
        self.pending.fetch_add(1, Ordering::AcqRel);
        let sent = match self.on_full {
            OnFull::Block => self.queue.send(rec).await.map_err(|_| ()),
            OnFull::Drop => self.queue.try_send(rec).map_err(|_| ()),
        };
        if sent.is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.counts.with_label_values(&["dropped"]).inc();
        }
    }

    /// Waits (up to `limit`) until every queued record is written: a
    /// draining worker's last records reach the file before it exits.
    pub(crate) fn flush(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while self.pending.load(Ordering::Acquire) > 0 {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}
