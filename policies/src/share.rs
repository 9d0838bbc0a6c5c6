//! Dividing global limits among worker processes.
//!
//! Each worker process enforces its own share of every limit that is global
//! by nature (in-flight caps, bulkheads, stream and session caps; rate limits
//! are divided the same way when their buckets are built), and the
//! shares add up to exactly the configured value, so the limit stays hard
//! without shared state. Worker `i` of `n` gets `v / n`, plus one while
//! `i < v % n`. A share of zero means that worker refuses that traffic.

use crate::model::{Admission, Policy, SessionPolicy, Tenant, TenantLimits};

/// Worker `index`'s share of `total` among `workers`.
pub fn share(total: usize, index: usize, workers: usize) -> usize {
    let n = workers.max(1);
    total / n + usize::from(index < total % n)
}

impl Policy {
    /// The policy one worker process enforces: global limits divided.
    ///
    /// Every field that could hold a cap is named below without `..`, so a
    /// field added later does not compile until it is classified here as
    /// divided or as not an instance-wide cap.
    pub fn for_worker(&self, index: usize, workers: usize) -> Policy {
        let mut p = self.clone();
        let div = |v: &mut usize| *v = share(*v, index, workers);
        let Policy {
            // Caps divided below.
            admission,
            sessions,
            auth,
            // Divided where the buckets are built (proxy ratelimit), which can
            // express fractional rates.
            rate_limits: _,
            // Per endpoint connection pools and deadlines: each worker keeps
            // its own connections.
            upstreams: _,
            // Per request or per connection sizes and rules, not counts.
            listen: _,
            limits: _,
            protocol: _,
            origin: _,
            admin: _,
            paths: _,
            ssrf: _,
            headers: _,
            shutdown: _,
            // Rules, not counts: every worker judges alike.
            access: _,
            tools: _,
            // Sizes and rules per message.
            content: _,
            // Each worker has its own queue and file.
            audit: _,
            // A ratio and an endpoint: every worker exports its own spans.
            traces: _,
        } = &mut p;
        let Admission {
            // Instance-wide counts of requests, upstream requests, streams.
            global_max_in_flight,
            tenant_max_in_flight,
            tenant_max_concurrent_upstream,
            max_streams,
            // Durations: the same in every worker.
            queue_timeout_ms: _,
            slow_client_timeout_ms: _,
            // A switch: every worker keeps its own gate.
            fair_queueing: _,
        } = admission;
        div(global_max_in_flight);
        div(tenant_max_in_flight);
        div(tenant_max_concurrent_upstream);
        div(max_streams);
        let SessionPolicy {
            // Sessions are held by the worker that created them.
            max_sessions,
            // Per session, and a session is served by its one owner worker:
            // the whole cap already applies in one place, so not divided.
            max_in_flight_per_session: _,
            // A duration and the session-id keys: not caps.
            idle_timeout_secs: _,
            keys: _,
            key_file: _,
        } = sessions;
        div(max_sessions);
        for Tenant {
            limits,
            name: _,
            // Identity, not caps.
            key_hashes: _,
            client_cert: _,
            jwt_subjects: _,
            auth_methods: _,
        } in &mut auth.tenants
        {
            let TenantLimits {
                // The tenant's own in-flight cap and bulkhead.
                max_in_flight,
                max_concurrent_upstream,
                // Divided with the other rates (proxy ratelimit).
                rate: _,
                // Routing, not a cap.
                upstream: _,
            } = limits;
            if let Some(v) = max_in_flight {
                div(v);
            }
            if let Some(v) = max_concurrent_upstream {
                div(v);
            }
        }
        // `auth.anonymous_tenant` is a name; it uses the admission defaults.
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_exactly() {
        for total in [0, 1, 2, 3, 7, 100, 1001] {
            for n in 1..6 {
                let sum: usize = (0..n).map(|i| share(total, i, n)).sum();
                assert_eq!(sum, total, "total {total} over {n}");
            }
        }
    }

    /// Every count cap of a policy, by key path.
    fn caps(p: &Policy) -> Vec<(&'static str, usize)> {
        let a = &p.admission;
        let t = &p.auth.tenants[0].limits;
        vec![
            ("admission.global_max_in_flight", a.global_max_in_flight),
            ("admission.tenant_max_in_flight", a.tenant_max_in_flight),
            (
                "admission.tenant_max_concurrent_upstream",
                a.tenant_max_concurrent_upstream,
            ),
            ("admission.max_streams", a.max_streams),
            ("sessions.max_sessions", p.sessions.max_sessions),
            ("tenants.acme.max_in_flight", t.max_in_flight.unwrap()),
            (
                "tenants.acme.max_concurrent_upstream",
                t.max_concurrent_upstream.unwrap(),
            ),
        ]
    }

    #[test]
    fn every_cap_adds_up_to_the_configured_value() {
        let src = "[upstream]\nurl = \"http://127.0.0.1:9100/mcp\"\n\
                   [admission]\nglobal_max_in_flight = 101\ntenant_max_in_flight = 103\n\
                   tenant_max_concurrent_upstream = 107\nmax_streams = 109\n\
                   [sessions]\nmax_sessions = 113\nmax_in_flight_per_session = 17\n\
                   [tenants.acme]\napi_keys_sha256 = []\nmax_in_flight = 127\n\
                   max_concurrent_upstream = 131\n";
        let p = crate::parse_policy("p.toml", src).unwrap_or_else(|e| panic!("{e}"));
        let configured = caps(&p);
        for n in 1..=5 {
            let workers: Vec<Policy> = (0..n).map(|i| p.for_worker(i, n)).collect();
            for (k, (key, want)) in configured.iter().enumerate() {
                let sum: usize = workers.iter().map(|w| caps(w)[k].1).sum();
                assert_eq!(sum, *want, "{key} over {n} workers");
            }
            for w in &workers {
                assert_eq!(
                    w.sessions.max_in_flight_per_session, 17,
                    "per session, enforced by the owner worker: not divided"
                );
            }
        }
    }
}
