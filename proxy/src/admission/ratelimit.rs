//! Rate limits (governor token buckets): per tenant, per session, per tool.
//!
//! Load shedding: a request over a limit is answered 429 at once with the
//! time until the bucket has a token again as `Retry-After`; nothing waits.
//! With several worker processes each worker holds its share of every
//! tenant and tool bucket (rate and burst), so together they never exceed
//! the configured limit. A session's bucket is whole: a session is served
//! only by the worker that owns it (others hand its requests over).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use parking_lot::Mutex;
use policies::{Policy, Rate, TenantName};

/// Which limit refused a request, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Tenant(Duration),
    Session(Duration),
    Tool(Duration),
}

impl Limited {
    pub fn label(self) -> &'static str {
        match self {
            Limited::Tenant(_) => "tenant",
            Limited::Session(_) => "session",
            Limited::Tool(_) => "tool",
        }
    }

    pub fn retry_after(self) -> Duration {
        match self {
            Limited::Tenant(d) | Limited::Session(d) | Limited::Tool(d) => d,
        }
    }
}

/// A limiter of this worker, or a zero share that refuses everything.
enum Limiter<L> {
    Open(L),
    Closed,
}

/// How long a zero-share bucket tells clients to wait.
const CLOSED_RETRY: Duration = Duration::from_secs(1);

/// This worker's quota for a configured rate: `None` when the rate is off,
/// `Some(None)` for a zero share of the burst.
///
/// Worker `index` of `workers` refills at `per_sec / workers` (governor
/// takes fractional rates as a period) and holds its share of the burst.
fn quota(rate: Rate, index: usize, workers: usize) -> Option<Option<Quota>> {
    if !rate.is_on() {
        return None;
    }
    let burst = policies::share(rate.burst.max(1) as usize, index, workers) as u32;
    let Some(burst) = NonZeroU32::new(burst) else {
        return Some(None);
    };
    let period = Duration::from_secs_f64(workers.max(1) as f64 / f64::from(rate.per_sec));
    Some(Quota::with_period(period).map(|q| q.allow_burst(burst)))
}

fn direct(q: Option<Quota>) -> Limiter<DefaultDirectRateLimiter> {
    q.map_or(Limiter::Closed, |q| {
        Limiter::Open(DefaultDirectRateLimiter::direct(q))
    })
}

type TenantLimiter = Option<Arc<Limiter<DefaultDirectRateLimiter>>>;

pub struct RateLimits {
    tenants: Mutex<HashMap<TenantName, TenantLimiter>>,
    session: Option<Limiter<DefaultKeyedRateLimiter<String>>>,
    tools: HashMap<String, Limiter<DefaultDirectRateLimiter>>,
    clock: DefaultClock,
    index: usize,
    workers: usize,
}

impl RateLimits {
    /// The limiters of worker `index` of `workers`.
    pub fn new(policy: &Policy, index: usize, workers: usize) -> Self {
        let rl = &policy.rate_limits;
        Self {
            tenants: Mutex::new(HashMap::new()),
            // Not divided: only the owner worker serves a session.
            session: quota(rl.session, 0, 1).map(|q| {
                q.map_or(Limiter::Closed, |q| {
                    Limiter::Open(DefaultKeyedRateLimiter::keyed(q))
                })
            }),
            tools: rl
                .tools
                .iter()
                .filter_map(|(name, rate)| {
                    Some((name.clone(), direct(quota(*rate, index, workers)?)))
                })
                .collect(),
            clock: DefaultClock::default(),
            index,
            workers,
        }
    }

    fn tenant_limiter(&self, policy: &Policy, tenant: &TenantName) -> TenantLimiter {
        let mut map = self.tenants.lock();
        map.entry(tenant.clone())
            .or_insert_with(|| {
                let rate = policy
                    .tenant_limits(tenant)
                    .and_then(|l| l.rate)
                    .unwrap_or(policy.rate_limits.tenant);
                quota(rate, self.index, self.workers).map(|q| Arc::new(direct(q)))
            })
            .clone()
    }

