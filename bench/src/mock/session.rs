//! Legacy (2025-11-25) session state: one [`Session`] per `initialize`.
//!
//! A session owns its SSE streams (the standalone GET stream is stream 0, each
//! streaming POST gets its own id), a bounded log of the events sent on them
//! (for `Last-Event-ID` resumption), the server-to-client requests awaiting an
//! answer, and the cancellation flags of its in-flight requests. All of it sits
//! behind one per-session mutex that is never held across an `.await`; plain
//! JSON requests only read the session's immutable fields.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::body::Body;
use super::cancel::Cancel;
use super::sse;

/// Stream id of the standalone GET stream.
pub const STANDALONE: u64 = 0;
/// Most events kept per session for resumption.
const LOG_EVENTS: usize = 256;
/// Most event bytes kept per session for resumption.
const LOG_BYTES: usize = 1024 * 1024;
/// Events larger than this are delivered but not kept for resumption.
const LOG_EVENT_MAX: usize = 256 * 1024;
/// Most concurrently open SSE streams per session.
const MAX_STREAMS: usize = 256;
/// Most server-to-client requests awaiting an answer per session.
const MAX_PENDING: usize = 64;
/// Most cancellable in-flight requests tracked per session.
const MAX_INFLIGHT: usize = 1024;

/// Log levels in increasing severity (`logging/setLevel`).
pub const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// One logged SSE event.
#[derive(Debug)]
struct Event {
    id: u64,
    stream: u64,
    bytes: Bytes,
    last: bool,
}

/// Mutable session state, behind the session mutex.
#[derive(Debug, Default)]
struct State {
    next_event_id: u64,
    next_stream_id: u64,
    next_request_id: u64,
    log: VecDeque<Event>,
    log_bytes: usize,
    streams: HashMap<u64, mpsc::Sender<Bytes>>,
    standalone_gen: u64,
    pending: HashMap<String, oneshot::Sender<Value>>,
    inflight: HashMap<String, Arc<Cancel>>,
}

/// What a `Last-Event-ID` resumption produced.
#[derive(Debug)]
pub enum Resumed {
    /// The id is not in the log (never sent, or evicted).
    Unknown,
    /// Replay body; `Some(gen)` when it continues as the standalone stream.
    Body(Body, Option<u64>),
}

/// One legacy session.
#[derive(Debug)]
pub struct Session {
    /// The `Mcp-Session-Id`.
    pub id: String,
    /// The negotiated protocol version.
    pub version: String,
    /// Whether the client declared the `sampling` capability.
    pub client_sampling: bool,
    /// Index into [`LEVELS`] below which log notifications are not sent.
    pub log_level: AtomicU8,
    /// Log ticks sent on the standalone stream (numbering survives reconnects).
    pub ticks: AtomicU64,
    pub(super) last_seen_ms: AtomicU64,
    closed: AtomicBool,
    state: Mutex<State>,
    /// Log bytes held by all sessions together (shared budget).
    log_budget: Arc<AtomicUsize>,
    log_budget_max: usize,
}

impl Session {
    pub(super) fn new(
        id: String,
        version: String,
        client_sampling: bool,
        log_budget: Arc<AtomicUsize>,
        log_budget_max: usize,
    ) -> Self {
        Self {
            id,
            version,
            client_sampling,
            log_level: AtomicU8::new(0),
            ticks: AtomicU64::new(0),
            last_seen_ms: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            state: Mutex::new(State {
                next_event_id: 1,
                next_stream_id: 1,
                next_request_id: 1,
                ..State::default()
            }),
            log_budget,
            log_budget_max,
        }
    }

    /// Whether this session negotiated 2025-11-25 or later (priming events).
    pub fn primes_streams(&self) -> bool {
        self.version.as_str() >= "2025-11-25"
    }

