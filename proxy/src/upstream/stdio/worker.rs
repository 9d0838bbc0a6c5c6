//! One stdio worker process: its pipes, and the routing of what it writes
//! back to the requests waiting for it.
//!
//! A reader task takes stdout line by line (one JSON-RPC message per line,
//! at most `max_line_bytes`); a line that is not a JSON object, or a longer
//! one, is garbage: the worker is stopped. Each message goes where it
//! belongs: an answer to the request that registered its id (with the
//! client's own id put back), a progress notification to the request whose
//! token it carries, anything else the worker sends on its own to the
//! newest request in flight or else the session's listening stream
//! (per-session workers only: a shared worker's unsolicited requests are
//! answered with an error, its notifications dropped). When the worker
//! exits, every request still waiting gets a JSON-RPC error. stderr goes to
//! the log, at most [`STDERR_LINES_PER_SEC`] lines a second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::mpsc;

/// Messages buffered for one request before the reader waits for its client.
pub(crate) const ROUTE_BUFFER: usize = 64;
/// stderr lines logged per second per worker; the rest are counted.
pub(crate) const STDERR_LINES_PER_SEC: u32 = 20;
/// How long a worker has to answer `ping` after one of its requests was
/// abandoned before it counts as hung.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request of mcpgate's own got no answer.
#[derive(Debug)]
pub(crate) enum AskError {
    /// Its stdin could not be written.
    Send(String),
    /// It exited first.
    Exited,
    Timeout,
}

/// What a worker tells its pool.
pub(crate) trait WorkerEvents: Send + Sync {
    /// The worker exited (or was stopped); `why` for the log.
    fn exited(&self, worker: &Arc<Worker>, status: String);
    /// The worker answered with a multi-round-trip `requestState` (a retry
    /// carrying it must come back to this worker).
    fn issued_state(&self, _worker: &Arc<Worker>, _state: &str) {}
}

/// Where one request's messages go.
struct Route {
    tx: mpsc::Sender<Value>,
    /// The client's id, put back on the answer (shared workers get ids of
    /// mcpgate's own).
    client_id: Value,
    /// `(worker-side token, client's token)` of a rewritten progress token.
    progress: Option<(String, Value)>,
}

#[derive(Default)]
struct Routes {
    /// Worker-side id (as JSON text) to its route.
    by_id: HashMap<String, Route>,
    /// Worker-side ids in the order their requests began.
    order: Vec<String>,
    /// A progress token (as JSON text) to the worker-side id it belongs to.
    progress: HashMap<String, String>,
    /// The session's listening stream (a legacy GET).
    listener: Option<mpsc::Sender<Value>>,
}

/// One worker process.
pub(crate) struct Worker {
    pub(crate) id: u64,
    pub(crate) pid: Option<u32>,
    pub(crate) pool: String,
    /// Shared workers were initialized by mcpgate and rewrite ids.
    pub(crate) shared: bool,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    routes: Mutex<Routes>,
    alive: AtomicBool,
    next_id: AtomicU64,
    /// Requests sent, for `max_requests_per_worker`.
    pub(crate) served: AtomicU64,
    pub(crate) started: Instant,
    last_used: Mutex<Instant>,
    /// The worker's answer to mcpgate's own `initialize` (shared workers).
    pub(crate) init_result: Mutex<Option<Value>>,
    kill_grace: Duration,
    probing: AtomicBool,
    /// mcpgate stopped it (its exit is no crash).
    stopped: AtomicBool,
    events: Weak<dyn WorkerEvents>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Worker({}, pid {:?})", self.id, self.pid)
    }
}

/// The id as a map key.
pub(crate) fn id_key(id: &Value) -> String {
    serde_json::to_string(id).unwrap_or_default()
}

/// A request registered with a worker: its receiver, and what the worker
/// gets on the wire.
pub(crate) struct Registered {
    pub rx: mpsc::Receiver<Value>,
    /// The worker-side id.
    pub key: String,
    pub worker_id: Value,
}

