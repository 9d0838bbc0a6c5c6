//! The legacy session table: sharded so that lookups on the hot path
//! (`tools/call` in a session) take one uncontended read lock, never a global one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use super::session::Session;

/// Number of shards (a power of two).
const SHARDS: usize = 64;
/// Event-log bytes all sessions may hold together.
const LOG_BUDGET: usize = 256 * 1024 * 1024;

/// Why a session could not be created.
#[derive(Debug, PartialEq, Eq)]
pub enum CreateError {
    /// `max_sessions` are live and none is idle enough to drop.
    Full,
    /// The system random source failed.
    Random,
}

/// All live legacy sessions.
#[derive(Debug)]
pub struct SessionStore {
    shards: Vec<RwLock<HashMap<String, Arc<Session>>>>,
    count: AtomicUsize,
    max: usize,
    idle: Duration,
    epoch: Instant,
    log_budget: Arc<AtomicUsize>,
}

impl SessionStore {
    /// A store holding at most `max` sessions, expiring those idle for `idle`.
    pub fn new(max: usize, idle: Duration) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            count: AtomicUsize::new(0),
            max,
            idle,
            epoch: Instant::now(),
            log_budget: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn shard(&self, id: &str) -> &RwLock<HashMap<String, Arc<Session>>> {
        // FNV-1a: ids are untrusted strings, but a bad spread only costs speed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in id.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        &self.shards[(h as usize) & (SHARDS - 1)]
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Create a session with a fresh unguessable id (32 hex characters).
    pub fn create(&self, version: String, sampling: bool) -> Result<Arc<Session>, CreateError> {
        if self.count.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.count.fetch_sub(1, Ordering::AcqRel);
            self.sweep();
            if self.count.fetch_add(1, Ordering::AcqRel) >= self.max {
                self.count.fetch_sub(1, Ordering::AcqRel);
                return Err(CreateError::Full);
            }
        }
        let mut raw = [0u8; 16];
        if getrandom::fill(&mut raw).is_err() {
            self.count.fetch_sub(1, Ordering::AcqRel);
            return Err(CreateError::Random);
        }
        let id = hex::encode(raw);
        let session = Arc::new(Session::new(
            id.clone(),
            version,
            sampling,
            self.log_budget.clone(),
            LOG_BUDGET,
        ));
        session.last_seen_ms.store(self.now_ms(), Ordering::Relaxed);
        self.shard(&id).write().insert(id, session.clone());
        Ok(session)
    }

    /// The live session `id`, marked as just used.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.shard(id).read().get(id).cloned()?;
        // Write the shared timestamp at most every 100 ms: a session used from
        // many cores at once would otherwise bounce this cache line per request.
        let now = self.now_ms();
        if now.saturating_sub(session.last_seen_ms.load(Ordering::Relaxed)) >= 100 {
            session.last_seen_ms.store(now, Ordering::Relaxed);
        }
        Some(session)
    }

    /// End session `id`; returns whether it existed.
    pub fn remove(&self, id: &str) -> bool {
        let removed = self.shard(id).write().remove(id);
        match removed {
            Some(session) => {
                self.count.fetch_sub(1, Ordering::AcqRel);
                session.close();
                true
            }
            None => false,
        }
    }

    /// Drop sessions idle longer than the limit that have no connected stream.
    pub fn sweep(&self) {
        let now = self.now_ms();
        let idle_ms = self.idle.as_millis() as u64;
        for shard in &self.shards {
            let expired: Vec<String> = shard
                .read()
                .values()
                .filter(|s| {
                    now.saturating_sub(s.last_seen_ms.load(Ordering::Relaxed)) > idle_ms
                        && !s.has_live_stream()
                })
                .map(|s| s.id.clone())
                .collect();
            for id in expired {
                self.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_removes() {
        let store = SessionStore::new(2, Duration::from_secs(60));
        let a = store.create("2025-11-25".into(), false).unwrap();
        let _b = store.create("2025-11-25".into(), false).unwrap();
        assert_eq!(
            store.create("2025-11-25".into(), false).unwrap_err(),
            CreateError::Full
        );
        assert!(a.id.len() == 32 && a.id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(store.get(&a.id).is_some());
        assert!(store.remove(&a.id));
        assert!(store.get(&a.id).is_none() && a.is_closed());
        assert!(store.create("2025-11-25".into(), false).is_ok());
    }

    #[test]
    fn sweeps_idle() {
        let store = SessionStore::new(1, Duration::from_millis(1));
        store.create("2025-11-25".into(), false).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(store.create("2025-11-25".into(), false).is_ok());
        assert_eq!(store.len(), 1);
    }
}
