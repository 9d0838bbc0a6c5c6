//! The state one worker's stages share: [`McpGate`].
//!
//! Every stage of a request (accept, exchange, sessions, admission,
//! upstream) and every background task takes the worker's gate by
//! reference: its share of the policy, the filter chain, the sessions, the
//! upstream pools, the admission caps and rate limits, the metrics, which
//! worker it is, and the session keys. The gate holds that state and
//! answers questions about it; what happens to a request is decided by the
//! stages. So this module imports the data structures it holds and none of
//! the stages' logic, and no stage needs another stage's types to reach it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use filters::{Chain, ResponseChain};
use pingora::connectors::http::Connector;
use pingora::server::ShutdownWatch;
use policies::Policy;

use crate::admission::caps::AdmissionControl;
use crate::admission::ratelimit::RateLimits;
use crate::exchange::tokens::Tokens;
use crate::ops::audit::AuditTrail;
use crate::ops::clock::{Clock, SystemClock};
use crate::ops::metrics::Metrics;
use crate::ops::worker_identity::WorkerIdentity;
use crate::sessions::session_id::SessionCodec;
use crate::sessions::store::SessionStore;
use crate::upstream::pins::{self, PinFiles};
use crate::upstream::pool::Pool;

/// The gateway of one worker process.
pub(crate) struct McpGate {
    pub(crate) policy: Arc<Policy>,
    pub(crate) chain: Chain,
    /// The response phase: what servers send, judged per message.
    pub(crate) responses: ResponseChain,
    pub(crate) sessions: SessionStore,
    /// Upstream pools by name.
    pub(crate) pools: BTreeMap<String, Arc<Pool>>,
    pub(crate) admission: AdmissionControl,
    pub(crate) rate_limits: RateLimits,
    pub(crate) metrics: Metrics,
    /// Which worker of which instance this is.
    pub(crate) identity: WorkerIdentity,
    /// Seals and opens session ids.
    pub(crate) codec: SessionCodec,
    /// Connections to other workers' internal sockets.
    pub(crate) owner_link: Connector,
    /// Set when a drain began (`/readyz` answers 503).
    pub(crate) draining: AtomicBool,
    /// JWT access tokens (`[auth.jwt]`).
    pub(crate) tokens: Option<Arc<Tokens>>,
    /// The state file of pinned definitions, shared with the other workers.
    pub(crate) pin_files: PinFiles,
    /// This worker's audit trail (`[audit]`).
    pub(crate) audit: Option<AuditTrail>,
}

impl McpGate {
    /// The gateway of one worker process; `policy` is already this worker's
    /// share ([`Policy::for_worker`]).
    pub(crate) fn new(
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
        let metrics = Metrics::new(identity.index);
        let mut books = pins::books(&policy).map_err(std::io::Error::other)?;
        let pools: BTreeMap<String, Arc<Pool>> = policy
            .upstreams
            .iter()
            .map(|p| {
                let pool = Pool::new(
                    p,
                    clock.clone(),
                    books.remove(&p.name),
                    Some(metrics.stdio_workers.clone()),
                )?;
                if let Some(book) = &pool.pins {
                    pins::feed_schemas(&policy, &pool, book);
                }
                Ok((p.name.clone(), Arc::new(pool)))
            })
            .collect::<std::io::Result<_>>()?;
        let audit = policy
            .audit
            .as_ref()
            .map(|a| AuditTrail::start(a, &identity, metrics.audit_records.clone()));
        let gate = Self {
            audit,
            pin_files: PinFiles::new(&policy),
            pools,
            admission: AdmissionControl::new(&policy),
            rate_limits: RateLimits::new(&policy, identity.index, identity.workers),
            codec: SessionCodec::new(keys),
            owner_link: Connector::new(None),
            metrics,
            identity,
            chain: Chain::standard(),
            responses: ResponseChain::standard(),
            sessions,
            policy,
            draining: AtomicBool::new(false),
            tokens,
        };
        gate.pin_files.refresh(&gate);
        Ok(gate)
    }

    /// This worker's metrics, with the gauges read now.
    pub(crate) fn render_metrics(&self) -> String {
        self.metrics
            .in_flight
            .set(self.admission.in_flight() as i64);
        self.metrics
            .streams
            .set(self.admission.streams_open() as i64);
        self.metrics.sessions.set(self.sessions.len() as i64);
        for (name, pool) in &self.pools {
            for ep in &pool.endpoints {
                let labels = [name.as_str(), ep.url.as_str()];
                self.metrics
                    .breaker_open
                    .with_label_values(&labels)
                    .set(i64::from(ep.breaker_open()));
                self.metrics
                    .upstream_healthy
                    .with_label_values(&labels)
                    .set(i64::from(ep.is_healthy()));
            }
        }
        self.metrics.render()
    }

    /// Why this worker should get no new traffic, if it should not: it is
    /// draining, or a pool has no healthy endpoint.
    pub(crate) fn not_ready(&self) -> Option<String> {
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

    /// The pool that serves a request: its session's, else its tenant's
    /// (the first pool if that one is unknown).
    pub(crate) fn pool_for(&self, session_pool: Option<&str>, tenant: &str) -> &Arc<Pool> {
        let name = session_pool.unwrap_or_else(|| self.policy.pool_for(tenant).name.as_str());
        self.pools
            .get(name)
            .or_else(|| self.pools.values().next())
            .expect("at least one pool")
    }

    /// How long a client may accept no bytes of a response before it is cut off.
    pub(crate) fn slow_client_timeout(&self) -> Duration {
        Duration::from_millis(self.policy.admission.slow_client_timeout_ms)
    }

    /// This worker's index, when `[listen] expose_worker_header` is on.
    pub(crate) fn worker_header(&self) -> Option<usize> {
        self.policy
            .listen
            .expose_worker_header
            .then_some(self.identity.index)
    }
}

/// Returns once a drain has begun.
pub(crate) async fn until_stopped(shutdown: &mut ShutdownWatch) {
    // (The borrowed value is dropped here: it must not live across awaits.)
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}
