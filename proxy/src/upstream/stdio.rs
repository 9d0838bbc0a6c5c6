//! Stdio upstreams: MCP servers that speak only stdio, run as worker
//! processes mcpgate spawns and pools itself (`[upstreams.NAME] command`).
//!
//! To the rest of the proxy a stdio pool is one more endpoint: the forwarder
//! builds the same upstream request as for an HTTP server, and
//! [`StdioPool::send`] answers it the way a Streamable HTTP server would
//! ([`answer::StdioAnswer`]), so the relay, the response phase, sessions,
//! deadlines and breakers work unchanged. Behind it:
//!
//! - **per-session** (`mode = "per-session"`): a legacy `initialize` takes a
//!   warm worker (spawned ahead, not yet initialized) or spawns one; the
//!   session id the proxy seals names it. The client's messages go to it as
//!   they are; what the worker sends on its own reaches the client on the
//!   newest request's stream or its listening GET. DELETE, idle expiry or
//!   the worker's exit end the session (the client then gets 404).
//! - **shared** (`mode = "shared"`, and every stateless 2026-07-28 request):
//!   long-lived workers mcpgate initialized itself, multiplexed by rewriting
//!   request ids and progress tokens (restored on the way back). A legacy
//!   session is answered `initialize` from the worker's own answer. A
//!   2026-07-28 request is sent as 2025-11-25 (its `_meta` protocol keys
//!   removed), `server/discover` is answered from the worker's
//!   `initialize`, and results gain `resultType` and caching hints.
//!   Cannot be mapped: requests a shared worker sends on its own (sampling,
//!   elicitation, roots: answered -32601), its unsolicited notifications
//!   (dropped), `subscriptions/listen` (-32601).
//!
//! A worker that exits, writes garbage or an over-long line fails its
//! requests with JSON-RPC errors and is replaced; one that keeps exiting
//! young is respawned with a growing delay, and meanwhile new work gets
//! 503 (which the pool's breaker counts). Every spawn and exit is logged
//! (command, pid, tenant, session, status, lifetime) and counted.

pub(crate) mod answer;
pub(crate) mod launch;
pub(crate) mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use pingora::http::RequestHeader;
use policies::{StdioMode, StdioSpec};
use prometheus::IntCounterVec;
use serde_json::{json, Value};

use answer::{InFlight, StdioAnswer};
use worker::{AskError, Worker, WorkerEvents};

use crate::upstream::client::SendError;

/// The revision mcpgate speaks to stdio workers.
const WORKER_VERSION: &str = "2025-11-25";
const MODERN: &str = "2026-07-28";
/// A worker that exits younger than this counts toward the respawn delay.
const YOUNG: Duration = Duration::from_secs(5);
/// Longest respawn delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Requests in flight on every shared worker before another is started.
const SHARED_BUSY: usize = 16;
/// Most `requestState`s remembered per pool.
const MAX_REQUEST_STATES: usize = 10_000;
/// How long an answer may take to be sent as one JSON body; a slower one
/// becomes an event stream, so the relay's deadlines (which restart with
/// each progress notification) govern it as they govern any stream.
const JSON_WAIT: Duration = Duration::from_millis(250);
/// The internal header carrying the caller's tenant to the pool (it never
/// leaves the process).
pub(crate) const TENANT_HEADER: &str = "x-mcpgate-tenant";

#[derive(Default)]
struct State {
    /// Per-session: session token → its worker.
    sessions: HashMap<String, Arc<Worker>>,
    /// Per-session: spawned, not yet initialized.
    warm: Vec<Arc<Worker>>,
    /// Initialized by mcpgate, multiplexed.
    shared: Vec<Arc<Worker>>,
    /// Speaking 2026-07-28 themselves (never initialized), multiplexed.
    modern: Vec<Arc<Worker>>,
    /// Shared workers being replaced: stopped once idle.
    retiring: Vec<Arc<Worker>>,
    /// Legacy sessions served by shared workers: token → version.
    shared_sessions: HashMap<String, Instant>,
    /// Live workers.
    live: usize,
    /// Consecutive young exits, and when the next spawn may happen.
    young_exits: u32,
    not_before: Option<Instant>,
}

