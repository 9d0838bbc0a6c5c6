//! Admission control: hard caps decided before any upstream contact.
//!
//! - [`Cap`]: a counter that never exceeds its maximum (compare-and-swap), with
//!   an RAII [`CapGuard`] that gives the slot back on drop. Global and
//!   per-tenant in-flight caps are caps: **load shedding**, 503 at once.
//! - Bulkheads: each tenant gets its own semaphore per upstream pool, so a
//!   flood from one tenant cannot take another's upstream concurrency. A
//!   request waits for a permit at most `queue_timeout_ms`: **bounded
//!   queueing** (the queue is bounded by the tenant cap, which counts queued
//!   requests too).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use policies::{Policy, TenantName};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::admission::fair::{FairGate, FairPermit};

/// A hard concurrency cap.
#[derive(Debug)]
pub struct Cap {
    current: AtomicUsize,
    /// Changed by a reload: a maximum lowered below the current use
    /// refuses new slots until enough are given back.
    max: AtomicUsize,
}

/// One held slot of a [`Cap`]; dropping it frees the slot.
#[derive(Debug)]
pub struct CapGuard(Arc<Cap>);

impl Cap {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            current: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
        })
    }

    /// Takes a slot, or `None` when the cap is reached.
    pub fn try_acquire(self: &Arc<Self>) -> Option<CapGuard> {
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c < self.max.load(Ordering::Acquire)).then_some(c + 1)
            })
            .ok()
            .map(|_| CapGuard(self.clone()))
    }

    pub fn current(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }

    #[cfg(test)]
    pub fn max(&self) -> usize {
        self.max.load(Ordering::Acquire)
    }

    /// A new maximum; slots already held stay held.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Release);
    }
}

impl Drop for CapGuard {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Which cap refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    Global,
    Tenant,
    /// No bulkhead permit within the queue timeout.
    Bulkhead,
    Streams,
    /// The tenant's queue at the fair gate is full, or no place came within
    /// the queue timeout.
    FairShare,
}

impl Shed {
    pub fn label(self) -> &'static str {
        match self {
            Shed::Global => "global",
            Shed::Tenant => "tenant",
            Shed::Bulkhead => "bulkhead",
            Shed::Streams => "streams",
            Shed::FairShare => "fair share",
        }
    }
}

/// Everything a request holds while admitted; dropping it frees every slot.
#[derive(Debug)]
pub struct Admitted {
    _global: CapGuard,
    _tenant: CapGuard,
    _bulkhead: Option<OwnedSemaphorePermit>,
}

struct TenantState {
    cap: Arc<Cap>,
    bulkheads: HashMap<String, Bulkhead>,
}

/// One tenant's concurrency towards one pool, and its configured size.
struct Bulkhead {
    permits: Arc<Semaphore>,
    size: usize,
}

impl Bulkhead {
    fn new(size: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// Grows at once; shrinks by taking the surplus permits out of use as
    /// they are given back (requests holding one finish; new ones queue,
    /// first in first out, behind the shrink).
    fn resize(&mut self, size: usize) {
        if size > self.size {
            self.permits.add_permits(size - self.size);
        } else if size < self.size {
            let (permits, surplus) = (self.permits.clone(), (self.size - size) as u32);
            tokio::spawn(async move {
                if let Ok(p) = permits.acquire_many_owned(surplus).await {
                    p.forget();
                }
            });
        }
        self.size = size;
    }
}

/// A held admission slot (request or stream), freed on drop.
pub(crate) struct Held {
    _request: Option<Admitted>,
    _stream: Option<CapGuard>,
}

impl Held {
    /// A request's slot ([`AdmissionControl::admit`]).
    pub(crate) fn request(slot: Admitted) -> Self {
        Self {
            _request: Some(slot),
            _stream: None,
        }
    }

    /// A long-lived stream's slot ([`AdmissionControl::admit_stream`]).
    pub(crate) fn stream(slot: CapGuard) -> Self {
        Self {
            _request: None,
            _stream: Some(slot),
        }
    }
}

pub struct AdmissionControl {
    /// Shares the worker between tenants when it is the bottleneck.
    fair: Arc<FairGate>,
    global: Arc<Cap>,
    streams: Arc<Cap>,
    tenants: Mutex<HashMap<TenantName, TenantState>>,
    /// Milliseconds (changed by a reload).
    queue_timeout_ms: AtomicU64,
}

impl AdmissionControl {
    pub fn new(policy: &Policy) -> Self {
        let a = &policy.admission;
        Self {
            fair: FairGate::new(a.global_max_in_flight),
            global: Cap::new(a.global_max_in_flight),
            streams: Cap::new(a.max_streams),
            tenants: Mutex::new(HashMap::new()),
            queue_timeout_ms: AtomicU64::new(a.queue_timeout_ms),
        }
    }