impl Worker {
    /// Starts the worker's reader tasks; `events` hears of its exit.
    pub(crate) fn start(
        child: tokio::process::Child,
        id: u64,
        pool: &str,
        shared: bool,
        max_line: usize,
        kill_grace: Duration,
        events: Weak<dyn WorkerEvents>,
    ) -> Arc<Self> {
        let mut child = child;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let w = Arc::new(Self {
            id,
            pid: child.id(),
            pool: pool.to_owned(),
            shared,
            stdin: tokio::sync::Mutex::new(stdin),
            routes: Mutex::new(Routes::default()),
            alive: AtomicBool::new(true),
            next_id: AtomicU64::new(1),
            served: AtomicU64::new(0),
            started: Instant::now(),
            last_used: Mutex::new(Instant::now()),
            init_result: Mutex::new(None),
            kill_grace,
            probing: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            events: events.clone(),
        });
        if let Some(out) = stdout {
            tokio::spawn(read_stdout(w.clone(), out, max_line));
        }
        if let Some(err) = stderr {
            tokio::spawn(read_stderr(w.clone(), err));
        }
        let me = w.clone();
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            me.alive.store(false, Ordering::Release);
            me.fail_all("the stdio worker exited");
            if let Some(ev) = events.upgrade() {
                ev.exited(&me, status);
            }
        });
        w
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Whether mcpgate stopped it (else it exited on its own).
    pub(crate) fn was_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub(crate) fn idle_for(&self) -> Duration {
        self.last_used.lock().elapsed()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.routes.lock().by_id.len()
    }

    /// Registers a request: `client_id` is put back on the answer. Shared
    /// workers get an id of mcpgate's own, and a progress token of its own.
    pub(crate) fn register(&self, client_id: &Value, progress: Option<&Value>) -> Registered {
        let (tx, rx) = mpsc::channel(ROUTE_BUFFER);
        let worker_id = if self.shared {
            json!(self.next_id.fetch_add(1, Ordering::Relaxed))
        } else {
            client_id.clone()
        };
        let key = id_key(&worker_id);
        let mut routes = self.routes.lock();
        let progress = progress.map(|client_token| {
            let token = if self.shared {
                format!("\"mcpgate-{}\"", key.trim_matches('"'))
            } else {
                id_key(client_token)
            };
            routes.progress.insert(token.clone(), key.clone());
            (token, client_token.clone())
        });
        routes.by_id.insert(
            key.clone(),
            Route {
                tx,
                client_id: client_id.clone(),
                progress,
            },
        );
        routes.order.push(key.clone());
        *self.last_used.lock() = Instant::now();
        Registered { rx, key, worker_id }
    }

    /// Sends a request of mcpgate's own (under an id of its own) and waits
    /// up to `limit` for its answer, the whole message.
    pub(crate) async fn ask(
        &self,
        method: &str,
        params: Option<Value>,
        limit: Duration,
    ) -> Result<Value, AskError> {
        let id = json!(format!(
            "mcpgate-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        ));
        let (tx, mut rx) = mpsc::channel(ROUTE_BUFFER);
        let key = id_key(&id);
        self.routes.lock().by_id.insert(
            key.clone(),
            Route {
                tx,
                client_id: id.clone(),
                progress: None,
            },
        );
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if let Some(p) = params {
            msg["params"] = p;
        }
        let answered = async {
            self.send(&msg).await.map_err(AskError::Send)?;
            // Messages the worker sends on its own may come this way too.
            loop {
                match rx.recv().await {
                    Some(m) if m.get("id") == Some(&id) && m.get("method").is_none() => {
                        return Ok(m)
                    }
                    Some(_) => continue,
                    None => return Err(AskError::Exited),
                }
            }
        };
        let answer = tokio::time::timeout(limit, answered)
            .await
            .unwrap_or(Err(AskError::Timeout));
        self.unregister(&key);
        answer
    }

    /// After one of its requests was abandoned (a deadline, a client that
    /// left): a worker that does not answer `ping` within
    /// [`PROBE_TIMEOUT`] is hung, and stopped (its requests fail, its
    /// session ends).
    pub(crate) fn probe(self: &Arc<Self>) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let alive = me.ask("ping", None, PROBE_TIMEOUT).await;
            if alive.is_err() && me.is_alive() {
                me.stop(&format!(
                    "hung: no answer to ping within {} s after a request was abandoned",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            me.probing.store(false, Ordering::Release);
        });
    }

    /// The progress token the worker gets for a registered request.
    pub(crate) fn worker_progress_token(&self, key: &str) -> Option<Value> {
        let routes = self.routes.lock();
        let (token, _) = routes.by_id.get(key)?.progress.as_ref()?;
        serde_json::from_str(token).ok()
    }

    /// Forgets a request (answered, or abandoned by its client).
    pub(crate) fn unregister(&self, key: &str) -> bool {
        let mut routes = self.routes.lock();
        let Some(route) = routes.by_id.remove(key) else {
            return false;
        };
        routes.order.retain(|k| k != key);
        if let Some((token, _)) = route.progress {
            routes.progress.remove(&token);
        }
        true
    }

    /// Opens the session's listening stream; `None` when one is open.
    pub(crate) fn listen(&self) -> Option<mpsc::Receiver<Value>> {
        let mut routes = self.routes.lock();
        if routes.listener.as_ref().is_some_and(|l| !l.is_closed()) {
            return None;
        }
        let (tx, rx) = mpsc::channel(ROUTE_BUFFER);
        routes.listener = Some(tx);
        Some(rx)
    }

    /// Writes one message, as one line, to the worker's stdin.
    pub(crate) async fn send(&self, msg: &Value) -> Result<(), String> {
        let mut line = serde_json::to_vec(msg).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        let Some(pipe) = stdin.as_mut() else {
            return Err("the stdio worker's stdin is closed".into());
        };
        *self.last_used.lock() = Instant::now();
        let written = async {
            pipe.write_all(&line).await?;
            pipe.flush().await
        };
        match tokio::time::timeout(Duration::from_secs(10), written).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("writing to the stdio worker: {e}")),
            Err(_) => Err("the stdio worker does not read its stdin".into()),
        }
    }

    /// Writes raw bytes to stdin (tests: what a broken peer would send).
    #[cfg(test)]
    pub(crate) async fn send_raw_for_test(&self, bytes: &[u8]) {
        if let Some(pipe) = self.stdin.lock().await.as_mut() {
            let _ = pipe.write_all(bytes).await;
            let _ = pipe.flush().await;
        }
    }

    /// Stops the worker: its stdin closed, SIGTERM to its process group,
    /// SIGKILL after the grace period.
    pub(crate) fn stop(self: &Arc<Self>, why: &str) {
        self.stopped.store(true, Ordering::Release);
        tracing::info!(pool = %self.pool, worker = self.id, pid = ?self.pid, "stopping stdio worker: {why}");
        self.fail_all(why);
        let me = self.clone();
        tokio::spawn(async move {
            me.stdin.lock().await.take();
            let Some(pid) = me.pid else { return };
            let group = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + me.kill_grace;
            while me.is_alive() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The group, even when the leader is gone: what it started may
            // still run.
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        });
    }

    /// Answers every waiting request with an error.
    fn fail_all(&self, why: &str) {
        let routes = std::mem::take(&mut *self.routes.lock());
        for (_, route) in routes.by_id {
            let _ = route
                .tx
                .try_send(json!({"jsonrpc": "2.0", "id": route.client_id,
                "error": {"code": -32603, "message": format!("upstream unavailable: {why}")}}));
        }
    }

    /// Routes one message the worker wrote.
    async fn deliver(self: &Arc<Self>, mut msg: Value) {
        let is_answer = msg.get("method").is_none()
            && (msg.get("result").is_some() || msg.get("error").is_some());
        if is_answer {
            let Some(key) = msg.get("id").map(id_key) else {
                return;
            };
            let route = {
                let mut routes = self.routes.lock();
                let route = routes.by_id.remove(&key);
                routes.order.retain(|k| k != &key);
                if let Some((token, _)) = route.as_ref().and_then(|r| r.progress.as_ref()) {
                    routes.progress.remove(token);
                }
                route
            };
            if let Some(state) = msg.pointer("/result/requestState").and_then(Value::as_str) {
                if let Some(ev) = self.events.upgrade() {
                    ev.issued_state(self, state);
                }
            }
            match route {
                Some(r) => {
                    msg["id"] = r.client_id;
                    let _ = r.tx.send(msg).await;
                }
                None => {
                    tracing::debug!(pool = %self.pool, worker = self.id, "answer to no request in flight (id {key}); dropped")
                }
            }
            return;
        }
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if method == "notifications/progress" {
            let token = msg.pointer("/params/progressToken").map(id_key);
            let target = {
                let routes = self.routes.lock();
                token
                    .and_then(|t| routes.progress.get(&t).cloned())
                    .and_then(|k| {
                        routes
                            .by_id
                            .get(&k)
                            .map(|r| (r.tx.clone(), r.progress.clone()))
                    })
            };
            if let Some((tx, progress)) = target {
                if let (Some((_, client_token)), Some(p)) = (progress, msg.get_mut("params")) {
                    p["progressToken"] = client_token;
                }
                let _ = tx.send(msg).await;
            }
            return;
        }
        let is_request = msg.get("id").is_some();
        // A 2026-07-28 subscription's notification names its listen
        // request: to that request's stream, under the client's id.
        const SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";
        if let Some(sub) = msg
            .pointer("/params/_meta")
            .and_then(|m| m.get(SUBSCRIPTION))
            .map(id_key)
        {
            let target = {
                let routes = self.routes.lock();
                routes
                    .by_id
                    .get(&sub)
                    .map(|r| (r.tx.clone(), r.client_id.clone()))
            };
            if let Some((tx, client_id)) = target {
                if let Some(meta) = msg
                    .pointer_mut("/params/_meta")
                    .and_then(Value::as_object_mut)
                {
                    meta.insert(SUBSCRIPTION.into(), client_id);
                }
                let _ = tx.send(msg).await;
                return;
            }
        }
        if self.shared {
            if is_request {
                let id = msg["id"].clone();
                let _ = self
                    .send(&json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601,
                        "message": format!("{method} is not available through a shared stdio pool")}}))
                    .await;
            }
            tracing::debug!(pool = %self.pool, worker = self.id, method, "shared worker's own message not relayed");
            return;
        }
        // Sent on the worker's own: to the newest request in flight (its
        // stream is open), else to the session's listening stream.
        let tx = {
            let routes = self.routes.lock();
            routes
                .order
                .last()
                .and_then(|k| routes.by_id.get(k))
                .map(|r| r.tx.clone())
                .or_else(|| routes.listener.clone().filter(|l| !l.is_closed()))
        };
        match tx {
            Some(tx) => {
                let _ = tx.send(msg).await;
            }
            None if is_request => {
                let id = msg["id"].clone();
                let _ = self
                    .send(
                        &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603,
                        "message": "no client stream is open to carry this request"}}),
                    )
                    .await;
            }
            None => {
                tracing::debug!(pool = %self.pool, worker = self.id, method, "no client stream open; notification dropped")
            }
        }
    }
}

