//! Time as a dependency, so expiry and timeouts are testable without sleeps.

use std::time::Instant;

/// A monotonic clock, and wall-clock seconds for token expiry.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    /// Seconds since the Unix epoch.
    fn unix_secs(&self) -> u64;
}

/// The real monotonic clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn unix_secs(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

#[cfg(test)]
pub use manual::ManualClock;

#[cfg(test)]
mod manual {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// A clock that only moves when a test advances it.
    #[derive(Clone)]
    pub struct ManualClock {
        start: Instant,
        offset_ms: Arc<AtomicU64>,
    }

    impl Default for ManualClock {
        fn default() -> Self {
            Self {
                start: Instant::now(),
                offset_ms: Arc::new(AtomicU64::new(0)),
            }
        }
    }

    impl ManualClock {
        pub fn advance(&self, by: Duration) {
            self.offset_ms
                .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
        }
    }

    impl super::Clock for ManualClock {
        fn now(&self) -> Instant {
            self.start + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
        }

        /// 2026-01-01T00:00:00Z plus the time advanced.
        fn unix_secs(&self) -> u64 {
            1_767_225_600 + self.offset_ms.load(Ordering::SeqCst) / 1000
        }
    }
}
