//! Legacy (2025-11-25) sessions held by the proxy.
//!
//! The proxy hands clients its own random session ids and maps them to the
//! upstream's, so a client never learns or chooses an upstream session id,
//! and every session is bound to the tenant that created it: another tenant
//! presenting the id gets the same 404 as for an id that never existed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use filters::{RequestId, SessionState, SessionView};
use parking_lot::Mutex;
use policies::TenantName;

use crate::ops::clock::Clock;

const SHARDS: usize = 64;

/// Most ended-session ids remembered.
const MAX_ENDED: usize = 100_000;

/// Why a session could not be created.
#[derive(Debug, PartialEq, Eq)]
pub enum CreateError {
    /// `max_sessions` reached even after dropping expired ones.
    Full,
}

/// Why a request could not be registered as in flight.
#[derive(Debug, PartialEq, Eq)]
pub enum BeginError {
    Duplicate,
    TooMany,
}

/// One session's mutable state.
#[derive(Debug)]
pub struct SessionInner {
    pub state: SessionState,
    pub negotiated_version: String,
    in_flight: HashSet<RequestId>,
    last_used: Instant,
}

/// A live session.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub tenant: TenantName,
    /// Pool and endpoint index the session is pinned to.
    pub pool: Arc<str>,
    pub endpoint: usize,
    /// The upstream's own session id, when it assigned one.
    pub upstream_id: Option<String>,
    pub inner: Mutex<SessionInner>,
}

/// A point-in-time copy the filters read.
pub struct Snapshot {
    state: SessionState,
    version: String,
    in_flight: HashSet<RequestId>,
}

impl SessionView for Snapshot {
    fn state(&self) -> SessionState {
        self.state
    }
    fn negotiated_version(&self) -> &str {
        &self.version
    }
    fn is_in_flight(&self, id: &RequestId) -> bool {
        self.in_flight.contains(id)
    }
}

impl Session {
    pub fn snapshot(&self) -> Snapshot {
        let g = self.inner.lock();
        Snapshot {
            state: g.state,
            version: g.negotiated_version.clone(),
            in_flight: g.in_flight.clone(),
        }
    }

    /// Registers a request id as in flight (atomic check-and-insert).
    pub fn begin(&self, id: &RequestId, max: usize) -> Result<(), BeginError> {
        let mut g = self.inner.lock();
        if g.in_flight.contains(id) {
            return Err(BeginError::Duplicate);
        }
        if g.in_flight.len() >= max {
            return Err(BeginError::TooMany);
        }
        g.in_flight.insert(id.clone());
        Ok(())
    }

    /// Forgets an in-flight id once its response ended.
    pub fn finish(&self, id: &RequestId) {
        self.inner.lock().in_flight.remove(id);
    }

    /// The negotiated protocol version.
    pub fn snapshot_version(&self) -> String {
        self.inner.lock().negotiated_version.clone()
    }

    pub fn mark_ready(&self) {
        self.inner.lock().state = SessionState::Ready;
    }
}

/// All sessions, sharded to keep lock hold times short.
pub struct SessionStore {
    shards: Vec<Mutex<HashMap<String, Arc<Session>>>>,
    clock: Arc<dyn Clock>,
    /// Idle time before expiry, in milliseconds (changed by a reload).
    idle_ms: AtomicU64,
    /// Changed by a reload: lowered below the count, it refuses only new
    /// sessions.
    max_sessions: AtomicUsize,
    count: std::sync::atomic::AtomicUsize,
    /// Sessions that expired and still owe their upstream a DELETE.
    expired: Mutex<Vec<Arc<Session>>>,
    /// Ids of ended sessions (DELETE, expiry, upstream 404, failed
    /// initialize), so an id cannot be revived from its sealed claims.
    ended: Mutex<HashMap<String, Instant>>,
}

