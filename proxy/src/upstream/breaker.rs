//! Per-endpoint circuit breaker: closed → open → half-open → closed.
//!
//! Pure state machine over a [`Clock`]'s instants, so tests drive time
//! deterministically. Failures are connect errors, 5xx, timeouts and (by
//! policy) JSON-RPC internal errors; the caller classifies, the breaker counts.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use policies::BreakerPolicy;

/// Most outcomes kept for the failure-rate window (bounded memory).
const MAX_WINDOW_SAMPLES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probes_out: u32 },
}

/// What a caller holds while its request is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ticket {
    Normal,
    Probe,
}

#[derive(Debug)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: State,
    consecutive: u32,
    window: VecDeque<(Instant, bool)>,
    /// Failures in `window`, kept as it changes: counting them on every
    /// answer walked up to 4096 samples per request.
    window_failures: usize,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            state: State::Closed,
            consecutive: 0,
            window: VecDeque::new(),
            window_failures: 0,
        }
    }

    #[cfg(test)]
    pub fn state(&self) -> State {
        self.state
    }

    /// Open, or letting probes through (not yet closed again).
    pub fn is_open(&self) -> bool {
        !matches!(self.state, State::Closed)
    }

    /// May a request go to the endpoint now? `Err` carries how long until
    /// the breaker will let a probe through (for `Retry-After`).
    pub fn try_acquire(&mut self, now: Instant) -> Result<Ticket, Duration> {
        match self.state {
            State::Closed => Ok(Ticket::Normal),
            State::Open { until } if now < until => Err(until - now),
            State::Open { .. } => {
                self.state = State::HalfOpen { probes_out: 1 };
                Ok(Ticket::Probe)
            }
            State::HalfOpen { probes_out } if probes_out < self.policy.half_open_probes => {
                self.state = State::HalfOpen {
                    probes_out: probes_out + 1,
                };
                Ok(Ticket::Probe)
            }
            State::HalfOpen { .. } => {
                Err(Duration::from_millis(self.policy.cooldown_ms.min(1_000)))
            }
        }
    }

    /// Records the outcome of a request admitted with `ticket`.
    pub fn record(&mut self, now: Instant, ticket: Ticket, success: bool) {
        if ticket == Ticket::Probe {
            match (self.state, success) {
                (State::HalfOpen { .. }, true) => self.close(),
                (State::HalfOpen { .. }, false) => self.open(now),
                _ => {}
            }
            return;
        }
        if self.state != State::Closed {
            return; // a late answer from before the breaker opened
        }
        self.consecutive = if success { 0 } else { self.consecutive + 1 };
        self.window.push_back((now, success));
        self.window_failures += usize::from(!success);
        let horizon = now.checked_sub(Duration::from_millis(self.policy.window_ms));
        while self.window.front().is_some_and(|(t, _)| Some(*t) < horizon)
            || self.window.len() > MAX_WINDOW_SAMPLES
        {
            if let Some((_, ok)) = self.window.pop_front() {
                self.window_failures -= usize::from(!ok);
            }
        }
        if self.should_open() {
            self.open(now);
        }
    }

    /// Gives back a probe ticket whose request never reached the endpoint.
    pub fn release_unused(&mut self, ticket: Ticket) {
        if let (Ticket::Probe, State::HalfOpen { probes_out }) = (ticket, self.state) {
            self.state = State::HalfOpen {
                probes_out: probes_out.saturating_sub(1),
            };
        }
    }

    fn should_open(&self) -> bool {
        let p = &self.policy;
        if p.consecutive_failures > 0 && self.consecutive >= p.consecutive_failures {
            return true;
        }
        if p.failure_rate > 0.0 && self.window.len() as u32 >= p.min_requests {
            return self.window_failures as f64 / self.window.len() as f64 >= p.failure_rate;
        }
        false
    }

    fn open(&mut self, now: Instant) {
        self.state = State::Open {
            until: now + Duration::from_millis(self.policy.cooldown_ms),
        };
        self.consecutive = 0;
        self.window.clear();
        self.window_failures = 0;
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.consecutive = 0;
        self.window.clear();
        self.window_failures = 0;
    }
}

#[cfg(test)]
mod tests;
