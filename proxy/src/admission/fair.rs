//! Fair shares of a worker when mcpgate itself is the bottleneck.
//!
//! The caps refuse work past fixed numbers; they do nothing while a flood
//! stays under them and what runs out is this proxy's CPU. Every runnable
//! request then waits its turn behind every other, so a tenant with 256
//! connections is served 32 times as often as one with 8, and the quiet
//! tenant's latency becomes the flood's.
//!
//! The [`FairGate`] bounds the requests a worker serves at once. A request
//! enters once its body is read (a slow client holds no place) and leaves
//! when the upstream answered, or once it has waited on the upstream for
//! [`LONG_WAIT`] (a slow tool costs this proxy nothing while it runs). At the
//! limit a request waits in its tenant's queue, and freed places go to the
//! tenant queues in turn, one request each (the limit holds only while two
//! or more tenants sent requests in the last half second: alone, a tenant
//! has nobody to share with and is never held back). A tenant holding less
//! than its share of the limit (the limit over the active tenants), with
//! nothing queued, enters at once, past the limit if need be: a quiet
//! tenant waits neither behind a flood's backlog nor for a flood's place to
//! free, and a tenant with no configured limit gets no more than its share
//! while others wait. A tenant's queue is bounded by its in-flight cap and a
//! wait by `queue_timeout_ms`; past either the request is refused at once
//! (503), before the message's own filters cost anything.
//!
//! The limit follows the worker's scheduling delay, the time a socket that
//! became readable waits before the event loop polls its task
//! ([`lag_probe`] measures it every [`PROBE_EVERY`]): that delay is what
//! every request pays at each step when the proxy is the bottleneck. Above
//! [`LAG_TARGET`] (smoothed over probes) the limit drops to nine tenths of
//! what is in use, per probe (never below [`MIN_LIMIT`]); at or below it,
//! and only while requests are queued, it grows by a twentieth (an AIMD
//! loop, as in TCP congestion control). A worker that is not congested
//! never limits anyone: the limit starts at, and returns to, the worker's
//! in-flight cap.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use policies::TenantName;
use tokio::sync::oneshot;

/// The fewest requests a worker serves at once, however congested (the
/// limit only sinks while the delay is over target, so this floor bounds
/// the harm when the delay comes from work the gate does not hold).
pub const MIN_LIMIT: usize = 4;
/// A request waiting this long on its upstream leaves the gate.
pub const LONG_WAIT: Duration = Duration::from_millis(50);
/// The scheduling delay the limit steers towards. A quiet request meets
/// this delay twice (arrival, the answer). In the `isolation` bench, with
/// one worker saturated by a 256-connection flood: at 300 µs the limit sat
/// at 8 to 11 (its floor then) and the delay stayed near 300 µs, a quiet
/// tenant's p50 about 900 µs against 240–290 µs alone; at 150 µs the limit
/// settles near 5 and that p50 near 500 µs, with the same flood throughput
/// (a few requests in flight keep a fast upstream busy).
pub const LAG_TARGET: Duration = Duration::from_micros(150);
/// How often the scheduling delay is measured.
pub const PROBE_EVERY: Duration = Duration::from_millis(10);
/// Weight of one probe in the smoothed delay.
const LAG_WEIGHT: f64 = 0.3;
/// A tenant counts as active for this many probes after its last request.
const ACTIVE_PROBES: u32 = 50;

/// A worker's fair gate.
pub struct FairGate {
    state: Mutex<State>,
}

/// Why a request did not enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its tenant's queue is full.
    QueueFull,
    /// No place came within the queue timeout.
    Timeout,
}

struct State {
    limit: usize,
    max_limit: usize,
    in_use: usize,
    /// Places in use per tenant (tenants with none are absent).
    held: HashMap<TenantName, usize>,
    queued: usize,
    queues: HashMap<TenantName, VecDeque<oneshot::Sender<()>>>,
    /// Tenants with a queued request, in the order they are served.
    turns: VecDeque<TenantName>,
    /// Smoothed scheduling delay, in microseconds.
    lag_us: f64,
    /// Probes so far, and the probe at which each tenant last entered or
    /// queued: with one tenant active there is nobody to share with, and
    /// the limit is not enforced.
    probes: u32,
    last_seen: HashMap<TenantName, u32>,
}

/// A place in the gate; dropping it gives the place to the next tenant in
/// turn.
pub struct FairPermit {
    gate: Arc<FairGate>,
    tenant: TenantName,
}

