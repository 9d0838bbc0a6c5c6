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
    Chain, Era, Exchange, Identity, Message, MessageKind, Rejection, RejectionKind, RequestId,
    SessionLookup, TokenVerifier,
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
use crate::tokens::Tokens;
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
    /// JWT access tokens (`[auth.jwt]`).
    pub tokens: Option<Arc<Tokens>>,
}

/// A request that passed every filter, with the bookkeeping it implies.
pub(crate) struct Admitted {
    pub(crate) era: Era,
    pub(crate) tenant: TenantName,
    /// Who owns the sessions this request makes or uses: the tenant, and the
    /// verified subject when there is one ([`principal`]).
    pub(crate) principal: TenantName,
    /// The verified subject (for credentials minted for the upstream).
    pub(crate) subject: Option<String>,
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
        tokens: Option<Arc<Tokens>>,
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
            tokens,
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
        // (`tenant` is the request's principal: tenant and subject.)
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
        let challenge = self.challenge(r);
        reject(
            ds,
            r,
            bare,
            body,
            self.worker_header(),
            challenge.as_deref(),
        )
        .await;
    }

    /// The `WWW-Authenticate` value of a 401 or 403 (RFC 6750 §3, RFC 9728
    /// §5.1): where the protected resource metadata is, and for a missing
    /// scope, every scope the operation needs (a step-up).
    fn challenge(&self, r: &Rejection) -> Option<String> {
        let oauth = self.policy.auth.oauth.as_ref();
        let mut parts: Vec<String> = Vec::new();
        match r.kind {
            RejectionKind::Unauthenticated => {
                let presented_token = !matches!(
                    r.rule,
                    "missing-token"
                        | "missing-api-key"
                        | "not-a-bearer-token"
                        | "token-in-query"
                        | "client-certificate-not-mapped"
                );
                if presented_token && self.policy.auth.jwt.is_some() {
                    parts.push("error=\"invalid_token\"".into());
                }
                if let Some(o) = oauth.filter(|o| !o.scopes_supported.is_empty()) {
                    parts.push(format!("scope=\"{}\"", o.scopes_supported.join(" ")));
                }
            }
            RejectionKind::InsufficientScope => {
                parts.push("error=\"insufficient_scope\"".into());
                let scopes: Vec<&str> = r
                    .data()
                    .and_then(|d| d.get("scopes"))
                    .and_then(|v| v.as_array())
                    .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
                    .unwrap_or_default();
                parts.push(format!("scope=\"{}\"", scopes.join(" ")));
            }
            _ => return None,
        }
        if let Some(o) = oauth {
            parts.push(format!("resource_metadata=\"{}\"", o.metadata_url()));
        }
        Some(if parts.is_empty() {
            "Bearer".into()
        } else {
            format!("Bearer {}", parts.join(", "))
        })
    }

    /// Handles one request; returns whether the client connection is reusable.
    /// `internal`: the request came over this worker's private socket from
    /// another worker, so it is served here whatever session it names.
    /// `method`: set to the request's MCP method label (for the duration
    /// histogram) once it is known.
    /// `client_cert`: identities of the client certificate the TLS
    /// handshake verified (for a request handed over by a sibling, the
    /// sibling's word, in [`CLIENT_CERT_HEADER`]).
    pub async fn handle(
        &self,
        ds: &mut ServerSession,
        tap: &Tap,
        internal: bool,
        client_cert: Option<&[String]>,
        method_seen: &mut &'static str,
    ) -> Served {
        let policy = self.policy.clone();
        let method = ds.req_header().method.as_str().to_string();
        let path = ds.req_header().uri.path().to_string();
        let query = ds.req_header().uri.query().unwrap_or("").to_string();
        if let Some(served) = self.protected_resource_metadata(ds, &method, &path).await {
            return served;
        }
        let handed_cert: Option<Vec<String>> = internal
            .then(|| single_str(&ds.req_header().headers, CLIENT_CERT_HEADER))
            .flatten()
            .map(|v| {
                v.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            });
        let client_cert = handed_cert.as_deref().or(client_cert);
        if let (Some(tokens), Some(token)) = (&self.tokens, bearer_jwt(&ds.req_header().headers)) {
            tokens.prepare(&token).await;
        }

        // The raw HTTP/1 head, for the header guard (pingora's parsed map
        // drops Content-Length when Transfer-Encoding is present).
        let raw_head = ds
            .as_http1()
            .map(|s| s.get_headers_raw_bytes())
            .unwrap_or_default();
        let head = {
            let mut ex = Exchange::new(&policy, &method, &path, &ds.req_header().headers, b"");
            ex.raw_head = &raw_head;
            ex.query = &query;
            ex.client_cert = client_cert;
            ex.tokens = self.tokens.as_deref().map(|t| t as &dyn TokenVerifier);
            self.chain
                .check_head(&mut ex)
                .map(|()| (ex.tenant.take(), ex.identity.take()))
        };
        let (tenant, identity) = match head {
            Ok((Some(t), i)) => (t, i),
            Ok((None, i)) => (unreachable_tenant(), i),
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
                if let Some(served) = self.hand_to_owner(ds, owner, &body, client_cert).await {
                    return served;
                }
            }
        }
        let admitted = match self.admit(ds, &method, &path, &body, tenant, identity) {
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

    /// RFC 9728 protected resource metadata (`[auth.oauth]`), on GET of
    /// `/.well-known/oauth-protected-resource` with the MCP path appended
    /// (and without it); `None` for every other request.
    async fn protected_resource_metadata(
        &self,
        ds: &mut ServerSession,
        method: &str,
        path: &str,
    ) -> Option<Served> {
        let o = self.policy.auth.oauth.as_ref()?;
        if method != "GET"
            || (path != o.metadata_path() && path != "/.well-known/oauth-protected-resource")
        {
            return None;
        }
        let mut doc = serde_json::json!({
            "resource": o.resource,
            "authorization_servers": o.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if !o.scopes_supported.is_empty() {
            doc["scopes_supported"] = serde_json::json!(o.scopes_supported);
        }
        if let Some(d) = &o.resource_documentation {
            doc["resource_documentation"] = serde_json::json!(d);
        }
        let body = doc.to_string();
        let Ok(mut h) = pingora::http::ResponseHeader::build(200, Some(4)) else {
            return Some(Served::Done(false));
        };
        let _ = h.insert_header("content-type", "application/json");
        let _ = h.insert_header("content-length", body.len().to_string());
        let _ = h.insert_header("cache-control", "max-age=300");
        let ok = ds.write_response_header(Box::new(h)).await.is_ok()
            && ds
                .write_response_body(Bytes::from(body), true)
                .await
                .is_ok();
        Some(Served::Done(ok))
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
        identity: Option<Identity>,
    ) -> Result<Admitted, Box<(Rejection, bool)>> {
        let headers = &ds.req_header().headers;
        let sid = single_str(headers, "mcp-session-id");
        let principal = principal(&tenant, identity.as_ref());
        let subject = identity.as_ref().and_then(|i| i.subject.clone());
        let session = sid.and_then(|id| {
            self.sessions
                .get(id, &principal)
                .or_else(|| self.revive(id, &principal))
        });
        let snapshot = session.as_ref().map(|s| s.snapshot());
        let mut ex = Exchange::new(&self.policy, method, path, headers, body);
        ex.tenant = Some(tenant.clone());
        ex.identity = identity;
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
            principal,
            subject,
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

/// The header a worker adds when it hands a request to the session's owner,
/// carrying the verified client certificate's identities (space-separated).
/// Read only on the private socket; never forwarded upstream.
pub const CLIENT_CERT_HEADER: &str = "x-mcpgate-client-cert";

/// Who owns a session: its tenant, and the verified subject when there is
/// one, so that a session id presented by another subject of the same
/// tenant is unknown (404): "state handle hijacking", 2026-07-28. The
/// subject is hashed: sealed ids and logs never carry it.
pub fn principal(tenant: &TenantName, identity: Option<&Identity>) -> TenantName {
    use sha2::{Digest, Sha256};
    match identity.and_then(|i| i.subject.as_deref()) {
        None => tenant.clone(),
        Some(sub) => {
            let digest = Sha256::digest(sub.as_bytes());
            TenantName::from(format!("{tenant}#{}", hex::encode(&digest[..12])).as_str())
        }
    }
}

/// A bearer credential that looks like a JWT (for the key refetch).
fn bearer_jwt(headers: &http::HeaderMap) -> Option<String> {
    let v = single_str(headers, "authorization")?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && token.matches('.').count() == 2)
        .then(|| token.to_string())
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