struct Inner {
    pool: String,
    spec: StdioSpec,
    state: Mutex<State>,
    next_worker: AtomicU64,
    /// Serializes starting shared workers.
    starting_shared: tokio::sync::Mutex<()>,
    /// Whether the server speaks 2026-07-28 itself (`None`: not asked yet).
    speaks_modern: Mutex<Option<bool>>,
    /// `requestState` → the worker that issued it (multi-round-trip
    /// retries must reach the process that sealed it).
    request_states: Mutex<HashMap<String, Weak<Worker>>>,
    events: Option<IntCounterVec>,
    me: Weak<Inner>,
}

/// A pool of stdio workers. See the module documentation.
#[derive(Clone)]
pub(crate) struct StdioPool(Arc<Inner>);

impl WorkerEvents for Inner {
    fn issued_state(&self, worker: &Arc<Worker>, state: &str) {
        Inner::issued_state(self, state, worker);
    }

    fn exited(&self, worker: &Arc<Worker>, status: String) {
        let lifetime = worker.started.elapsed();
        let mut st = self.state.lock();
        st.live = st.live.saturating_sub(1);
        st.sessions.retain(|_, w| !Arc::ptr_eq(w, worker));
        st.warm.retain(|w| !Arc::ptr_eq(w, worker));
        st.shared.retain(|w| !Arc::ptr_eq(w, worker));
        st.modern.retain(|w| !Arc::ptr_eq(w, worker));
        st.retiring.retain(|w| !Arc::ptr_eq(w, worker));
        // Only an exit of its own counts: a worker mcpgate stopped (a
        // session's end, garbage, a hang) says nothing of the next one.
        if lifetime < YOUNG && !worker.was_stopped() {
            st.young_exits += 1;
            let delay = Duration::from_millis(100u64 << st.young_exits.min(9)).min(MAX_BACKOFF);
            st.not_before = Some(Instant::now() + delay);
        } else if !worker.was_stopped() {
            st.young_exits = 0;
        }
        drop(st);
        self.count("exited");
        tracing::info!(pool = %self.pool, worker = worker.id, pid = ?worker.pid, %status,
            lifetime_ms = lifetime.as_millis() as u64, "stdio worker exited");
    }
}

impl Inner {
    fn count(&self, event: &str) {
        if let Some(c) = &self.events {
            c.with_label_values(&[&self.pool, event]).inc();
        }
    }

