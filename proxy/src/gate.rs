//! The state one worker's stages share: [`McpGate`].
//!
//! Every stage of a request (accept, exchange, sessions, admission,
//! upstream) and every background task takes the worker's gate by
//! reference: its share of the policy, the filter chain, the sessions, the
//! upstream pools, the admission caps and rate limits, the metrics, which
//! worker it is, and the session keys. A reload swaps the generation
//! ([`Live`]) and keeps the [`Shared`] state. The gate holds that state and
//! answers questions about it; what happens to a request is decided by the
//! stages. So this module imports the data structures it holds and none of
//! the stages' logic, and no stage needs another stage's types to reach it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use filters::{Chain, ResponseChain};
use pingora::connectors::http::Connector;
use pingora::server::ShutdownWatch;
use policies::Policy;

use crate::accept::tls::Terminator;
use crate::admission::caps::AdmissionControl;
use crate::admission::ratelimit::RateLimits;
use crate::exchange::tokens::Tokens;
use crate::ops::audit::AuditTrail;
use crate::ops::clock::{Clock, SystemClock};
use crate::ops::metrics::Metrics;
use crate::ops::traces::Traces;
use crate::ops::worker_identity::WorkerIdentity;
use crate::sessions::session_id::SessionCodec;
use crate::sessions::store::SessionStore;
use crate::upstream::pins::{self, PinFiles};
use crate::upstream::pool::Pool;

/// One generation of a worker's gateway: the policy it judges by and what
/// is compiled from it, over the state that outlives a reload
/// ([`Shared`], reached through `Deref`). A request takes the generation
/// current when it starts ([`Live::load`]) and finishes under it.
pub(crate) struct McpGate {
    pub(crate) policy: Arc<Policy>,
    pub(crate) chain: Chain,
    /// The response phase: what servers send, judged per message.
    pub(crate) responses: ResponseChain,
    /// Upstream pools by name. A reload keeps a pool whose configuration
    /// and approved definitions did not change (its breakers, health,
    /// learned schemas and pins with it).
    pub(crate) pools: BTreeMap<String, Arc<Pool>>,
    /// Kept across a reload that changed no rate.
    pub(crate) rate_limits: Arc<RateLimits>,
    /// Seals and opens session ids.
    pub(crate) codec: SessionCodec,
    /// JWT access tokens (`[auth.jwt]`).
    pub(crate) tokens: Option<Arc<Tokens>>,
    /// The state file of pinned definitions, shared with the other workers.
    pub(crate) pin_files: PinFiles,
    /// The SHA-256 of the lock file the pools' pins were read from.
    lock_digest: Option<[u8; 32]>,
    /// 0 for the policy the worker started with, then one more per reload.
    pub(crate) generation: u64,
    shared: Arc<Shared>,
}

/// What outlives a reload: sessions, caps in use, metrics, identity.
pub(crate) struct Shared {
    pub(crate) sessions: SessionStore,
    pub(crate) admission: AdmissionControl,
    pub(crate) metrics: Metrics,
    /// Which worker of which instance this is.
    pub(crate) identity: WorkerIdentity,
    /// Connections to other workers' internal sockets.
    pub(crate) owner_link: Connector,
    /// Set when a drain began (`/readyz` answers 503).
    pub(crate) draining: AtomicBool,
    /// This worker's audit trail (`[audit]`, restart-only).
    pub(crate) audit: Option<AuditTrail>,
    /// This worker's tracer (`[traces]`, restart-only).
    pub(crate) traces: Option<Traces>,
    /// Stdio pools a reload replaced whose processes may still serve
    /// requests of the old generation: stopped when those finish, or by
    /// the drain.
    pub(crate) retired: parking_lot::Mutex<Vec<Arc<Pool>>>,
    clock: Arc<dyn Clock>,
}

