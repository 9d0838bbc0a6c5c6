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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use policies::{Policy, TenantName};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A hard concurrency cap.
#[derive(Debug)]
pub struct Cap {
    current: AtomicUsize,
    max: usize,
}

/// One held slot of a [`Cap`]; dropping it frees the slot.
#[derive(Debug)]
pub struct CapGuard(Arc<Cap>);

impl Cap {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            current: AtomicUsize::new(0),
            max,
        })
    }

    /// Takes a slot, or `None` when the cap is reached.
    pub fn try_acquire(self: &Arc<Self>) -> Option<CapGuard> {
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c < self.max).then_some(c + 1)
            })
            .ok()
            .map(|_| CapGuard(self.clone()))
    }

    pub fn current(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }

    #[cfg(test)]
    pub fn max(&self) -> usize {
        self.max
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
}

impl Shed {
    pub fn label(self) -> &'static str {
        match self {
            Shed::Global => "global",
            Shed::Tenant => "tenant",
            Shed::Bulkhead => "bulkhead",
            Shed::Streams => "streams",
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
    bulkheads: HashMap<String, Arc<Semaphore>>,
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
    global: Arc<Cap>,
    streams: Arc<Cap>,
    tenants: Mutex<HashMap<TenantName, TenantState>>,
    queue_timeout: Duration,
}

impl AdmissionControl {
    pub fn new(policy: &Policy) -> Self {
        let a = &policy.admission;
        Self {
            global: Cap::new(a.global_max_in_flight),
            streams: Cap::new(a.max_streams),
            tenants: Mutex::new(HashMap::new()),
            queue_timeout: Duration::from_millis(a.queue_timeout_ms),
        }
    }

    fn tenant(
        &self,
        policy: &Policy,
        tenant: &TenantName,
        pool: &str,
    ) -> (Arc<Cap>, Arc<Semaphore>) {
        let limits = policy.tenant_limits(tenant);
        let mut map = self.tenants.lock();
        let state = map.entry(tenant.clone()).or_insert_with(|| TenantState {
            cap: Cap::new(
                limits
                    .and_then(|l| l.max_in_flight)
                    .unwrap_or(policy.admission.tenant_max_in_flight),
            ),
            bulkheads: HashMap::new(),
        });
        let permits = limits
            .and_then(|l| l.max_concurrent_upstream)
            .unwrap_or(policy.admission.tenant_max_concurrent_upstream);
        let bulkhead = state
            .bulkheads
            .entry(pool.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(permits)))
            .clone();
        (state.cap.clone(), bulkhead)
    }

    /// Admits a request of `tenant` bound for `pool`: global and tenant caps
    /// at once (shedding), then a bulkhead permit (bounded wait).
    pub async fn admit(
        &self,
        policy: &Policy,
        tenant: &TenantName,
        pool: &str,
    ) -> Result<Admitted, Shed> {
        let global = self.global.try_acquire().ok_or(Shed::Global)?;
        let (cap, bulkhead) = self.tenant(policy, tenant, pool);
        let tenant_slot = cap.try_acquire().ok_or(Shed::Tenant)?;
        let permit = match bulkhead.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::time::timeout(self.queue_timeout, bulkhead.acquire_owned())
                .await
                .map_err(|_| Shed::Bulkhead)?
                .map_err(|_| Shed::Bulkhead)?,
        };
        Ok(Admitted {
            _global: global,
            _tenant: tenant_slot,
            _bulkhead: Some(permit),
        })
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

#[cfg(test)]
mod tests;
