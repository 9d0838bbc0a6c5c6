//! Send times finer than tokio's timer, for fixed-rate load.
//!
//! tokio's timer wheel ticks in whole milliseconds, so every request due
//! within one millisecond was sent at once: at 12,400 requests/s, bursts of
//! about 12 requests every millisecond. That is not the load it claims to be
//! (half the proxy's capacity, evenly spread): for half of each millisecond
//! the proxy was at full load, and the measured latency was mostly the wait
//! behind the burst, for the mock as for mcpgate. Each connection now waits
//! for its request's due time on a `timerfd` of its own, which the kernel
//! fires on its high-resolution timer (no timer slack) and tokio's reactor
//! reports like a socket: no thread of its own, no busy waiting.
//!
//! Where a timer cannot be made (a kernel without `timerfd`), the old way
//! remains: tokio's timer, aimed half a tick early.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

/// Half of tokio's timer resolution (the fallback's aim).
const TIMER_HALF_TICK: Duration = Duration::from_micros(500);

/// A one-shot timer for one connection's sends.
pub struct Pacer {
    fine: Option<AsyncFd<Fd>>,
}

/// The timer's descriptor, as tokio's reactor wants it.
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Pacer {
    /// A fine timer when the kernel gives one, else tokio's.
    pub fn new() -> Self {
        let fine = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .ok()
        .and_then(register);
        Self { fine }
    }

    /// Whether sends are timed finer than tokio's millisecond.
    pub fn is_fine(&self) -> bool {
        self.fine.is_some()
    }

    /// Returns at `due` (at once when it has passed).
    pub async fn until(&mut self, due: Instant) {
        let now = Instant::now();
        if due <= now {
            return;
        }
        if let Some(fd) = &self.fine {
            if wait_fine(fd, due - now).await.is_ok() {
                return;
            }
        }
        let aim = due.checked_sub(TIMER_HALF_TICK).unwrap_or(due);
        if aim > Instant::now() {
            tokio::time::sleep_until(aim.into()).await;
        }
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers the timer with tokio's reactor. `AsyncFd::new` is deprecated
/// because a wrapped value could close its descriptor while registered (and
/// its replacement is `unsafe`, which this crate forbids); `Fd` owns its
/// `TimerFd`, which is closed only when the `AsyncFd` is dropped.
#[allow(deprecated)]
fn register(t: TimerFd) -> Option<AsyncFd<Fd>> {
    AsyncFd::new(Fd(t)).ok()
}

async fn wait_fine(fd: &AsyncFd<Fd>, after: Duration) -> io::Result<()> {
    fd.get_ref()
        .0
        .set(
            Expiration::OneShot(TimeSpec::from_duration(after)),
            TimerSetTimeFlags::empty(),
        )
        .map_err(io::Error::from)?;
    loop {
        let mut ready = fd.readable().await?;
        // The expiry count (8 bytes); `EAGAIN` means not yet fired.
        let mut count = [0u8; 8];
        match nix::unistd::read(fd.get_ref().0.as_fd(), &mut count) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timer never fires before its due time (tokio's timer, aimed half
    /// a tick early, would), and consecutive due times give consecutive
    /// sends. How late sends are is
    /// measured by the bench (`send_lateness` in a fixed-rate result), not
    /// asserted here.
    #[tokio::test]
    async fn fires_at_or_after_each_due_time_in_order() {
        let mut p = Pacer::new();
        assert!(p.is_fine(), "timerfd is available on Linux");
        let start = Instant::now() + Duration::from_millis(2);
        let step = Duration::from_micros(200);
        let mut fired = Vec::new();
        for i in 0..20u32 {
            let due = start + step * i;
            p.until(due).await;
            let now = Instant::now();
            assert!(now >= due, "fired {:?} early", due - now);
            fired.push(now);
        }
        assert!(fired.windows(2).all(|w| w[0] <= w[1]));
    }

    #[tokio::test]
    async fn a_past_due_time_returns_at_once() {
        let mut p = Pacer::new();
        let t = Instant::now();
        p.until(t - Duration::from_millis(5)).await;
        p.until(t).await;
    }
}