impl SessionStore {
    pub fn new(clock: Arc<dyn Clock>, idle: Duration, max_sessions: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            clock,
            idle_ms: AtomicU64::new(idle.as_millis() as u64),
            max_sessions: AtomicUsize::new(max_sessions),
            count: Default::default(),
            expired: Mutex::new(Vec::new()),
            ended: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a reloaded policy's idle timeout and session cap; the sessions
    /// open stay open.
    pub fn reconfigure(&self, idle: Duration, max_sessions: usize) {
        self.idle_ms
            .store(idle.as_millis() as u64, Ordering::Release);
        self.max_sessions.store(max_sessions, Ordering::Release);
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms.load(Ordering::Acquire))
    }

    fn shard(&self, id: &str) -> &Mutex<HashMap<String, Arc<Session>>> {
        let h = id
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        &self.shards[h % SHARDS]
    }

    pub fn len(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Creates a session with a fresh id for `tenant`.
    #[cfg(test)]
    pub fn create(
        &self,
        tenant: TenantName,
        upstream_id: Option<String>,
        negotiated_version: String,
    ) -> Result<Arc<Session>, CreateError> {
        let at = Pinned {
            pool: "default".into(),
            endpoint: 0,
        };
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).expect("the OS random source is available");
        self.insert(hex::encode(id), tenant, at, upstream_id, negotiated_version)
    }

    /// Creates session `id` (already handed to the client) once the
    /// handshake reached the initialize result.
    pub fn insert(
        &self,
        id: String,
        tenant: TenantName,
        at: Pinned,
        upstream_id: Option<String>,
        negotiated_version: String,
    ) -> Result<Arc<Session>, CreateError> {
        if self.len() >= self.max_sessions.load(Ordering::Acquire) {
            self.sweep();
            if self.len() >= self.max_sessions.load(Ordering::Acquire) {
                return Err(CreateError::Full);
            }
        }
        let session = Arc::new(Session {
            id: id.clone(),
            tenant,
            pool: at.pool,
            endpoint: at.endpoint,
            upstream_id,
            inner: Mutex::new(SessionInner {
                state: SessionState::AwaitingInitialized,
                negotiated_version,
                in_flight: HashSet::new(),
                last_used: self.clock.now(),
            }),
        });
        self.shard(&id).lock().insert(id, session.clone());
        self.count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(session)
    }

    /// The live session `id` of `tenant`; expired or foreign ones are `None`.
    pub fn get(&self, id: &str, tenant: &str) -> Option<Arc<Session>> {
        let now = self.clock.now();
        let mut shard = self.shard(id).lock();
        let session = shard.get(id)?.clone();
        let mut g = session.inner.lock();
        if now.saturating_duration_since(g.last_used) > self.idle() && g.in_flight.is_empty() {
            drop(g);
            if let Some(gone) = shard.remove(id) {
                self.count
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                self.bury(id);
                self.expired.lock().push(gone);
            }
            return None;
        }
        if &*session.tenant != tenant {
            return None;
        }
        g.last_used = now;
        drop(g);
        Some(session)
    }

    /// Ends a session (DELETE). Later lookups get `None`.
    /// Marks `id` as ended for good (bounded: oldest marks go first).
    pub fn bury(&self, id: &str) {
        let mut ended = self.ended.lock();
        if ended.len() >= MAX_ENDED {
            let horizon = self.clock.now().checked_sub(self.idle());
            ended.retain(|_, t| horizon.is_none_or(|h| *t > h));
            if ended.len() >= MAX_ENDED {
                ended.clear();
            }
        }
        ended.insert(id.to_string(), self.clock.now());
    }

    /// Whether `id` ended (and must not be revived).
    pub fn is_ended(&self, id: &str) -> bool {
        self.ended.lock().contains_key(id)
    }