    /// Whether `DELETE` or expiry ended this session.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// End the session: close its streams and fail its pending requests.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut st = self.state.lock();
        st.streams.clear();
        st.pending.clear();
        for cancel in st.inflight.values() {
            cancel.cancel();
        }
        st.inflight.clear();
    }

    /// Whether any stream of this session still has a connected client.
    pub fn has_live_stream(&self) -> bool {
        self.state.lock().streams.values().any(|tx| !tx.is_closed())
    }

    /// Open a new POST response stream; `None` when too many are open.
    pub fn open_stream(&self) -> Option<(u64, Body)> {
        let mut st = self.state.lock();
        st.streams.retain(|_, tx| !tx.is_closed());
        if st.streams.len() >= MAX_STREAMS {
            return None;
        }
        let id = st.next_stream_id;
        st.next_stream_id += 1;
        let (tx, body) = Body::channel();
        st.streams.insert(id, tx);
        Some((id, body))
    }

    /// (Re)attach the standalone GET stream; returns its body and generation.
    /// A previous standalone stream is closed.
    pub fn attach_standalone(&self) -> (Body, u64) {
        let (tx, body) = Body::channel();
        let mut st = self.state.lock();
        st.streams.insert(STANDALONE, tx);
        st.standalone_gen += 1;
        (body, st.standalone_gen)
    }

    /// Whether the standalone stream of generation `gen` is still connected.
    pub fn standalone_live(&self, gen: u64) -> bool {
        let st = self.state.lock();
        !self.is_closed()
            && st.standalone_gen == gen
            && st
                .streams
                .get(&STANDALONE)
                .is_some_and(|tx| !tx.is_closed())
    }

    /// Send the priming event (id, empty data, `retry:`) on `stream`.
    pub async fn prime(&self, stream: u64) -> bool {
        let (bytes, tx) = {
            let mut st = self.state.lock();
            let id = st.next_event_id;
            st.next_event_id += 1;
            let bytes = sse::priming(id);
            self.log_event(&mut st, id, stream, bytes.clone(), false);
            (bytes, st.streams.get(&stream).cloned())
        };
        deliver(tx, bytes).await
    }

    /// Send `msg` on `stream`, logging it for resumption. `last` marks the
    /// stream's final message: the stream closes after it. Returns whether a
    /// connected client was there to take it.
    pub async fn emit(&self, stream: u64, msg: &Value, last: bool) -> bool {
        let (bytes, tx) = {
            let mut st = self.state.lock();
            let id = st.next_event_id;
            st.next_event_id += 1;
            let bytes = sse::event(Some(id), msg);
            self.log_event(&mut st, id, stream, bytes.clone(), last);
            let tx = if last {
                st.streams.remove(&stream)
            } else {
                st.streams.get(&stream).cloned()
            };
            (bytes, tx)
        };
        deliver(tx, bytes).await
    }

    /// Close `stream` without a final message.
    pub fn close_stream(&self, stream: u64) {
        self.state.lock().streams.remove(&stream);
    }

    fn log_event(&self, st: &mut State, id: u64, stream: u64, bytes: Bytes, last: bool) {
        let len = bytes.len();
        if len > LOG_EVENT_MAX {
            return;
        }
        self.log_budget.fetch_add(len, Ordering::AcqRel);
        st.log.push_back(Event {
            id,
            stream,
            bytes,
            last,
        });
        st.log_bytes += len;
        // Evict oldest first; under global memory pressure even the new event.
        while st.log.len() > LOG_EVENTS
            || st.log_bytes > LOG_BYTES
            || self.log_budget.load(Ordering::Acquire) > self.log_budget_max
        {
            let Some(old) = st.log.pop_front() else { break };
            st.log_bytes -= old.bytes.len();
            self.log_budget.fetch_sub(old.bytes.len(), Ordering::AcqRel);
        }
    }

    /// Resume the stream that carried event `last_id`: replay what followed
    /// it, then follow the stream live if it is still open.
    pub fn resume(&self, last_id: u64) -> Resumed {
        let mut st = self.state.lock();
        let Some(stream) = st.log.iter().find(|e| e.id == last_id).map(|e| e.stream) else {
            return Resumed::Unknown;
        };
        let replay: Vec<&Event> = st
            .log
            .iter()
            .filter(|e| e.stream == stream && e.id > last_id)
            .collect();
        let finished = replay.iter().any(|e| e.last)
            || (stream != STANDALONE && !st.streams.contains_key(&stream));
        let queued = replay.iter().map(|e| e.bytes.clone()).collect();
        if finished {
            return Resumed::Body(Body::stream(queued, None), None);
        }
        let (tx, rx) = mpsc::channel(super::body::STREAM_CAPACITY);
        st.streams.insert(stream, tx);
        let gen = (stream == STANDALONE).then(|| {
            st.standalone_gen += 1;
            st.standalone_gen
        });
        Resumed::Body(Body::stream(queued, Some(rx)), gen)
    }

    /// A fresh id for a server-to-client request.
    pub fn next_request_id(&self) -> String {
        let mut st = self.state.lock();
        let n = st.next_request_id;
        st.next_request_id += 1;
        format!("srv-{n}")
    }

    /// Await the client's answer to request `key`; `None` when too many wait.
    pub fn register_pending(&self, key: String) -> Option<oneshot::Receiver<Value>> {
        let mut st = self.state.lock();
        st.pending.retain(|_, tx| !tx.is_closed());
        if st.pending.len() >= MAX_PENDING || self.is_closed() {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        st.pending.insert(key, tx);
        Some(rx)
    }

    /// Hand a client response to whoever awaits `key`; false if nobody does.
    pub fn complete_pending(&self, key: &str, response: Value) -> bool {
        let tx = self.state.lock().pending.remove(key);
        tx.is_some_and(|tx| tx.send(response).is_ok())
    }

    /// Forget request `key` (timed out).
    pub fn drop_pending(&self, key: &str) {
        self.state.lock().pending.remove(key);
    }

    /// Track an in-flight request so `notifications/cancelled` can reach it.
    pub fn register_inflight(&self, key: String) -> Arc<Cancel> {
        let cancel = Arc::new(Cancel::default());
        let mut st = self.state.lock();
        if st.inflight.len() < MAX_INFLIGHT {
            st.inflight.insert(key, cancel.clone());
        }
        cancel
    }

    /// Stop tracking an in-flight request.
    pub fn finish_inflight(&self, key: &str) {
        self.state.lock().inflight.remove(key);
    }

    /// Cancel in-flight request `key`, if tracked.
    pub fn cancel_inflight(&self, key: &str) {
        if let Some(cancel) = self.state.lock().inflight.remove(key) {
            cancel.cancel();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let bytes = self.state.get_mut().log_bytes;
        self.log_budget.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Push `bytes` to a stream sender, if any, waiting for room.
async fn deliver(tx: Option<mpsc::Sender<Bytes>>, bytes: Bytes) -> bool {
    match tx {
        Some(tx) => tx.send(bytes).await.is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use serde_json::json;

    fn session() -> Session {
        Session::new(
            "s".into(),
            "2025-11-25".into(),
            true,
            Arc::new(AtomicUsize::new(0)),
            1 << 20,
        )
    }

    async fn text(body: Body) -> String {
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn resumes_finished_post_stream() {
        let s = session();
        let (stream, body) = s.open_stream().expect("stream");
        drop(body); // client went away
        s.prime(stream).await;
        assert!(!s.emit(stream, &json!({"n": 1}), false).await);
        s.emit(stream, &json!({"n": 2}), true).await;
        let Resumed::Body(body, None) = s.resume(1) else {
            panic!("expected replay")
        };
        let t = text(body).await;
        assert!(t.contains("id: 2\n") && t.contains("id: 3\n") && !t.contains("id: 1\n"));
        assert!(matches!(s.resume(99), Resumed::Unknown));
    }

    #[tokio::test]
    async fn standalone_generations() {
        let s = session();
        let (_b1, g1) = s.attach_standalone();
        assert!(s.standalone_live(g1));
        let (_b2, g2) = s.attach_standalone();
        assert!(!s.standalone_live(g1) && s.standalone_live(g2));
        s.close();
        assert!(!s.standalone_live(g2));
    }
}
