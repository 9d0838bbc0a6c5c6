//! Upstream pools at run time: endpoints, their health and their breakers.
//!
//! Legacy sessions stick to the endpoint that created them; new sessions and
//! stateless requests go round-robin over endpoints that are healthy and
//! whose breaker lets a request through.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use policies::UpstreamPool;

use crate::ops::clock::Clock;
use crate::upstream::breaker::{Breaker, Ticket};
use crate::upstream::client::UpstreamClient;
use crate::upstream::credentials::Credentials;

/// How an exchange with an endpoint ended, for health and breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Connect failure: counts for health and breaker.
    ConnectFailure,
    /// 5xx, timeout, failure mid-response (or, by policy, -32603).
    Failure,
    /// Ended for a reason that says nothing about the endpoint (client left).
    Neutral,
}

pub struct Endpoint {
    pub index: usize,
    pub url: String,
    pub client: UpstreamClient,
    healthy: AtomicBool,
    failures: AtomicU32,
    successes: AtomicU32,
    breaker: Mutex<Breaker>,
}

impl Endpoint {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Whether this worker's breaker for the endpoint is open (or probing).
    pub fn breaker_open(&self) -> bool {
        self.breaker.lock().is_open()
    }
}

pub struct Pool {
    pub config: UpstreamPool,
    /// mcpgate's own credential for the pool's endpoints (`[upstream.auth]`).
    pub credentials: Option<Arc<Credentials>>,
    pub endpoints: Vec<Arc<Endpoint>>,
    /// The compiled `inputSchema` of each tool this pool's servers listed
    /// through this worker (`[tools] validate_arguments`). Per pool: two
    /// pools may serve different tools under one name.
    pub schemas: filters::SchemaCatalog,
    /// The compiled `outputSchema` of each tool this pool's servers listed
    /// through this worker (`[content.output_schema]`).
    pub output_schemas: filters::SchemaCatalog,
    /// The `x-mcp-header` declarations of the tools this pool's servers
    /// listed through this worker: 2026-07-28 calls' `Mcp-Param-*` headers
    /// are checked against them (a stdio server never sees the headers).
    pub param_headers: filters::ParamHeaderBook,
    /// What the poisoning rules hid in this pool's listings, and the
    /// findings of every content guard waiting to be logged (`[content]`).
    pub content_book: filters::ContentBook,
    /// The approved definitions of what this pool lists (`[tools]
    /// lock_file` or `pin`), `None` when pins are off.
    pub pins: Option<filters::PinBook>,
    /// `config.name`, shared by the requests pinned to this pool.
    pub name: Arc<str>,
    next: AtomicUsize,
    clock: Arc<dyn Clock>,
}