    pub fn remove(&self, id: &str) {
        self.bury(id);
        if self.shard(id).lock().remove(id).is_some() {
            self.count
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Drops every idle session past its timeout.
    pub fn sweep(&self) {
        let now = self.clock.now();
        for shard in &self.shards {
            let mut s = shard.lock();
            let before = s.len();
            let mut gone = Vec::new();
            s.retain(|_, sess| {
                let g = sess.inner.lock();
                let keep = now.saturating_duration_since(g.last_used) <= self.idle()
                    || !g.in_flight.is_empty();
                if !keep {
                    gone.push(sess.clone());
                }
                keep
            });
            self.count
                .fetch_sub(before - s.len(), std::sync::atomic::Ordering::Relaxed);
            for g in &gone {
                self.bury(&g.id);
            }
            self.expired.lock().extend(gone);
        }
    }
}

/// Where a session lives upstream.
#[derive(Debug, Clone)]
pub struct Pinned {
    pub pool: Arc<str>,
    pub endpoint: usize,
}

impl SessionStore {
    /// Re-creates a session from its sealed claims (its owner restarted, or
    /// it was made by another replica): handshake complete, no request in
    /// flight. Ended ids are never revived.
    pub fn revive(
        &self,
        id: &str,
        tenant: TenantName,
        at: Pinned,
        upstream_id: Option<String>,
        version: String,
    ) -> Option<Arc<Session>> {
        if self.is_ended(id) {
            return None;
        }
        let s = self
            .insert(id.to_string(), tenant, at, upstream_id, version)
            .ok()?;
        s.mark_ready();
        Some(s)
    }

    /// Takes the sessions that expired since the last call.
    pub fn take_expired(&self) -> Vec<Arc<Session>> {
        std::mem::take(&mut *self.expired.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::clock::ManualClock;

    fn store(clock: &ManualClock, max: usize) -> SessionStore {
        SessionStore::new(Arc::new(clock.clone()), Duration::from_secs(60), max)
    }

    #[test]
    fn sessions_are_bound_to_their_tenant() {
        let clock = ManualClock::default();
        let s = store(&clock, 10);
        let sess = s
            .create("a".into(), Some("up".into()), "2025-11-25".into())
            .unwrap();
        assert_eq!(sess.id.len(), 32);
        assert!(s.get(&sess.id, "a").is_some());
        assert!(s.get(&sess.id, "b").is_none());
        assert!(s.get("nope", "a").is_none());
        s.remove(&sess.id);
        assert!(s.get(&sess.id, "a").is_none());
        let at = Pinned {
            pool: "default".into(),
            endpoint: 0,
        };
        assert!(
            s.revive(&sess.id, "a".into(), at.clone(), None, "v".into())
                .is_none(),
            "ended ids stay ended"
        );
        let back = s.revive("fresh", "a".into(), at, None, "v".into()).unwrap();
        assert_eq!(back.snapshot().state(), SessionState::Ready);
        assert_eq!(s.len(), 1, "only the revived session is held");
    }

    #[test]
    fn idle_sessions_expire_and_free_capacity() {
        let clock = ManualClock::default();
        let s = store(&clock, 1);
        let a = s.create("t".into(), None, "2025-11-25".into()).unwrap();
        assert_eq!(
            s.create("t".into(), None, "2025-11-25".into()).unwrap_err(),
            CreateError::Full
        );
        clock.advance(Duration::from_secs(61));
        assert!(
            s.create("t".into(), None, "2025-11-25".into()).is_ok(),
            "expired session swept"
        );
        assert!(s.get(&a.id, "t").is_none());
        assert_eq!(
            s.take_expired().len(),
            1,
            "the expired session owes its upstream a DELETE"
        );
        assert!(s.take_expired().is_empty());
    }

    #[test]
    fn in_flight_ids_are_unique_and_capped() {
        let clock = ManualClock::default();
        let s = store(&clock, 1);
        let a = s.create("t".into(), None, "2025-11-25".into()).unwrap();
        let one = RequestId::Number(1.into());
        assert_eq!(a.begin(&one, 2), Ok(()));
        assert_eq!(a.begin(&one, 2), Err(BeginError::Duplicate));
        assert_eq!(a.begin(&RequestId::String("x".into()), 2), Ok(()));
        assert_eq!(
            a.begin(&RequestId::String("y".into()), 2),
            Err(BeginError::TooMany)
        );
        a.finish(&one);
        assert_eq!(a.begin(&one, 2), Ok(()));
        assert!(a.snapshot().is_in_flight(&one));
    }
}
