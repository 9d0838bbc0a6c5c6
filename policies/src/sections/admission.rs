//! `[admission]` and `[rate_limits]`, plus each tenant's own limits: the
//! caps that turn overload into fast, explicit refusals.
//!
//! Shapes (named as in tower's vocabulary):
//! - global and per-session in-flight caps: load shedding (503 at once);
//! - per-tenant in-flight + queued cap: load shedding of the tenant's excess;
//! - per-tenant bulkhead of each upstream: bounded queueing (wait up to
//!   `queue_timeout_ms` for one of `max_concurrent_upstream` permits);
//! - rate limits: load shedding (429 with the time to the next token);
//! - fair queueing (`fair_queueing`, on by default): an adaptive limit on
//!   the requests a worker serves at once, its freed places given to the
//!   tenants' queues in turn (bounded queueing, then 503).

use std::collections::BTreeMap;

use toml_edit::TableLike;

use crate::reader::{join, Reader};

/// Global admission caps and tenant defaults.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Requests in flight across all tenants.
    pub global_max_in_flight: usize,
    /// Default per tenant: requests in flight plus queued.
    pub tenant_max_in_flight: usize,
    /// Default per tenant and upstream: concurrent upstream requests.
    pub tenant_max_concurrent_upstream: usize,
    /// Longest wait for a bulkhead permit.
    pub queue_timeout_ms: u64,
    /// Open long-lived streams (GET, `subscriptions/listen`) across all tenants.
    pub max_streams: usize,
    /// A client that accepts no bytes for this long is cut off (bounded
    /// downstream buffer: the socket's, never ours).
    pub slow_client_timeout_ms: u64,
    /// Share each worker fairly between tenants when the proxy itself is
    /// the bottleneck: an adaptive limit on the requests served at once,
    /// freed places given to the tenants' queues in turn.
    pub fair_queueing: bool,
}

/// A token bucket: `per_sec` sustained, `burst` at once; `per_sec == 0` is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_sec: u32,
    pub burst: u32,
}

impl Rate {
    pub const OFF: Rate = Rate {
        per_sec: 0,
        burst: 0,
    };
    pub fn is_on(&self) -> bool {
        self.per_sec > 0
    }
}

/// `[rate_limits]`.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Default per tenant (a tenant may override it).
    pub tenant: Rate,
    pub session: Rate,
    /// Per tool name, across callers.
    pub tools: BTreeMap<String, Rate>,
}

/// A tenant's own limits and routing (`[tenants.NAME]` keys).
#[derive(Debug, Clone, Default)]
pub struct TenantLimits {
    /// Upstream pool for this tenant; `None`: the default pool.
    pub upstream: Option<String>,
    pub max_in_flight: Option<usize>,
    pub max_concurrent_upstream: Option<usize>,
    pub rate: Option<Rate>,
}

pub(crate) fn read_admission(r: &mut Reader, t: Option<&dyn TableLike>) -> Admission {
    const P: &str = "admission";
    let empty = toml_edit::Table::new();
    let t = t.unwrap_or(&empty);
    r.deny_unknown(t, P, P);
    Admission {
        global_max_in_flight: r.integer(t, "global_max_in_flight", P, 4_096, 1..=10_000_000)
            as usize,
        tenant_max_in_flight: r.integer(t, "tenant_max_in_flight", P, 1_024, 1..=10_000_000)
            as usize,
        tenant_max_concurrent_upstream: r.integer(
            t,
            "tenant_max_concurrent_upstream",
            P,
            256,
            1..=1_000_000,
        ) as usize,
        queue_timeout_ms: r.integer(t, "queue_timeout_ms", P, 1_000, 0..=600_000) as u64,
        max_streams: r.integer(t, "max_streams", P, 100_000, 1..=10_000_000) as usize,
        slow_client_timeout_ms: r.integer(t, "slow_client_timeout_ms", P, 10_000, 10..=3_600_000)
            as u64,
        fair_queueing: r.boolean(t, "fair_queueing", P, true),
    }
}

fn read_rate(
    r: &mut Reader,
    t: &dyn TableLike,
    path: &str,
    per_key: &str,
    burst_key: &str,
) -> Option<Rate> {
    if t.get(per_key).is_none() && t.get(burst_key).is_none() {
        return None;
    }
    let per_sec = r.integer(t, per_key, path, 0, 0..=10_000_000) as u32;
    let burst = r.integer(t, burst_key, path, per_sec.max(1) as i64, 1..=10_000_000) as u32;
    Some(Rate { per_sec, burst })
}

pub(crate) fn read_rate_limits(r: &mut Reader, t: Option<&dyn TableLike>) -> RateLimits {
    const P: &str = "rate_limits";
    let empty = toml_edit::Table::new();
    let t = t.unwrap_or(&empty);
    r.deny_unknown(t, P, P);
    let mut tools = BTreeMap::new();
    let tools_path = join(P, "tools");
    if let Some(tt) = r.table(t, "tools", P) {
        for (tool, _) in tt.iter() {
            let tp = join(&tools_path, tool);
            if let Some(one) = r.table(tt, tool, &tools_path) {
                r.deny_unknown(one, &tp, "rate_limits.tools.*");
                if let Some(rate) = read_rate(r, one, &tp, "per_sec", "burst") {
                    tools.insert(tool.to_string(), rate);
                }
            }
        }
    }
    RateLimits {
        tenant: read_rate(r, t, P, "tenant_per_sec", "tenant_burst").unwrap_or(Rate::OFF),
        session: read_rate(r, t, P, "session_per_sec", "session_burst").unwrap_or(Rate::OFF),
        tools,
    }
}

/// Reads a tenant's limit keys (the caller checks unknown keys).
pub(crate) fn read_tenant_limits(r: &mut Reader, t: &dyn TableLike, path: &str) -> TenantLimits {
    TenantLimits {
        upstream: r.opt_string(t, "upstream", path),
        max_in_flight: t
            .get("max_in_flight")
            .map(|_| r.integer(t, "max_in_flight", path, 1, 1..=10_000_000) as usize),
        max_concurrent_upstream: t
            .get("max_concurrent_upstream")
            .map(|_| r.integer(t, "max_concurrent_upstream", path, 1, 1..=1_000_000) as usize),
        rate: read_rate(r, t, path, "rate_per_sec", "rate_burst"),
    }
}