impl FairGate {
    /// A gate that admits at most `max_limit` requests at once.
    pub fn new(max_limit: usize) -> Arc<Self> {
        let max_limit = max_limit.max(MIN_LIMIT);
        Arc::new(Self {
            state: Mutex::new(State {
                limit: max_limit,
                max_limit,
                in_use: 0,
                held: HashMap::new(),
                queued: 0,
                queues: HashMap::new(),
                turns: VecDeque::new(),
                lag_us: 0.0,
                probes: 0,
                last_seen: HashMap::new(),
            }),
        })
    }

    /// A new upper bound (a reload changed the caps); the limit itself
    /// keeps adapting below it.
    pub fn set_max_limit(&self, max_limit: usize) {
        let mut s = self.state.lock();
        s.max_limit = max_limit.max(MIN_LIMIT);
        s.limit = s.limit.min(s.max_limit);
        s.grant_waiting();
    }

    /// Enters at once below the limit; otherwise waits in `tenant`'s queue
    /// (at most `max_queued` deep) for up to `wait`.
    pub async fn enter(
        self: &Arc<Self>,
        tenant: &TenantName,
        max_queued: usize,
        wait: Duration,
    ) -> Result<FairPermit, Refused> {
        let granted = {
            let mut s = self.state.lock();
            // (Waiters that gave up may still hold turns.)
            s.grant_waiting();
            let probes = s.probes;
            if s.last_seen.get(tenant) != Some(&probes) {
                s.last_seen.insert(tenant.clone(), probes);
            }
            // (Alone, `grant_waiting` has emptied the queue.)
            if (s.turns.is_empty() && (s.in_use < s.limit || s.last_seen.len() < 2))
                || s.below_share(tenant)
            {
                s.take_place(tenant);
                drop(s);
                return Ok(self.permit(tenant));
            }
            let queue = s.queues.entry(tenant.clone()).or_default();
            if queue.len() >= max_queued {
                if queue.is_empty() {
                    s.queues.remove(tenant);
                }
                return Err(Refused::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            queue.push_back(tx);
            if queue.len() == 1 {
                s.turns.push_back(tenant.clone());
            }
            s.queued += 1;
            rx
        };
        let mut waiting = Waiting {
            granted: Some(granted),
            gate: self,
            tenant,
        };
        let outcome = match waiting.granted.as_mut() {
            Some(rx) => tokio::time::timeout(wait, rx).await,
            None => return Err(Refused::Timeout),
        };
        match outcome {
            Ok(Ok(())) => {
                waiting.granted = None;
                Ok(self.permit(tenant))
            }
            // The gate dropped the sender only when this waiter had gone.
            Ok(Err(_)) => Err(Refused::Timeout),
            Err(_) => {
                // A place given just as the wait ended is taken, not lost.
                let mut rx = waiting.granted.take().ok_or(Refused::Timeout)?;
                rx.close();
                match rx.try_recv() {
                    Ok(()) => Ok(self.permit(tenant)),
                    Err(_) => Err(Refused::Timeout),
                }
            }
        }
    }

    fn permit(self: &Arc<Self>, tenant: &TenantName) -> FairPermit {
        FairPermit {
            gate: self.clone(),
            tenant: tenant.clone(),
        }
    }

    fn leave(&self, tenant: &TenantName) {
        let mut s = self.state.lock();
        s.give_place(tenant);
        s.grant_waiting();
    }

    /// One measurement of the worker's scheduling delay moves the limit.
    pub fn observe_lag(&self, lag: Duration) {
        let mut s = self.state.lock();
        s.probes = s.probes.wrapping_add(1);
        let probes = s.probes;
        s.last_seen
            .retain(|_, seen| probes.wrapping_sub(*seen) <= ACTIVE_PROBES);
        let sample = lag.as_secs_f64() * 1e6;
        s.lag_us += LAG_WEIGHT * (sample - s.lag_us);
        if s.lag_us > LAG_TARGET.as_secs_f64() * 1e6 {
            // Shrink towards what is in use (a limit far above it would
            // take many probes to matter).
            let from = s.limit.min(s.in_use.max(MIN_LIMIT));
            s.limit = (from - (from / 10).max(1)).max(MIN_LIMIT);
        } else if s.queued > 0 {
            s.limit = (s.limit + (s.limit / 20).max(1)).min(s.max_limit);
        } else if s.in_use < s.limit / 2 {
            // Nobody waits and half the places are free: no reason to
            // limit anyone, back to the cap.
            s.limit = s.max_limit;
        }
        // (A tenant may be alone now: its queue is served.)
        s.grant_waiting();
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.state.lock().limit
    }

    /// Requests waiting for a place.
    pub fn queued(&self) -> usize {
        self.state.lock().queued
    }

    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        self.state.lock().in_use
    }
}

impl State {
    /// Whether `tenant`, with nothing queued, holds fewer places than its
    /// share of the limit (the limit over the active tenants): such a
    /// request enters at once, past the limit if need be, and the tenants
    /// over their share wait the longer. A quiet tenant then never waits
    /// for a flood's place to free, and the places in use stay under the
    /// limit plus the larger of the limit and the active tenants.
    fn below_share(&self, tenant: &TenantName) -> bool {
        let share = (self.limit / self.last_seen.len().max(1)).max(1);
        !self.queues.contains_key(tenant) && self.held.get(tenant).copied().unwrap_or(0) < share
    }