    /// Takes one token from every limit that applies.
    pub fn check(
        &self,
        policy: &Policy,
        tenant: &TenantName,
        session: Option<&str>,
        tool: Option<&str>,
    ) -> Result<(), Limited> {
        let now = self.clock.now();
        if let Some(l) = self.tenant_limiter(policy, tenant) {
            match &*l {
                Limiter::Open(l) => l
                    .check()
                    .map_err(|e| Limited::Tenant(e.wait_time_from(now)))?,
                Limiter::Closed => return Err(Limited::Tenant(CLOSED_RETRY)),
            }
        }
        if let (Some(l), Some(s)) = (&self.session, session) {
            match l {
                Limiter::Open(l) => l
                    .check_key(&s.to_string())
                    .map_err(|e| Limited::Session(e.wait_time_from(now)))?,
                Limiter::Closed => return Err(Limited::Session(CLOSED_RETRY)),
            }
        }
        if let Some(l) = tool.and_then(|t| self.tools.get(t)) {
            match l {
                Limiter::Open(l) => l
                    .check()
                    .map_err(|e| Limited::Tool(e.wait_time_from(now)))?,
                Limiter::Closed => return Err(Limited::Tool(CLOSED_RETRY)),
            }
        }
        Ok(())
    }

    /// Forgets per-session buckets that are full again (bounded memory).
    pub fn retain_recent(&self) {
        if let Some(Limiter::Open(l)) = &self.session {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_sheds_with_a_retry_time() {
        let src = "[upstream]\nurl = \"http://127.0.0.1:1/mcp\"\n[rate_limits]\nsession_per_sec = 1\nsession_burst = 2\n[rate_limits.tools.slow]\nper_sec = 1\n";
        let p = policies::parse_policy("t.toml", src).unwrap();
        let rl = RateLimits::new(&p, 0, 1);
        let t: TenantName = "t".into();
        assert!(rl.check(&p, &t, Some("s1"), None).is_ok());
        assert!(rl.check(&p, &t, Some("s1"), None).is_ok());
        let e = rl.check(&p, &t, Some("s1"), None).unwrap_err();
        assert_eq!(e.label(), "session");
        assert!(e.retry_after() > Duration::ZERO && e.retry_after() <= Duration::from_secs(1));
        assert!(
            rl.check(&p, &t, Some("s2"), None).is_ok(),
            "sessions have their own buckets"
        );
        assert!(rl.check(&p, &t, None, Some("slow")).is_ok());
        assert_eq!(
            rl.check(&p, &t, None, Some("slow")).unwrap_err().label(),
            "tool"
        );
        assert!(
            rl.check(&p, &t, None, Some("fast")).is_ok(),
            "tools without a limit pass"
        );
    }

    #[test]
    fn a_session_gets_its_whole_bucket_on_its_owner_worker() {
        let src = "[upstream]\nurl = \"http://127.0.0.1:1/mcp\"\n[rate_limits]\nsession_per_sec = 1\nsession_burst = 4\n";
        let p = policies::parse_policy("t.toml", src).unwrap();
        let owner = RateLimits::new(&p, 1, 2);
        let t: TenantName = "t".into();
        let passed = (0..10)
            .filter(|_| owner.check(&p, &t, Some("s"), None).is_ok())
            .count();
        assert_eq!(passed, 4, "the configured burst, not half of it");
    }

    #[test]
    fn worker_shares_never_exceed_the_configured_burst() {
        let src = "[upstream]\nurl = \"http://127.0.0.1:1/mcp\"\n[rate_limits]\ntenant_per_sec = 1\ntenant_burst = 3\n";
        let p = policies::parse_policy("t.toml", src).unwrap();
        let t: TenantName = "t".into();
        let workers: Vec<_> = (0..2).map(|i| RateLimits::new(&p, i, 2)).collect();
        let passed: usize = workers
            .iter()
            .map(|w| {
                (0..10)
                    .filter(|_| w.check(&p, &t, None, None).is_ok())
                    .count()
            })
            .sum();
        assert_eq!(passed, 3, "2 + 1 tokens across the two workers");
        let fourth = RateLimits::new(&p, 3, 4);
        assert_eq!(
            fourth.check(&p, &t, None, None).unwrap_err().label(),
            "tenant",
            "a zero share refuses"
        );
    }
}
