//! What a reload may change: the keys a running instance cannot take over
//! without a restart, named rather than silently ignored.
//!
//! A reload swaps in a newly compiled [`Policy`]; everything in it takes
//! effect for the next request, except what was fixed when the process
//! started: the sockets it listens on, its event-loop threads, its audit
//! writer and its trace exporter. [`keep_restart_only`] puts the running values of those keys back
//! into the new policy (so the policy a worker runs says what it really
//! does) and returns the key paths that changed in the file.

use crate::Policy;

/// The keys that take effect only at a restart, by key path.
pub const RESTART_ONLY: &[&str] = &[
    "listen.address",
    "listen.threads",
    "listen.tls",
    "admin",
    "audit",
    "traces",
];

/// Restores in `next` the running value of every restart-only key and
/// returns the paths of those whose value differs in `next` (in
/// [`RESTART_ONLY`] order). Compared through their `Debug` renderings,
/// which show every field, maps in key order (policies hold no hash maps).
pub fn keep_restart_only(running: &Policy, next: &mut Policy) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut keep = |key: &'static str, differs: bool| {
        if differs {
            changed.push(key);
        }
    };
    keep(
        "listen.address",
        running.listen.address != next.listen.address,
    );
    next.listen.address = running.listen.address;
    keep(
        "listen.threads",
        running.listen.threads != next.listen.threads,
    );
    next.listen.threads = running.listen.threads;
    keep("listen.tls", differs(&running.listen.tls, &next.listen.tls));
    next.listen.tls = running.listen.tls.clone();
    keep("admin", differs(&running.admin, &next.admin));
    next.admin = running.admin.clone();
    keep("audit", differs(&running.audit, &next.audit));
    next.audit = running.audit.clone();
    keep("traces", differs(&running.traces, &next.traces));
    next.traces = running.traces.clone();
    changed
}

/// Whether two compiled sections differ in any field.
pub fn differs<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") != format!("{b:?}")
}

#[cfg(test)]
mod tests;