    /// Spawns one worker (not initialized).
    fn spawn(
        &self,
        shared: bool,
        tenant: &str,
        session: Option<&str>,
    ) -> Result<Arc<Worker>, String> {
        {
            let mut st = self.state.lock();
            if st.live >= self.spec.max_workers {
                return Err(format!("all {} workers are busy", self.spec.max_workers));
            }
            if let Some(t) = st.not_before {
                if Instant::now() < t {
                    return Err("workers keep exiting; waiting before the next spawn".into());
                }
            }
            st.live += 1;
        }
        let spawned = launch::command(&self.spec).and_then(|mut c| c.spawn());
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                self.state.lock().live -= 1;
                self.count("spawn_failed");
                tracing::warn!(pool = %self.pool, command = ?self.spec.command, "stdio worker spawn failed: {e}");
                return Err(format!("cannot start the stdio server: {e}"));
            }
        };
        let id = self.next_worker.fetch_add(1, Ordering::Relaxed);
        let events: Weak<dyn WorkerEvents> = self.me.clone();
        let w = Worker::start(
            child,
            id,
            &self.pool,
            shared,
            self.spec.max_line_bytes,
            Duration::from_millis(self.spec.kill_grace_ms),
            events,
        );
        self.count("spawned");
        tracing::info!(pool = %self.pool, worker = id, pid = ?w.pid, command = ?self.spec.command,
            tenant, session = session.unwrap_or("-"), shared, "stdio worker spawned");
        Ok(w)
    }

    /// A worker that speaks 2026-07-28 itself, for a stateless request:
    /// the one that issued the `requestState` a retry carries, else the
    /// least busy, else a new one, which `server/discover` tells apart
    /// (`Ok(None)`: this server speaks only 2025-11-25; requests are
    /// mapped instead).
    async fn modern_worker(&self, msg: &Value) -> Result<Option<Arc<Worker>>, String> {
        if *self.speaks_modern.lock() == Some(false) {
            return Ok(None);
        }
        // Multi-round-trip: the server sealed its state; only the process
        // that sealed it can open it.
        if let Some(state) = msg.pointer("/params/requestState").and_then(Value::as_str) {
            let issued = self
                .request_states
                .lock()
                .get(state)
                .and_then(Weak::upgrade);
            if let Some(w) = issued.filter(|w| w.is_alive()) {
                return Ok(Some(w));
            }
        }
        let pick = |st: &State| {
            st.modern
                .iter()
                .filter(|w| w.is_alive())
                .min_by_key(|w| w.in_flight())
                .cloned()
        };
        {
            let st = self.state.lock();
            if let Some(w) = pick(&st) {
                if w.in_flight() < SHARED_BUSY || st.live >= self.spec.max_workers {
                    return Ok(Some(w));
                }
            }
        }
        let _one = self.starting_shared.lock().await;
        if let Some(w) = pick(&self.state.lock()) {
            if w.in_flight() < SHARED_BUSY {
                return Ok(Some(w));
            }
        }
        let w = match self.spawn(true, "mcpgate", None) {
            Ok(w) => w,
            // No room for another: the busiest one still takes it.
            Err(e) => return pick(&self.state.lock()).map(Some).ok_or(e),
        };
        let params = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")}}});
        let limit = Duration::from_millis(self.spec.spawn_timeout_ms);
        let answer = w.ask("server/discover", Some(params), limit).await.ok();
        let speaks = answer.as_ref().is_some_and(|a| {
            a.pointer("/result/supportedVersions")
                .and_then(Value::as_array)
                .is_some_and(|v| v.iter().any(|x| x == MODERN))
        });
        if !speaks {
            w.stop("it does not speak 2026-07-28 (server/discover)");
            if answer.is_some() {
                *self.speaks_modern.lock() = Some(false);
                tracing::info!(pool = %self.pool, "stdio server speaks 2025-11-25 only: 2026-07-28 requests are mapped onto it");
                return Ok(None);
            }
            return Err("no answer to server/discover".into());
        }
        *self.speaks_modern.lock() = Some(true);
        self.state.lock().modern.push(w.clone());
        Ok(Some(w))
    }

    /// Remembers which worker issued a `requestState` (bounded).
    fn issued_state(&self, state: &str, w: &Arc<Worker>) {
        let mut states = self.request_states.lock();
        if states.len() >= MAX_REQUEST_STATES {
            states.retain(|_, w| w.strong_count() > 0);
            if states.len() >= MAX_REQUEST_STATES {
                states.clear();
            }
        }
        states.insert(state.to_owned(), Arc::downgrade(w));
    }

    /// A shared worker, initialized: the least busy, or a new one.
    async fn shared_worker(&self) -> Result<Arc<Worker>, String> {
        let pick = |st: &State| {
            st.shared
                .iter()
                .filter(|w| w.is_alive())
                .min_by_key(|w| w.in_flight())
                .cloned()
        };
        {
            let st = self.state.lock();
            let room = st.live < self.spec.max_workers;
            if let Some(w) = pick(&st) {
                if w.in_flight() < SHARED_BUSY || !room {
                    return Ok(w);
                }
            }
        }
        let _one = self.starting_shared.lock().await;
        if let Some(w) = pick(&self.state.lock()) {
            if w.in_flight() < SHARED_BUSY {
                return Ok(w);
            }
        }
        let w = match self.start_shared().await {
            Ok(w) => w,
            Err(e) => return pick(&self.state.lock()).ok_or(e),
        };
        self.state.lock().shared.push(w.clone());
        Ok(w)
    }

    /// Starts and initializes shared workers until `min_idle` are alive,
    /// ahead of demand (calls go to the least busy one).
    async fn fill_shared(&self) {
        let _one = self.starting_shared.lock().await;
        loop {
            {
                let st = self.state.lock();
                let alive = st.shared.iter().filter(|w| w.is_alive()).count();
                if alive >= self.spec.min_idle || st.live >= self.spec.max_workers {
                    return;
                }
            }
            match self.start_shared().await {
                Ok(w) => self.state.lock().shared.push(w),
                Err(_) => return,
            }
        }
    }

    /// Spawns a worker and initializes it as mcpgate.
    async fn start_shared(&self) -> Result<Arc<Worker>, String> {
        let w = self.spawn(true, "mcpgate", None)?;
        let params = json!({"protocolVersion": WORKER_VERSION, "capabilities": {},
            "clientInfo": {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")}});
        let limit = Duration::from_millis(self.spec.spawn_timeout_ms);
        let answer = match w.ask("initialize", Some(params), limit).await {
            Ok(a) => a,
            Err(why) => {
                let e = match why {
                    AskError::Send(e) => e,
                    AskError::Exited => "the worker exited during initialize".to_string(),
                    AskError::Timeout => format!(
                        "no answer to initialize within {} ms",
                        self.spec.spawn_timeout_ms
                    ),
                };
                w.stop(&e);
                return Err(e);
            }
        };
        let Some(result) = answer.get("result").cloned() else {
            let e = format!(
                "initialize failed: {}",
                answer.get("error").cloned().unwrap_or_default()
            );
            w.stop(&e);
            return Err(e);
        };
        w.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        *w.init_result.lock() = Some(result);
        Ok(w)
    }
}

fn header<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn new_token() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    format!("stdio-{}", hex::encode(b))
}

/// Removes the 2026-07-28 protocol keys from `params._meta` (the worker
/// speaks 2025-11-25).
fn strip_modern_meta(msg: &mut Value) {
    let Some(meta) = msg
        .get_mut("params")
        .and_then(|p| p.get_mut("_meta"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
    if meta.is_empty() {
        if let Some(p) = msg.get_mut("params").and_then(Value::as_object_mut) {
            p.remove("_meta");
        }
    }
}

impl StdioPool {
    pub(crate) fn new(pool: &str, spec: &StdioSpec, events: Option<IntCounterVec>) -> Self {
        Self(Arc::new_cyclic(|me| Inner {
            pool: pool.to_owned(),
            spec: spec.clone(),
            state: Mutex::new(State::default()),
            next_worker: AtomicU64::new(1),
            starting_shared: tokio::sync::Mutex::new(()),
            speaks_modern: Mutex::new(None),
            request_states: Mutex::new(HashMap::new()),
            events,
            me: me.clone(),
        }))
    }

    /// Live workers.
    pub(crate) fn live(&self) -> usize {
        self.0.state.lock().live
    }

    /// Answers one request as a Streamable HTTP server would.
    pub(crate) async fn send(
        &self,
        req: &RequestHeader,
        body: &Bytes,
        first_byte: Duration,
    ) -> Result<StdioAnswer, SendError> {
        let token = header(req, "mcp-session-id").map(str::to_owned);
        let tenant = header(req, TENANT_HEADER).unwrap_or("-").to_owned();
        match req.method.as_str() {
            "GET" => Ok(self.listen(token.as_deref())),
            "DELETE" => Ok(self.end_session(token.as_deref())),
            "POST" => {
                let modern = header(req, "mcp-protocol-version") == Some(MODERN);
                let Ok(msg) = serde_json::from_slice::<Value>(body) else {
                    return Ok(StdioAnswer::error(400, None, -32700, "Parse error"));
                };
                if !msg.is_object() {
                    return Ok(StdioAnswer::error(
                        400,
                        None,
                        -32600,
                        "batches are not supported by stdio upstreams",
                    ));
                }
                self.post(msg, token, modern, &tenant, first_byte).await
            }
            _ => Ok(StdioAnswer::error(405, None, -32600, "Method not allowed")),
        }
    }

    fn listen(&self, token: Option<&str>) -> StdioAnswer {
        let worker = token.and_then(|t| self.0.state.lock().sessions.get(t).cloned());
        match worker {
            Some(w) => match w.listen() {
                Some(rx) => StdioAnswer::listening(rx),
                None => StdioAnswer::error(409, None, -32600, "a listening stream is already open"),
            },
            None if token.is_some_and(|t| self.0.state.lock().shared_sessions.contains_key(t)) => {
                StdioAnswer::error(
                    405,
                    None,
                    -32600,
                    "a shared stdio pool has no listening stream",
                )
            }
            None => StdioAnswer::error(404, None, -32001, "Session not found"),
        }
    }

    fn end_session(&self, token: Option<&str>) -> StdioAnswer {
        let Some(token) = token else {
            return StdioAnswer::error(400, None, -32600, "no session id");
        };
        let mut st = self.0.state.lock();
        if let Some(w) = st.sessions.remove(token) {
            drop(st);
            w.stop("its session ended");
            return StdioAnswer::json(200, None);
        }
        if st.shared_sessions.remove(token).is_some() {
            return StdioAnswer::json(200, None);
        }
        StdioAnswer::error(404, None, -32001, "Session not found")
    }

    async fn post(
        &self,
        mut msg: Value,
        token: Option<String>,
        modern: bool,
        tenant: &str,
        first_byte: Duration,
    ) -> Result<StdioAnswer, SendError> {
        let method = msg.get("method").and_then(Value::as_str).map(str::to_owned);
        let id = msg.get("id").cloned();
        let inner = &self.0;
        let unavailable = |e: String| {
            tracing::warn!(pool = %inner.pool, "stdio pool: {e}");
            StdioAnswer::error(
                503,
                id.as_ref(),
                -32603,
                &format!("upstream unavailable: {e}"),
            )
        };
        // A legacy session's first message.
        if method.as_deref() == Some("initialize") && token.is_none() && !modern {
            if inner.spec.mode == StdioMode::Shared {
                let w = match inner.shared_worker().await {
                    Ok(w) => w,
                    Err(e) => return Ok(unavailable(e)),
                };
                let token = new_token();
                inner
                    .state
                    .lock()
                    .shared_sessions
                    .insert(token.clone(), Instant::now());
                let result = w.init_result.lock().clone().unwrap_or_default();
                let mut a = StdioAnswer::json(
                    200,
                    Some(&json!({"jsonrpc": "2.0", "id": id, "result": result})),
                );
                let _ = a.head_mut().insert_header("mcp-session-id", &token);
                return Ok(a);
            }
            let token = new_token();
            let warm = {
                let mut st = inner.state.lock();
                st.warm.retain(|w| w.is_alive());
                st.warm.pop()
            };
            let w = match warm {
                Some(w) => w,
                None => match inner.spawn(false, tenant, Some(&token)) {
                    Ok(w) => w,
                    Err(e) => return Ok(unavailable(e)),
                },
            };
            inner.state.lock().sessions.insert(token.clone(), w.clone());
            tracing::info!(pool = %inner.pool, worker = w.id, pid = ?w.pid, tenant, session = %token, "stdio worker serves a new session");
            let mut a = self.exchange(&w, msg, false, None, first_byte).await?;
            if a.json_body().is_some_and(|b| b.get("error").is_some()) {
                inner.state.lock().sessions.remove(&token);
                w.stop("its initialize failed");
            }
            let _ = a.head_mut().insert_header("mcp-session-id", &token);
            return Ok(a);
        }
        let is_request = method.is_some() && id.is_some();
        let is_notification = method.is_some() && id.is_none();
        if let Some(t) = &token {
            let worker = inner.state.lock().sessions.get(t).cloned();
            if let Some(w) = worker {
                if !is_request {
                    // Notifications and the client's answers to the
                    // worker's requests go as they are.
                    return Ok(match w.send(&msg).await {
                        Ok(()) => StdioAnswer::json(202, None),
                        Err(e) => StdioAnswer::error(502, None, -32603, &e),
                    });
                }
                return self.exchange(&w, msg, false, None, first_byte).await;
            }
            if !inner.state.lock().shared_sessions.contains_key(t) {
                return Ok(StdioAnswer::error(
                    404,
                    id.as_ref(),
                    -32001,
                    "Session not found",
                ));
            }
        }
        if !is_request {
            // A shared worker was initialized by mcpgate; cancellation of
            // a shared request is the end of its stream.
            if is_notification {
                tracing::debug!(pool = %inner.pool, method = ?method, "notification to a shared stdio pool not forwarded");
            }
            return Ok(StdioAnswer::json(202, None));
        }
        if modern {
            // A server that speaks 2026-07-28 itself gets the request as
            // the client sent it (only its id rewritten).
            match inner.modern_worker(&msg).await {
                Ok(Some(w)) => {
                    return self.exchange(&w, msg, true, None, first_byte).await;
                }
                Ok(None) => {}
                Err(e) => return Ok(unavailable(e)),
            }
        }
        let w = match inner.shared_worker().await {
            Ok(w) => w,
            Err(e) => return Ok(unavailable(e)),
        };
        if modern {
            match method.as_deref() {
                Some("server/discover") => {
                    let init = w.init_result.lock().clone().unwrap_or_default();
                    let mut meta = serde_json::Map::new();
                    if let Some(info) = init.get("serverInfo") {
                        meta.insert("io.modelcontextprotocol/serverInfo".into(), info.clone());
                    }
                    let mut result = json!({"supportedVersions": [MODERN],
                        "capabilities": init.get("capabilities").cloned().unwrap_or(json!({})),
                        "resultType": "complete", "ttlMs": 0, "cacheScope": "private", "_meta": meta});
                    if let Some(i) = init.get("instructions") {
                        result["instructions"] = i.clone();
                    }
                    return Ok(StdioAnswer::json(
                        200,
                        Some(&json!({"jsonrpc": "2.0", "id": id, "result": result})),
                    ));
                }
                Some("subscriptions/listen") => {
                    return Ok(StdioAnswer::error(404, id.as_ref(), -32601,
                        "subscriptions/listen is not available from a stdio server that speaks 2025-11-25"));
                }
                _ => strip_modern_meta(&mut msg),
            }
        }
        let served = w.served.load(Ordering::Relaxed) + 1;
        if inner.spec.max_requests_per_worker > 0 && served >= inner.spec.max_requests_per_worker {
            let mut st = inner.state.lock();
            if let Some(pos) = st.shared.iter().position(|x| Arc::ptr_eq(x, &w)) {
                let old = st.shared.remove(pos);
                st.retiring.push(old);
            }
        }
        self.exchange(
            &w,
            msg,
            modern,
            modern.then(|| method.clone().unwrap_or_default()),
            first_byte,
        )
        .await
    }

    /// Sends one request to `w` and answers with what comes back.
    async fn exchange(
        &self,
        w: &Arc<Worker>,
        mut msg: Value,
        modern: bool,
        modern_method: Option<String>,
        first_byte: Duration,
    ) -> Result<StdioAnswer, SendError> {
        let client_id = msg.get("id").cloned().unwrap_or(Value::Null);
        let progress = msg.pointer("/params/_meta/progressToken").cloned();
        let reg = w.register(&client_id, progress.as_ref());
        msg["id"] = reg.worker_id.clone();
        if let (Some(t), Some(meta)) = (
            w.worker_progress_token(&reg.key),
            msg.pointer_mut("/params/_meta"),
        ) {
            meta["progressToken"] = t;
        }
        w.served.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight {
            worker: w.clone(),
            key: reg.key.clone(),
            worker_id: reg.worker_id.clone(),
        };
        if let Err(e) = w.send(&msg).await {
            w.unregister(&reg.key);
            return Ok(StdioAnswer::error(
                502,
                Some(&client_id),
                -32603,
                &format!("upstream unavailable: {e}"),
            ));
        }
        let mut rx = reg.rx;
        match tokio::time::timeout(first_byte.min(JSON_WAIT), rx.recv()).await {
            Ok(Some(first)) => Ok(StdioAnswer::to_request(
                Some(first),
                rx,
                client_id,
                modern,
                modern_method,
                in_flight,
            )),
            Ok(None) => Ok(StdioAnswer::error(
                502,
                Some(&client_id),
                -32603,
                "upstream unavailable: the stdio worker exited",
            )),
            // Nothing yet: an event stream, under the relay's deadlines.
            Err(_) => Ok(StdioAnswer::to_request(
                None,
                rx,
                client_id,
                modern,
                modern_method,
                in_flight,
            )),
        }
    }

    /// Background upkeep (every second): idle workers and sessions stopped,
    /// retired workers stopped once idle, warm workers refilled.
    pub(crate) fn tick(&self) {
        let inner = &self.0;
        let idle = Duration::from_secs(inner.spec.idle_timeout_secs);
        let mut stop = Vec::new();
        let refill;
        {
            let mut st = inner.state.lock();
            st.sessions.retain(|_, w| {
                let keep = w.is_alive() && (w.idle_for() < idle || w.in_flight() > 0);
                if !keep {
                    stop.push((w.clone(), "its session was idle too long"));
                }
                keep
            });
            st.shared_sessions
                .retain(|_, since| since.elapsed() < Duration::from_secs(7 * 86_400));
            let min = inner.spec.min_idle;
            let mut shared_kept = 0;
            st.shared.retain(|w| {
                let keep = w.is_alive()
                    && (shared_kept < min.max(1) || w.idle_for() < idle || w.in_flight() > 0);
                if keep {
                    shared_kept += 1;
                } else {
                    stop.push((w.clone(), "idle too long"));
                }
                keep
            });
            let mut modern_kept = 0;
            st.modern.retain(|w| {
                let keep =
                    w.is_alive() && (modern_kept < 1 || w.idle_for() < idle || w.in_flight() > 0);
                if keep {
                    modern_kept += 1;
                } else {
                    stop.push((w.clone(), "idle too long"));
                }
                keep
            });
            st.retiring.retain(|w| {
                let busy = w.in_flight() > 0;
                if !busy {
                    stop.push((w.clone(), "served max_requests_per_worker"));
                }
                busy
            });
            st.warm.retain(|w| w.is_alive());
            let backing_off = st.not_before.is_some_and(|t| Instant::now() < t);
            refill = if backing_off {
                0
            } else if inner.spec.mode == StdioMode::PerSession {
                min.saturating_sub(st.warm.len())
            } else {
                usize::from(min > 0 && st.shared.len() < min)
            };
        }
        for (w, why) in stop {
            w.stop(why);
        }
        if inner.spec.mode == StdioMode::PerSession {
            for _ in 0..refill {
                match inner.spawn(false, "-", None) {
                    Ok(w) => inner.state.lock().warm.push(w),
                    Err(_) => break,
                }
            }
        } else if refill > 0 {
            let me = self.clone();
            tokio::spawn(async move { me.0.fill_shared().await });
        }
    }

    /// Stops every worker (the process is ending).
    pub(crate) fn shutdown(&self) {
        let mut st = self.0.state.lock();
        st.not_before = Some(Instant::now() + Duration::from_secs(3600));
        let all: Vec<Arc<Worker>> = std::mem::take(&mut st.sessions)
            .into_values()
            .chain(std::mem::take(&mut st.warm))
            .chain(std::mem::take(&mut st.shared))
            .chain(std::mem::take(&mut st.modern))
            .chain(std::mem::take(&mut st.retiring))
            .collect();
        drop(st);
        for w in all {
            w.stop("mcpgate is stopping");
        }
    }
}

#[cfg(test)]
mod tests;