/// Stops the stdio worker processes of `pools` and waits until they
/// exited (a few seconds at most), so their ends are logged and counted
/// and none is left behind.
pub(crate) async fn stop_stdio_workers<'a>(pools: impl IntoIterator<Item = &'a Arc<Pool>>) {
    let stdio: Vec<_> = pools
        .into_iter()
        .flat_map(|p| p.endpoints.iter().filter_map(|e| e.client.stdio().cloned()))
        .collect();
    for p in &stdio {
        p.shutdown();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while stdio.iter().any(|p| p.live() > 0) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Why no endpoint can take a request now; carries the `Retry-After` hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Every endpoint is unhealthy.
    NoHealthy,
    /// The breaker is open (for the sticky endpoint, or for all of them).
    BreakerOpen(Duration),
}

impl Pool {
    /// Whether the pool's servers are processes mcpgate spawns (stdio):
    /// they never see the HTTP request.
    pub fn spawns_workers(&self) -> bool {
        self.config
            .endpoints
            .iter()
            .any(|e| matches!(e.transport, policies::Transport::Stdio(_)))
    }

    pub fn new(
        config: &UpstreamPool,
        clock: Arc<dyn Clock>,
        pins: Option<filters::PinBook>,
        stdio_events: Option<prometheus::IntCounterVec>,
    ) -> std::io::Result<Self> {
        let credentials = match &config.auth {
            Some(c) => Some(Arc::new(
                Credentials::load(c, clock.clone()).map_err(std::io::Error::other)?,
            )),
            None => None,
        };
        let endpoints = config
            .endpoints
            .iter()
            .enumerate()
            .map(|(index, e)| {
                Ok(Arc::new(Endpoint {
                    index,
                    url: e.url.clone(),
                    client: UpstreamClient::new(
                        e,
                        config,
                        credentials.clone(),
                        stdio_events.clone(),
                    )?,
                    healthy: AtomicBool::new(true),
                    failures: AtomicU32::new(0),
                    successes: AtomicU32::new(0),
                    breaker: Mutex::new(Breaker::new(config.breaker)),
                }))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            credentials,
            config: config.clone(),
            endpoints,
            schemas: filters::SchemaCatalog::new(),
            output_schemas: filters::SchemaCatalog::new(),
            param_headers: filters::ParamHeaderBook::new(),
            content_book: filters::ContentBook::new(),
            pins,
            name: Arc::from(config.name.as_str()),
            next: AtomicUsize::new(0),
            clock,
        })
    }

    /// The breaker's verdict for one endpoint.
    pub fn acquire(&self, ep: &Endpoint) -> Result<Ticket, Unavailable> {
        ep.breaker
            .lock()
            .try_acquire(self.clock.now())
            .map_err(Unavailable::BreakerOpen)
    }

    /// A healthy endpoint whose breaker admits a request, round-robin,
    /// skipping those in `exclude` (already tried for this request).
    pub fn pick(&self, exclude: &[usize]) -> Result<(Arc<Endpoint>, Ticket), Unavailable> {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut soonest: Option<Duration> = None;
        for k in 0..n {
            let ep = &self.endpoints[(start + k) % n];
            if !ep.is_healthy() || exclude.contains(&ep.index) {
                continue;
            }
            match self.acquire(ep) {
                Ok(t) => return Ok((ep.clone(), t)),
                Err(Unavailable::BreakerOpen(d)) => soonest = Some(soonest.map_or(d, |s| s.min(d))),
                Err(Unavailable::NoHealthy) => {}
            }
        }
        Err(soonest.map_or(Unavailable::NoHealthy, Unavailable::BreakerOpen))
    }

    /// Records an exchange's outcome in the endpoint's breaker and health.
    pub fn report(&self, ep: &Endpoint, ticket: Ticket, outcome: Outcome) {
        let now = self.clock.now();
        match outcome {
            Outcome::Neutral => ep.breaker.lock().release_unused(ticket),
            Outcome::Success => {
                ep.breaker.lock().record(now, ticket, true);
                ep.failures.store(0, Ordering::Release);
            }
            Outcome::ConnectFailure | Outcome::Failure => {
                ep.breaker.lock().record(now, ticket, false);
                if outcome == Outcome::ConnectFailure {
                    self.passive_failure(ep);
                }
            }
        }
    }

    /// A connection could not be made: count toward unhealthy. With active
    /// checks off nothing would bring the endpoint back, so only the breaker
    /// reacts then.
    fn passive_failure(&self, ep: &Endpoint) {
        let n = ep.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if self.config.health.interval_ms > 0 && n >= self.config.health.unhealthy_after {
            self.mark(ep, false);
        }
    }

    /// Result of one active health check.
    pub fn report_check(&self, ep: &Endpoint, ok: bool) {
        if ok {
            ep.failures.store(0, Ordering::Release);
            let n = ep.successes.fetch_add(1, Ordering::AcqRel) + 1;
            if n >= self.config.health.healthy_after {
                self.mark(ep, true);
            }
        } else {
            ep.successes.store(0, Ordering::Release);
            let n = ep.failures.fetch_add(1, Ordering::AcqRel) + 1;
            if n >= self.config.health.unhealthy_after {
                self.mark(ep, false);
            }
        }
    }

    fn mark(&self, ep: &Endpoint, healthy: bool) {
        if ep.healthy.swap(healthy, Ordering::AcqRel) != healthy {
            tracing::warn!(pool = %self.config.name, endpoint = %ep.url, healthy, "endpoint health changed");
        }
    }
}