    /// Takes the caps of a reloaded policy (this worker's share). The slots
    /// in use stay held: a cap lowered below its use refuses only new work.
    pub fn reconfigure(&self, policy: &Policy) {
        let a = &policy.admission;
        self.global.set_max(a.global_max_in_flight);
        self.fair.set_max_limit(a.global_max_in_flight);
        self.streams.set_max(a.max_streams);
        self.queue_timeout_ms
            .store(a.queue_timeout_ms, Ordering::Release);
        let mut map = self.tenants.lock();
        for (tenant, state) in map.iter_mut() {
            let (cap, permits) = tenant_sizes(policy, tenant);
            state.cap.set_max(cap);
            for bulkhead in state.bulkheads.values_mut() {
                bulkhead.resize(permits);
            }
        }
    }

    fn tenant(
        &self,
        policy: &Policy,
        tenant: &TenantName,
        pool: &str,
    ) -> (Arc<Cap>, Arc<Semaphore>) {
        let (cap, permits) = tenant_sizes(policy, tenant);
        let mut map = self.tenants.lock();
        let state = map.entry(tenant.clone()).or_insert_with(|| TenantState {
            cap: Cap::new(cap),
            bulkheads: HashMap::new(),
        });
        // Looked up by the borrowed name first: the owned key is made once
        // per pool, not once per request.
        let bulkhead = match state.bulkheads.get(pool) {
            Some(b) => b.permits.clone(),
            None => state
                .bulkheads
                .entry(pool.to_string())
                .or_insert_with(|| Bulkhead::new(permits))
                .permits
                .clone(),
        };
        (state.cap.clone(), bulkhead)
    }

    /// Admits a request of `tenant` bound for `pool`: global and tenant caps
    /// at once (shedding), then a bulkhead permit (bounded wait).
    #[cfg(test)]
    pub async fn admit(
        &self,
        policy: &Policy,
        tenant: &TenantName,
        pool: &str,
    ) -> Result<Admitted, Shed> {
        self.admit_or_wait(policy, tenant, pool, || {}).await
    }

    /// [`Self::admit`], calling `before_waiting` first when the bulkhead has
    /// no permit free (a request gives up its place at the fair gate rather
    /// than hold it while it waits).
    pub async fn admit_or_wait(
        &self,
        policy: &Policy,
        tenant: &TenantName,
        pool: &str,
        before_waiting: impl FnOnce(),
    ) -> Result<Admitted, Shed> {
        let global = self.global.try_acquire().ok_or(Shed::Global)?;
        let (cap, bulkhead) = self.tenant(policy, tenant, pool);
        let tenant_slot = cap.try_acquire().ok_or(Shed::Tenant)?;
        let permit = match bulkhead.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                before_waiting();
                let wait = Duration::from_millis(self.queue_timeout_ms.load(Ordering::Acquire));
                tokio::time::timeout(wait, bulkhead.acquire_owned())
                    .await
                    .map_err(|_| Shed::Bulkhead)?
                    .map_err(|_| Shed::Bulkhead)?
            }
        };
        Ok(Admitted {
            _global: global,
            _tenant: tenant_slot,
            _bulkhead: Some(permit),
        })
    }

    /// A place at the fair gate for a request of `tenant` (`None` when
    /// `fair_queueing` is off): at once below the gate's limit, else after
    /// the other tenants waiting have had their turn. The tenant's queue
    /// holds at most its in-flight cap, and a wait lasts at most
    /// `queue_timeout_ms`.
    pub async fn enter_fair(
        &self,
        policy: &Policy,
        tenant: &TenantName,
    ) -> Result<Option<FairPermit>, Shed> {
        if !policy.admission.fair_queueing {
            return Ok(None);
        }
        let (max_queued, _) = tenant_sizes(policy, tenant);
        let wait = Duration::from_millis(self.queue_timeout_ms.load(Ordering::Acquire));
        self.fair
            .enter(tenant, max_queued, wait)
            .await
            .map(Some)
            .map_err(|_| Shed::FairShare)
    }

    /// Starts measuring the worker's scheduling delay for the fair gate
    /// (in the background, while this admission control exists).
    pub fn start_lag_probe(&self) {
        tokio::spawn(crate::admission::fair::lag_probe(Arc::downgrade(
            &self.fair,
        )));
    }

    /// The fair gate's current limit and queued requests.
    pub fn fair_state(&self) -> (usize, usize) {
        (self.fair.limit(), self.fair.queued())
    }

    /// A slot for a long-lived stream (GET, `subscriptions/listen`), which is
    /// capped on its own: streams would otherwise fill the request caps.
    pub fn admit_stream(&self) -> Result<CapGuard, Shed> {
        self.streams.try_acquire().ok_or(Shed::Streams)
    }

    pub fn in_flight(&self) -> usize {
        self.global.current()
    }

    pub fn streams_open(&self) -> usize {
        self.streams.current()
    }
}

/// A tenant's in-flight cap and its bulkhead size per pool.
fn tenant_sizes(policy: &Policy, tenant: &TenantName) -> (usize, usize) {
    let limits = policy.tenant_limits(tenant);
    (
        limits
            .and_then(|l| l.max_in_flight)
            .unwrap_or(policy.admission.tenant_max_in_flight),
        limits
            .and_then(|l| l.max_concurrent_upstream)
            .unwrap_or(policy.admission.tenant_max_concurrent_upstream),
    )
}

#[cfg(test)]
mod tests;