async fn read_stdout(w: Arc<Worker>, out: ChildStdout, max_line: usize) {
    let mut reader = BufReader::new(out);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = match (&mut reader)
            .take(max_line as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::info!(pool = %w.pool, worker = w.id, "reading the stdio worker's stdout: {e}");
                return;
            }
        };
        if n == 0 {
            return;
        }
        if line.len() > max_line {
            w.stop(&format!("wrote a line over {max_line} bytes to stdout"));
            return;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Value>(text) {
            Ok(msg) if msg.is_object() => w.deliver(msg).await,
            _ => {
                w.stop("wrote something that is not a JSON-RPC message to stdout");
                return;
            }
        }
    }
}

async fn read_stderr(w: Arc<Worker>, err: ChildStderr) {
    let mut lines = BufReader::new(err).lines();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let (mut logged, mut dropped) = (0u32, 0u64);
    let report = |dropped: &mut u64| {
        if *dropped > 0 {
            tracing::info!(pool = %w.pool, worker = w.id, "stdio worker stderr: {dropped} lines not logged (rate limit)");
            *dropped = 0;
        }
    };
    loop {
        let line = tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(l)) => l,
                _ => break,
            },
            _ = tick.tick() => {
                report(&mut dropped);
                logged = 0;
                continue;
            }
        };
        if logged < STDERR_LINES_PER_SEC {
            logged += 1;
            let shown: String = line.chars().take(1024).collect();
            tracing::info!(pool = %w.pool, worker = w.id, "stdio worker stderr: {shown}");
        } else {
            dropped += 1;
        }
    }
    report(&mut dropped);
}