    fn take_place(&mut self, tenant: &TenantName) {
        self.in_use += 1;
        match self.held.get_mut(tenant) {
            Some(n) => *n += 1,
            None => {
                self.held.insert(tenant.clone(), 1);
            }
        }
    }

    /// Undoes [`State::take_place`].
    fn give_place(&mut self, tenant: &TenantName) {
        self.in_use = self.in_use.saturating_sub(1);
        if let Some(n) = self.held.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(tenant);
            }
        }
    }

    /// Gives free places to the queued tenants in turn (every queued
    /// request, when only one tenant is active).
    fn grant_waiting(&mut self) {
        let alone = self.last_seen.len() < 2;
        while alone || self.in_use < self.limit {
            let Some(tenant) = self.turns.pop_front() else {
                return;
            };
            let Some(queue) = self.queues.get_mut(&tenant) else {
                continue;
            };
            let waiter = queue.pop_front();
            if queue.is_empty() {
                self.queues.remove(&tenant);
            } else {
                self.turns.push_back(tenant.clone());
            }
            if let Some(w) = waiter {
                self.queued = self.queued.saturating_sub(1);
                // A waiter that gave up no longer takes the place.
                if w.send(()).is_ok() {
                    self.take_place(&tenant);
                }
            }
        }
    }
}

/// A wait for a place; dropped before its end (the request was cancelled),
/// a place given meanwhile goes back to the gate.
struct Waiting<'g> {
    granted: Option<oneshot::Receiver<()>>,
    gate: &'g FairGate,
    tenant: &'g TenantName,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.granted.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.gate.leave(self.tenant);
            }
        }
    }
}

impl Drop for FairPermit {
    fn drop(&mut self) {
        self.gate.leave(&self.tenant);
    }
}

/// Measures the worker's scheduling delay every [`PROBE_EVERY`] for as long
/// as `gate` is in use, as a request meets it: a thread of its own sends a
/// timestamp over a datagram socket, and the delay is how long the event
/// loop takes to notice the socket is readable and poll this task, behind
/// every other runnable task.
///
/// (A task that yields and times its own return measures much less: tokio
/// polls its I/O driver only every `event_interval` ticks while tasks are
/// runnable, and a yielded task waits for that poll, not for the queue. In
/// the `isolation` bench, steering by that measure let the limit rise until
/// a quiet tenant's p99 was 20 to 30 times its p99 alone.)
pub async fn lag_probe(gate: std::sync::Weak<FairGate>) {
    let clock = std::time::Instant::now();
    let probe = std::os::unix::net::UnixDatagram::pair().and_then(|(ticker, probe)| {
        ticker.set_write_timeout(Some(PROBE_EVERY))?;
        std::thread::Builder::new()
            .name("mcpgate-lag".into())
            .spawn(move || tick(&ticker, clock))?;
        probe.set_nonblocking(true)?;
        tokio::net::UnixDatagram::from_std(probe)
    });
    let probe = match probe {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("fair queueing runs without its delay probe: {e}");
            return;
        }
    };
    let mut sent = [0u8; 8];
    // Ends when the gate is gone; dropping `probe` then ends the thread.
    while let Ok(8) = probe.recv(&mut sent).await {
        let Some(gate) = gate.upgrade() else {
            return;
        };
        let sent = Duration::from_nanos(u64::from_le_bytes(sent));
        gate.observe_lag(clock.elapsed().saturating_sub(sent));
    }
}

/// The probe's thread: a timestamp every [`PROBE_EVERY`] until the
/// receiving end is gone.
fn tick(ticker: &std::os::unix::net::UnixDatagram, clock: std::time::Instant) {
    loop {
        std::thread::sleep(PROBE_EVERY);
        let now = clock.elapsed().as_nanos() as u64;
        match ticker.send(&now.to_le_bytes()) {
            Ok(_) => {}
            // The event loop is far behind: this sample is not needed.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests;
