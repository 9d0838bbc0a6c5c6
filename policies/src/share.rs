//! Dividing global limits among worker processes.
//!
//! Each worker process enforces its own share of every limit that is global
//! by nature (in-flight caps, stream and session caps; rate limits are
//! divided the same way when their buckets are built), and the
//! shares add up to exactly the configured value, so the limit stays hard
//! without shared state. Worker `i` of `n` gets `v / n`, plus one while
//! `i < v % n`. A share of zero means that worker refuses that traffic.

use crate::model::Policy;

/// Worker `index`'s share of `total` among `workers`.
pub fn share(total: usize, index: usize, workers: usize) -> usize {
    let n = workers.max(1);
    total / n + usize::from(index < total % n)
}

impl Policy {
    /// The policy one worker process enforces: global limits divided.
    pub fn for_worker(&self, index: usize, workers: usize) -> Policy {
        let mut p = self.clone();
        if workers <= 1 {
            return p;
        }
        let a = &mut p.admission;
        a.global_max_in_flight = share(a.global_max_in_flight, index, workers);
        a.tenant_max_in_flight = share(a.tenant_max_in_flight, index, workers);
        a.max_streams = share(a.max_streams, index, workers);
        p.sessions.max_sessions = share(p.sessions.max_sessions, index, workers);
        for t in &mut p.auth.tenants {
            t.limits.max_in_flight = t.limits.max_in_flight.map(|v| share(v, index, workers));
        }
        // Rates are divided where the buckets are built (proxy ratelimit),
        // which can express fractional rates.
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
}
