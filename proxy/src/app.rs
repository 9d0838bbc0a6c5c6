//! The pingora application: one MCP exchange from request head to response end.
//!
//! mcpgate runs on pingora-core's server and connectors rather than
//! pingora-proxy's `ProxyHttp`, because `ProxyHttp` can only replay 64 KiB of
//! pre-read body to the upstream (its retry buffer). Here the whole body, up
//! to the policy limit (default 4 MiB, larger gets 413), is read and judged
//! before any upstream connection is taken from the pool or opened, so no
//! byte of a rejected message ever reaches an upstream at any size.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use filters::header_values::single_str;
use filters::{
    Chain, Era, Exchange, Message, MessageKind, Rejection, RejectionKind, RequestId, SessionLookup,
};
use pingora::protocols::http::ServerSession;
use policies::{Policy, TenantName};

use std::collections::BTreeMap;

use crate::admission::AdmissionControl;
use crate::clock::{Clock, SystemClock};
use crate::forward::RequestFacts;
use crate::held::Served;
use crate::identity::WorkerIdentity;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::ratelimit::RateLimits;
use crate::respond::{reject, BodyState};
use crate::session_id::SessionCodec;
use crate::sessions::{BeginError, Session, SessionStore};
use crate::tap::Tap;
use pingora::connectors::http::Connector;

/// Largest body read after a head-phase refusal, only to echo the request id.
const ECHO_READ_LIMIT: usize = 64 * 1024;

/// How long a client may take to send its request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

pub struct McpGate {
    pub policy: Arc<Policy>,
    pub chain: Chain,
    pub sessions: SessionStore,
    /// Upstream pools by name.
    pub pools: BTreeMap<String, Arc<Pool>>,
    pub admission: AdmissionControl,
    pub rate_limits: RateLimits,
    pub metrics: Metrics,
    /// Which worker of which instance this is.
    pub identity: WorkerIdentity,
    /// Seals and opens session ids.
    pub codec: SessionCodec,
    /// Connections to other workers' internal sockets.
    pub owner_link: Connector,
    /// Set when a drain began (`/readyz` answers 503).
    pub draining: AtomicBool,
}

/// A request that passed every filter, with the bookkeeping it implies.
pub(crate) struct Admitted {
    pub(crate) era: Era,
    pub(crate) tenant: TenantName,
    pub(crate) session: Option<Arc<Session>>,
    /// Id of a legacy `initialize` whose response creates a session.
    pub(crate) init_id: Option<RequestId>,
    /// Request ids registered in flight on the session.
    pub(crate) begun: Vec<RequestId>,
    pub(crate) bare: bool,
    /// What the forwarder needs to know about the message.
    pub(crate) facts: RequestFacts,
}

