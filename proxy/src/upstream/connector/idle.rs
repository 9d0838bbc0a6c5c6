//! An endpoint's idle HTTP/1 keep-alive connections.
//!
//! pingora's pool spawns a task for every connection it takes back, to watch
//! it while it is idle (a timer, a oneshot to hand it out again, an LRU and
//! a concurrent map besides): about 5 % of a worker's CPU in the per-request
//! profile, for a connection that is idle for well under a millisecond under
//! load. Here an idle connection is only kept: whether it is still usable is
//! asked when it is taken (a read that must not be ready: the upstream
//! neither closed it nor sent anything unasked), and connections idle past
//! their time, or closed by the upstream, are dropped when taken or by
//! [`IdleConnections::sweep`], which the worker's maintenance calls.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Idle connections, most recently returned last; at most `max`.
pub struct IdleConnections<C> {
    idle: Mutex<VecDeque<(C, Instant)>>,
    max: usize,
    keep_for: Duration,
}

impl<C> IdleConnections<C> {
    /// Keeps at most `max` connections, each for at most `keep_for`.
    pub fn new(max: usize, keep_for: Duration) -> Self {
        Self {
            idle: Mutex::new(VecDeque::new()),
            max,
            keep_for,
        }
    }

    /// Keeps `conn`, returned at `now`; the longest idle one goes when full.
    pub fn put(&self, conn: C, now: Instant) {
        if self.max == 0 {
            return;
        }
        let evicted = {
            let mut idle = self.idle.lock();
            let evicted = (idle.len() >= self.max).then(|| idle.pop_front()).flatten();
            idle.push_back((conn, now));
            evicted
        };
        // (Closed outside the lock.)
        drop(evicted);
    }

    /// The most recently returned connection that is still `usable` and
    /// not idle past its time; those that are not are dropped.
    pub fn take(&self, now: Instant, mut usable: impl FnMut(&mut C) -> bool) -> Option<C> {
        let mut dropped = Vec::new();
        let found = {
            let mut idle = self.idle.lock();
            loop {
                let Some((mut conn, since)) = idle.pop_back() else {
                    break None;
                };
                if now.saturating_duration_since(since) <= self.keep_for && usable(&mut conn) {
                    break Some(conn);
                }
                dropped.push(conn);
            }
        };
        drop(dropped);
        found
    }

    /// Drops the connections idle past their time or no longer `usable`.
    pub fn sweep(&self, now: Instant, mut usable: impl FnMut(&mut C) -> bool) {
        let mut gone = Vec::new();
        {
            let mut idle = self.idle.lock();
            let mut kept = VecDeque::with_capacity(idle.len());
            for (mut conn, since) in idle.drain(..) {
                if now.saturating_duration_since(since) <= self.keep_for && usable(&mut conn) {
                    kept.push_back((conn, since));
                } else {
                    gone.push(conn);
                }
            }
            *idle = kept;
        }
        drop(gone);
    }

    /// How many connections are idle.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.idle.lock().len()
    }
}

#[cfg(test)]
mod tests;