impl std::ops::Deref for McpGate {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
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
        let audit = policy
            .audit
            .as_ref()
            .map(|a| AuditTrail::start(a, &identity, metrics.audit_records.clone()));
        let traces = match &policy.traces {
            Some(t) => Some(
                Traces::start(t, &identity, metrics.trace_spans.clone())
                    .map_err(std::io::Error::other)?,
            ),
            None => None,
        };
        let shared = Arc::new(Shared {
            sessions,
            admission: AdmissionControl::new(&policy),
            metrics,
            identity,
            owner_link: Connector::new(None),
            draining: AtomicBool::new(false),
            audit,
            traces,
            retired: parking_lot::Mutex::new(Vec::new()),
            clock,
        });
        let rate_limits = Arc::new(RateLimits::new(
            &policy,
            shared.identity.index,
            shared.identity.workers,
        ));
        Self::build(
            policy,
            shared,
            keys,
            tokens,
            rate_limits,
            &BTreeMap::new(),
            0,
        )
    }

    /// The next generation, over the same [`Shared`] state: pools and rate
    /// limits whose configuration did not change are carried over. Nothing
    /// changes in this generation or the shared state (see
    /// [`McpGate::take_caps`]): a generation that cannot be built leaves
    /// the running one as it was.
    pub(crate) fn next(
        &self,
        policy: Arc<Policy>,
        keys: &[[u8; 32]],
        tokens: Option<Arc<Tokens>>,
    ) -> std::io::Result<Self> {
        let same_rates = !policies::differs(&self.policy.rate_limits, &policy.rate_limits)
            && !policies::differs(&self.policy.auth.tenants, &policy.auth.tenants);
        let rate_limits = if same_rates {
            self.rate_limits.clone()
        } else {
            Arc::new(RateLimits::new(
                &policy,
                self.identity.index,
                self.identity.workers,
            ))
        };
        let same_pins = !policies::differs(&self.policy.tools, &policy.tools)
            && lock_digest(&policy)? == self.lock_digest;
        let keep: BTreeMap<String, Arc<Pool>> = if same_pins {
            policy
                .upstreams
                .iter()
                .filter_map(|p| {
                    let old = self.pools.get(&p.name)?;
                    (!policies::differs(&old.config, p)).then(|| (p.name.clone(), old.clone()))
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        Self::build(
            policy,
            self.shared.clone(),
            keys,
            tokens,
            rate_limits,
            &keep,
            self.generation + 1,
        )
    }

    fn build(
        policy: Arc<Policy>,
        shared: Arc<Shared>,
        keys: &[[u8; 32]],
        tokens: Option<Arc<Tokens>>,
        rate_limits: Arc<RateLimits>,
        keep: &BTreeMap<String, Arc<Pool>>,
        generation: u64,
    ) -> std::io::Result<Self> {
        let mut books = pins::books(&policy).map_err(std::io::Error::other)?;
        let pools: BTreeMap<String, Arc<Pool>> = policy
            .upstreams
            .iter()
            .map(|p| {
                if let Some(kept) = keep.get(&p.name) {
                    return Ok((p.name.clone(), kept.clone()));
                }
                let pool = Pool::new(
                    p,
                    shared.clock.clone(),
                    books.remove(&p.name),
                    Some(shared.metrics.stdio_workers.clone()),
                )?;
                if let Some(book) = &pool.pins {
                    pins::feed_schemas(&policy, &pool, book);
                }
                Ok((p.name.clone(), Arc::new(pool)))
            })
            .collect::<std::io::Result<_>>()?;
        let gate = Self {
            lock_digest: lock_digest(&policy)?,
            pin_files: PinFiles::new(&policy),
            pools,
            rate_limits,
            codec: SessionCodec::new(keys),
            chain: Chain::standard(),
            responses: ResponseChain::standard(),
            policy,
            tokens,
            generation,
            shared,
        };
        gate.pin_files.refresh(&gate);
        Ok(gate)
    }

    /// Applies this generation's caps to the shared state (called when it
    /// becomes current): what is held stays held; a lowered cap refuses
    /// only new work.
    pub(crate) fn take_caps(&self) {
        self.admission.reconfigure(&self.policy);
        self.sessions.reconfigure(
            Duration::from_secs(self.policy.sessions.idle_timeout_secs),
            self.policy.sessions.max_sessions,
        );
    }

    /// What outlives this generation.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// The pools of this generation that `next` does not carry over.
    pub(crate) fn retired_by(&self, next: &McpGate) -> Vec<Arc<Pool>> {
        self.pools
            .iter()
            .filter(|(name, pool)| !next.pools.get(*name).is_some_and(|p| Arc::ptr_eq(p, pool)))
            .map(|(_, pool)| pool.clone())
            .collect()
    }

    /// This worker's metrics, with the gauges read now.
    pub(crate) fn render_metrics(&self) -> String {
        self.metrics
            .in_flight
            .set(self.admission.in_flight() as i64);
        self.metrics
            .streams
            .set(self.admission.streams_open() as i64);
        let (limit, queued) = self.admission.fair_state();
        self.metrics.fair_limit.set(limit as i64);
        self.metrics.fair_queued.set(queued as i64);
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

/// The SHA-256 of `[tools] lock_file`, if there is one: a reload that
/// changed it rebuilds the pools' pins.
fn lock_digest(policy: &Policy) -> std::io::Result<Option<[u8; 32]>> {
    use sha2::Digest;
    match &policy.tools.lock_file {
        Some(path) => Ok(Some(sha2::Sha256::digest(std::fs::read(path)?).into())),
        None => Ok(None),
    }
}

/// The generation a worker serves with now, swapped whole by a reload.
pub(crate) struct Live {
    current: ArcSwap<McpGate>,
    /// Where a reload reads the policy from (`None`: it cannot reload).
    pub(crate) source: Option<ReloadSource>,
    /// One reload at a time.
    pub(crate) reloading: tokio::sync::Mutex<()>,
}

/// What a reload re-reads.
pub(crate) struct ReloadSource {
    /// The policy file the worker was started with.
    pub(crate) config: PathBuf,
    /// The TLS listener, whose certificate files are re-read.
    pub(crate) tls: Option<Arc<Terminator>>,
}

impl Live {
    #[cfg(test)]
    pub(crate) fn new(gate: McpGate) -> Arc<Self> {
        Self::reloading_from(gate, None)
    }

    pub(crate) fn reloading_from(gate: McpGate, source: Option<ReloadSource>) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::from_pointee(gate),
            source,
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// The current generation; a request holds it until it is answered.
    pub(crate) fn load(&self) -> Arc<McpGate> {
        self.current.load_full()
    }

    /// Makes `next` current: requests that start from now on use it.
    pub(crate) fn store(&self, next: Arc<McpGate>) {
        self.current.store(next);
    }
}

/// Returns once a drain has begun.
pub(crate) async fn until_stopped(shutdown: &mut ShutdownWatch) {
    // (The borrowed value is dropped here: it must not live across awaits.)
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}