impl McpGate {
    /// The gateway of one worker process; `policy` is already this worker's
    /// share ([`Policy::for_worker`]).
    pub fn new(
        policy: Arc<Policy>,
        identity: WorkerIdentity,
        keys: &[[u8; 32]],
    ) -> std::io::Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let sessions = SessionStore::new(
            clock.clone(),
            Duration::from_secs(policy.sessions.idle_timeout_secs),
            policy.sessions.max_sessions,
        );
        let pools = policy
            .upstreams
            .iter()
            .map(|p| Ok((p.name.clone(), Arc::new(Pool::new(p, clock.clone())?))))
            .collect::<std::io::Result<_>>()?;
        Ok(Self {
            pools,
            admission: AdmissionControl::new(&policy),
            rate_limits: RateLimits::new(&policy, identity.index, identity.workers),
            codec: SessionCodec::new(keys),
            owner_link: Connector::new(None),
            metrics: Metrics::new(identity.index),
            identity,
            chain: Chain::standard(),
            sessions,
            policy,
            draining: AtomicBool::new(false),
        })
    }

    /// This worker's metrics, with the gauges read now.
    pub fn render_metrics(&self) -> String {
        self.metrics
            .in_flight
            .set(self.admission.in_flight() as i64);
        self.metrics
            .streams
            .set(self.admission.streams_open() as i64);
        self.metrics.sessions.set(self.sessions.len() as i64);
        self.metrics.render()
    }

    /// Why this worker should get no new traffic, if it should not: it is
    /// draining, or a pool has no healthy endpoint.
    pub fn not_ready(&self) -> Option<String> {
        if self.draining.load(Ordering::Acquire) {
            return Some("draining".into());
        }
        let down: Vec<&str> = self
            .pools
            .iter()
            .filter(|(_, p)| !p.endpoints.iter().any(|e| e.is_healthy()))
            .map(|(name, _)| name.as_str())
            .collect();
        (!down.is_empty()).then(|| format!("no healthy endpoint in pool {}", down.join(", ")))
    }

    /// Serves a session this process does not hold from its sealed claims:
    /// the id must open with our keys, name this tenant and a known endpoint.
    fn revive(&self, id: &str, tenant: &TenantName) -> Option<Arc<Session>> {
        let c = self.codec.open(id)?;
        if *c.tenant != **tenant {
            return None;
        }
        let pool = self.pools.get(&c.pool)?;
        if c.endpoint as usize >= pool.endpoints.len() {
            return None;
        }
        let at = crate::sessions::Pinned {
            pool: Arc::from(c.pool.as_str()),
            endpoint: c.endpoint as usize,
        };
        let s = self
            .sessions
            .revive(id, tenant.clone(), at, c.upstream_id, c.version)?;
        tracing::info!(
            worker = self.identity.index,
            "serving a session from its sealed id (owner restarted or elsewhere)"
        );
        Some(s)
    }

    /// How long a client may accept no bytes of a response before it is cut off.
    pub fn slow_client_timeout(&self) -> Duration {
        Duration::from_millis(self.policy.admission.slow_client_timeout_ms)
    }

    /// This worker's index, when `[listen] expose_worker_header` is on.
    pub fn worker_header(&self) -> Option<usize> {
        self.policy
            .listen
            .expose_worker_header
            .then_some(self.identity.index)
    }

    /// Counts, logs and answers a refusal.
    pub async fn refuse(&self, ds: &mut ServerSession, r: &Rejection, bare: bool, body: BodyState) {
        let wire = r.kind.wire();
        let filter = if r.filter.is_empty() {
            "proxy"
        } else {
            r.filter
        };
        self.metrics
            .rejections
            .with_label_values(&[&format!("{:?}", r.kind), filter])
            .inc();
        tracing::info!(
            kind = ?r.kind, filter, rule = r.rule, at = r.at().unwrap_or("-"),
            status = wire.status, code = wire.code,
            id = %filters::message::display_id(r.id.as_ref()),
            detail = %r.detail, "rejected"
        );
        reject(ds, r, bare, body, self.worker_header()).await;
    }

    /// Handles one request; returns whether the client connection is reusable.
    /// `internal`: the request came over this worker's private socket from
    /// another worker, so it is served here whatever session it names.
    /// `method`: set to the request's MCP method label (for the duration
    /// histogram) once it is known.
    pub async fn handle(
        &self,
        ds: &mut ServerSession,
        tap: &Tap,
        internal: bool,
        method_seen: &mut &'static str,
    ) -> Served {
        let policy = self.policy.clone();
        let method = ds.req_header().method.as_str().to_string();
        let path = ds.req_header().uri.path().to_string();

        // The raw HTTP/1 head, for the header guard (pingora's parsed map
        // drops Content-Length when Transfer-Encoding is present).
        let raw_head = ds
            .as_http1()
            .map(|s| s.get_headers_raw_bytes())
            .unwrap_or_default();
        let head = {
            let mut ex = Exchange::new(&policy, &method, &path, &ds.req_header().headers, b"");
            ex.raw_head = &raw_head;
            self.chain.check_head(&mut ex).map(|()| ex.tenant.take())
        };
        let tenant = match head {
            Ok(Some(t)) => t,
            Ok(None) => unreachable_tenant(),
            Err(r) => return self.refuse_head(ds, r).await.into(),
        };

        let body = read_body(ds, policy.limits.max_body_bytes).await;
        if let Some(e) = tap.take_error() {
            let mut r = Rejection::new(RejectionKind::AmbiguousFraming, e.to_string())
                .with_rule(e.rule())
                .with_at("body");
            r.filter = "chunked_framing";
            self.refuse(ds, &r, false, BodyState::Unread).await;
            return Served::Done(false);
        }
        let body = match body {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                let r = Rejection::new(RejectionKind::PayloadTooLarge, "chunked body over limit");
                self.refuse(ds, &r, false, BodyState::Unread).await;
                return Served::Done(false);
            }
            Err(BodyError::Io) => return Served::Done(false),
        };

        if !internal {
            if let Some(owner) = self.remote_owner(ds) {
                if let Some(served) = self.hand_to_owner(ds, owner, &body).await {
                    return served;
                }
            }
        }
        let admitted = match self.admit(ds, &method, &path, &body, tenant) {
            Ok(a) => {
                *method_seen = crate::metrics::method_label(&a.facts.method);
                a
            }
            Err(refused) => {
                if let Some(m) = single_str(&ds.req_header().headers, "mcp-method") {
                    *method_seen = crate::metrics::method_label(m);
                }
                let (r, bare) = *refused;
                self.refuse(ds, &r, bare, BodyState::Consumed).await;
                return Served::Done(true);
            }
        };
        self.forward(ds, &method, body, admitted).await
    }

    /// Answers a head-phase refusal. A small body is still read (never
    /// forwarded) so the error can echo the request id, a notification gets a
    /// bare status, and the connection stays reusable.
    async fn refuse_head(&self, ds: &mut ServerSession, mut r: Rejection) -> bool {
        let small = ds
            .req_header()
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .is_some_and(|n| n <= ECHO_READ_LIMIT);
        // Framing, injection and size refusals close the connection unread.
        if r.kind.wire().close || !small {
            self.refuse(ds, &r, false, BodyState::Unread).await;
            return false;
        }
        let Ok(body) = read_body(ds, ECHO_READ_LIMIT).await else {
            self.refuse(ds, &r, false, BodyState::Unread).await;
            return false;
        };
        let (id, bare) = filters::message::peek_id(&body);
        r.id = id;
        self.refuse(ds, &r, bare, BodyState::Consumed).await;
        true
    }

    /// Runs the message phase and the session bookkeeping it implies.
    fn admit(
        &self,
        ds: &ServerSession,
        method: &str,
        path: &str,
        body: &Bytes,
        tenant: TenantName,
    ) -> Result<Admitted, Box<(Rejection, bool)>> {
        let headers = &ds.req_header().headers;
        let sid = single_str(headers, "mcp-session-id");
        let session = sid.and_then(|id| {
            self.sessions
                .get(id, &tenant)
                .or_else(|| self.revive(id, &tenant))
        });
        let snapshot = session.as_ref().map(|s| s.snapshot());
        let mut ex = Exchange::new(&self.policy, method, path, headers, body);
        ex.tenant = Some(tenant.clone());
        ex.session = match (sid, &snapshot) {
            (None, _) => SessionLookup::NoneGiven,
            (Some(_), None) => SessionLookup::Unknown,
            (Some(_), Some(s)) => SessionLookup::Found(s),
        };
        let verdict = self.chain.check_message(&mut ex);
        let bare =
            !ex.messages.is_empty() && ex.messages.iter().all(|m| m.kind != MessageKind::Request);
        let echo = ex.echo_id();
        let (era, messages) = (ex.era, std::mem::take(&mut ex.messages));
        verdict.map_err(|r| Box::new((r, bare)))?;

        let mut admitted = Admitted {
            era,
            tenant,
            session: None,
            init_id: None,
            begun: Vec::new(),
            bare,
            facts: RequestFacts::new(method, &messages),
        };
        if era == Era::Legacy {
            if let Some(s) = &session {
                self.begin_all(s, &messages, &mut admitted)
                    .map_err(|mut r| {
                        r.id = echo.clone();
                        (r, bare)
                    })?;
                if messages.iter().any(|m| {
                    m.kind == MessageKind::Notification && m.method() == "notifications/initialized"
                }) {
                    s.mark_ready();
                }
            } else if let Some(init) = messages.iter().find(|m| m.is_request("initialize")) {
                if self.sessions.len() >= self.policy.sessions.max_sessions {
                    let mut r = Rejection::new(RejectionKind::Overloaded, "session table full");
                    r.id = echo;
                    return Err(Box::new((r, bare)));
                }
                admitted.init_id = init.id.clone();
            }
        }
        admitted.session = session;
        Ok(admitted)
    }

    fn begin_all(
        &self,
        s: &Session,
        messages: &[Message],
        admitted: &mut Admitted,
    ) -> Result<(), Rejection> {
        let max = self.policy.sessions.max_in_flight_per_session;
        for id in messages
            .iter()
            .filter(|m| m.kind == MessageKind::Request)
            .filter_map(|m| m.id.as_ref())
        {
            if let Err(e) = s.begin(id, max) {
                for done in admitted.begun.drain(..) {
                    s.finish(&done);
                }
                return Err(match e {
                    BeginError::Duplicate => Rejection::new(
                        RejectionKind::DuplicateRequestId,
                        "request id already in flight",
                    ),
                    BeginError::TooMany => Rejection::new(
                        RejectionKind::Overloaded,
                        "too many requests in flight on the session",
                    ),
                });
            }
            admitted.begun.push(id.clone());
        }
        Ok(())
    }
}

fn unreachable_tenant() -> TenantName {
    // The auth filter either sets a tenant or rejects; keep a safe value anyway.
    TenantName::from("")
}

enum BodyError {
    TooLarge,
    Io,
}

async fn read_body(ds: &mut ServerSession, max: usize) -> Result<Bytes, BodyError> {
    ds.set_read_timeout(Some(BODY_READ_TIMEOUT));
    let mut body = BytesMut::new();
    loop {
        match ds.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(BodyError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(e) => {
                tracing::debug!("reading request body: {e}");
                return Err(BodyError::Io);
            }
        }
    }
}
