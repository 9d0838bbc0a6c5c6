//! Rate limits (governor token buckets): per tenant, per session, per tool.
//!
//! Load shedding: a request over a limit is answered 429 at once with the
//! time until the bucket has a token again as `Retry-After`; nothing waits.

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

fn quota(rate: Rate) -> Option<Quota> {
    let per_sec = NonZeroU32::new(rate.per_sec)?;
    Some(Quota::per_second(per_sec).allow_burst(NonZeroU32::new(rate.burst).unwrap_or(per_sec)))
}

pub struct RateLimits {
    tenants: Mutex<HashMap<TenantName, Option<Arc<DefaultDirectRateLimiter>>>>,
    session: Option<DefaultKeyedRateLimiter<String>>,
    tools: HashMap<String, DefaultDirectRateLimiter>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(policy: &Policy) -> Self {
        let rl = &policy.rate_limits;
        Self {
            tenants: Mutex::new(HashMap::new()),
            session: quota(rl.session).map(DefaultKeyedRateLimiter::keyed),
            tools: rl
                .tools
                .iter()
                .filter_map(|(name, rate)| {
                    Some((
                        name.clone(),
                        DefaultDirectRateLimiter::direct(quota(*rate)?),
                    ))
                })
                .collect(),
            clock: DefaultClock::default(),
        }
    }

    fn tenant_limiter(
        &self,
        policy: &Policy,
        tenant: &TenantName,
    ) -> Option<Arc<DefaultDirectRateLimiter>> {
        let mut map = self.tenants.lock();
        map.entry(tenant.clone())
            .or_insert_with(|| {
                let rate = policy
                    .tenant_limits(tenant)
                    .and_then(|l| l.rate)
                    .unwrap_or(policy.rate_limits.tenant);
                quota(rate).map(|q| Arc::new(DefaultDirectRateLimiter::direct(q)))
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
            l.check()
                .map_err(|e| Limited::Tenant(e.wait_time_from(now)))?;
        }
        if let (Some(l), Some(s)) = (&self.session, session) {
            l.check_key(&s.to_string())
                .map_err(|e| Limited::Session(e.wait_time_from(now)))?;
        }
        if let Some(l) = tool.and_then(|t| self.tools.get(t)) {
            l.check()
                .map_err(|e| Limited::Tool(e.wait_time_from(now)))?;
        }
        Ok(())
    }

    /// Forgets per-session buckets that are full again (bounded memory).
    pub fn retain_recent(&self) {
        if let Some(l) = &self.session {
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
        let rl = RateLimits::new(&p);
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
}
