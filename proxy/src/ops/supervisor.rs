//! `mcpgate run --workers N`: start N worker processes that share the
//! listening port (`SO_REUSEPORT`), each with its own event loop, and restart
//! any that dies. The supervisor binds the listening sockets and lends them
//! to the workers ([`crate::ops::handover`]): a restarted worker takes up
//! the same socket, and an instance started with `--takeover` shares them.
//!
//! The supervisor creates the instance id, a private runtime directory for
//! the workers' internal sockets, and (when the policy names no key) a random
//! session key shared by its workers.
//!
//! - It refuses to start when another process listens on the address
//!   (`SO_REUSEPORT` would otherwise split the traffic between two
//!   instances), unless `--takeover` is given for an upgrade.
//! - Workers run in their own process group, so a terminal's Ctrl-C reaches
//!   only the supervisor, which drains them in order; they die with it
//!   (`PR_SET_PDEATHSIG`, see [`crate::ops::lifecycle`]).
//! - SIGTERM/SIGINT: SIGTERM to every worker, which drains (up to
//!   `[shutdown] grace_secs`); a second signal kills them at once.
//! - SIGHUP: passed to every worker, which reloads the policy
//!   ([`crate::ops::reload`]); a worker restarted later reads the file too.

use std::path::Path;
use std::process::{Child, Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use std::os::unix::process::CommandExt;

use crate::ops::handover;
use crate::ops::lifecycle::ENV_SUPERVISOR_PID;
use crate::ops::worker_identity::{ENV_INSTANCE, ENV_RUNTIME_DIR, ENV_SESSION_KEYS};

/// A worker that keeps dying is restarted at most this often.
const RESTART_BACKOFF: Duration = Duration::from_millis(500);
/// A worker that exits this soon after starting...
const QUICK_DEATH: Duration = Duration::from_secs(3);
/// ...this many times in a row makes the supervisor give up.
const MAX_QUICK_DEATHS: u32 = 5;

pub fn supervise(
    policy: &policies::Policy,
    config: &Path,
    workers: usize,
    keys_configured: bool,
    takeover: bool,
) -> ExitCode {
    if !takeover {
        if let Err(e) = address_is_free(policy.listen.address) {
            eprintln!(
                "error: cannot listen on {}: {e}; another mcpgate instance or another \
                 program listens there. Stop it first, or pass --takeover to start beside \
                 it for an upgrade.",
                policy.listen.address
            );
            return ExitCode::from(1);
        }
    }
    // An upgrade shares the admin address too (workers bind it with
    // SO_REUSEPORT): the old instance answers there until it has drained.
    if let Some(admin) = policy.admin.as_ref().filter(|_| !takeover) {
        if let Err(e) = address_is_free(admin.address) {
            eprintln!("error: cannot listen on {} (admin): {e}", admin.address);
            return ExitCode::from(1);
        }
    }
    let grace = Duration::from_secs(policy.shutdown.grace_secs);
    remove_stale_runtime_dirs(&std::env::temp_dir());
    let listeners = match bind_listeners(policy.listen.address, workers, takeover) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", policy.listen.address);
            return ExitCode::from(1);
        }
    };
    let mut instance = [0u8; 8];
    getrandom::fill(&mut instance).expect("the OS random source is available");
    let instance_hex = hex::encode(instance);
    let runtime_dir = std::env::temp_dir().join(format!("mcpgate-{instance_hex}"));
    if let Err(e) = create_private_dir(&runtime_dir)
        .and_then(|()| std::fs::write(runtime_dir.join(PID_FILE), std::process::id().to_string()))
    {
        eprintln!(
            "error: cannot create runtime dir {}: {e}",
            runtime_dir.display()
        );
        return ExitCode::from(1);
    }
    let handover = runtime_dir.join(handover::SOCKET);
    if let Err(e) = listeners.clone().serve(&handover, workers) {
        eprintln!("error: cannot listen on {}: {e}", handover.display());
        let _ = std::fs::remove_dir_all(&runtime_dir);
        return ExitCode::from(1);
    }
    let generated_key = (!keys_configured).then(|| {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source is available");
        base64::engine::general_purpose::STANDARD.encode(key)
    });
    let stops = Arc::new(AtomicUsize::new(0));
    let hangups = Arc::new(AtomicUsize::new(0));
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    {
        let (stops, hangups) = (stops.clone(), hangups.clone());
        std::thread::spawn(move || {
            for sig in signals.forever() {
                let count = if sig == SIGHUP { &hangups } else { &stops };
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let stop = || stops.load(Ordering::SeqCst) > 0;
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot find own executable: {e}");
            return ExitCode::from(1);
        }
    };
    let spawn = |index: usize| -> std::io::Result<Child> {
        let mut cmd = Command::new(&exe);
        cmd.arg("worker")
            .arg("--config")
            .arg(config)
            .arg("--index")
            .arg(index.to_string())
            .arg("--workers")
            .arg(workers.to_string())
            .env(ENV_INSTANCE, &instance_hex)
            .env(ENV_RUNTIME_DIR, &runtime_dir)
            .env(ENV_SUPERVISOR_PID, std::process::id().to_string())
            // Ctrl-C in a terminal signals the foreground group: only the
            // supervisor, which then drains the workers in order.
            .process_group(0);
        if let Some(k) = &generated_key {
            cmd.env(ENV_SESSION_KEYS, k);
        }
        cmd.spawn()
    };
    let mut children: Vec<(Option<Child>, Instant)> = Vec::with_capacity(workers);
    let mut quick_deaths = vec![0u32; workers];
    for i in 0..workers {
        match spawn(i) {
            Ok(c) => children.push((Some(c), Instant::now())),
            Err(e) => {
                eprintln!("error: cannot start worker {i}: {e}");
                stop_all(&mut children, Duration::ZERO, &stops);
                return ExitCode::from(1);
            }
        }
    }
    tracing::info!(workers, instance = %instance_hex, "supervisor started workers");
    let mut failed = false;
    let mut hangups_seen = 0;
    while !stop() {
        std::thread::sleep(Duration::from_millis(100));
        let h = hangups.load(Ordering::SeqCst);
        if h != hangups_seen {
            hangups_seen = h;
            tracing::info!("SIGHUP: every worker reloads the policy");
            for (child, _) in &children {
                if let Some(c) = child {
                    let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGHUP);
                }
            }
        }
        for (i, (slot, started)) in children.iter_mut().enumerate() {
            let exited = match slot.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Ok(None)) => None,
                Some(Err(e)) => Some(e.to_string()),
                None => Some("not running".into()),
            };
            let Some(why) = exited else { continue };
            if stop() || started.elapsed() < RESTART_BACKOFF {
                continue;
            }
            // A worker that cannot stay up (port taken, bad key file) will not
            // fix itself: give up instead of restarting forever.
            quick_deaths[i] = if started.elapsed() < QUICK_DEATH {
                quick_deaths[i] + 1
            } else {
                0
            };
            if quick_deaths[i] >= MAX_QUICK_DEATHS {
                tracing::error!(worker = i, %why, "worker keeps exiting at start; stopping");
                stops.fetch_add(1, Ordering::SeqCst);
                failed = true;
                continue;
            }
            tracing::warn!(worker = i, %why, "worker exited; restarting it");
            *started = Instant::now();
            *slot = spawn(i)
                .map_err(|e| tracing::error!(worker = i, "restart failed: {e}"))
                .ok();
        }
    }
    if !failed {
        tracing::info!(
            grace_secs = grace.as_secs(),
            "stopping: draining the workers (a second signal ends them at once)"
        );
    }
    // The workers close their copies as they begin to drain: with these
    // gone too, new connections are refused at once (or go to an instance
    // that took the sockets over) instead of waiting in a queue nobody
    // serves until the drain ends.
    listeners.close();
    let clean = stop_all(&mut children, grace, &stops);
    let _ = std::fs::remove_dir_all(&runtime_dir);
    if failed || !clean {
        ExitCode::from(1)
    } else {
        tracing::info!("stopped");
        ExitCode::SUCCESS
    }
}

/// The instance's public sockets: with `takeover`, those of the instances
/// already listening on `addr` first (shared with them, so nothing queued
/// is lost when they close their copies), then new ones up to one per
/// worker.
fn bind_listeners(
    addr: std::net::SocketAddr,
    workers: usize,
    takeover: bool,
) -> std::io::Result<handover::Listeners> {
    if !takeover {
        return handover::Listeners::bind(addr, workers, Vec::new());
    }
    let inherited = handover::take_over(&std::env::temp_dir(), addr);
    if inherited.is_empty() {
        tracing::warn!(
            %addr,
            "--takeover: no running instance handed over its listening sockets; \
             listening beside it (what is queued on its sockets when it closes them is lost)"
        );
    } else {
        tracing::info!(%addr, sockets = inherited.len(), "--takeover: sharing the running instance's listening sockets");
    }
    handover::Listeners::bind(addr, workers, inherited)
}

/// Whether nothing listens on `addr`: a plain bind (no `SO_REUSEPORT`)
/// fails while any socket listens there, including another instance's
/// workers.
fn address_is_free(addr: std::net::SocketAddr) -> std::io::Result<()> {
    crate::accept::lean::listen_on(addr, false, 1).map(drop)
}

/// SIGTERM to every worker, then wait while they drain (up to the grace
/// period and a margin); a further signal, or the wait running out, kills
/// what is left. Returns whether every worker exited by itself with 0.
fn stop_all(
    children: &mut [(Option<Child>, Instant)],
    grace: Duration,
    stops: &AtomicUsize,
) -> bool {
    let signals_before = stops.load(Ordering::SeqCst).max(1);
    for (c, _) in children
        .iter()
        .filter_map(|(c, t)| c.as_ref().map(|c| (c, t)))
    {
        let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace + Duration::from_secs(5);
    let mut clean = true;
    loop {
        let mut running = 0;
        for (slot, _) in children.iter_mut() {
            let Some(c) = slot.as_mut() else { continue };
            match c.try_wait() {
                Ok(Some(status)) => {
                    // (A worker still starting may die of the SIGTERM itself.)
                    use std::os::unix::process::ExitStatusExt;
                    clean &= status.success() || status.signal() == Some(SIGTERM);
                    *slot = None;
                }
                Ok(None) => running += 1,
                Err(_) => *slot = None,
            }
        }
        if running == 0 {
            return clean;
        }
        let again = stops.load(Ordering::SeqCst) > signals_before;
        if again || Instant::now() >= deadline {
            tracing::warn!(
                workers = running,
                "{}: killing the workers left",
                if again {
                    "second signal"
                } else {
                    "drain took too long"
                }
            );
            for (slot, _) in children.iter_mut() {
                if let Some(c) = slot.as_mut() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The supervisor's pid, in its runtime directory.
const PID_FILE: &str = "supervisor.pid";
/// A runtime directory younger than this is never taken for stale (its
/// supervisor may be writing its pid file).
const STALE_AFTER: Duration = Duration::from_secs(60);

/// Removes the runtime directories (`mcpgate-<16 hex>`) that supervisors
/// killed without a chance to clean up left behind: their pid file names a
/// process that no longer runs (or they have none), and they are not new.
fn remove_stale_runtime_dirs(tmp: &Path) {
    for dir in crate::ops::worker_identity::runtime_dirs(tmp) {
        let old = std::fs::metadata(&dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        let alive = std::fs::read_to_string(dir.join(PID_FILE))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if old && !alive && std::fs::remove_dir_all(&dir).is_ok() {
            tracing::info!(dir = %dir.display(), "removed a stale runtime directory");
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_directories_of_dead_supervisors_are_removed() {
        let base = std::env::temp_dir().join(format!("mcpgate-stale-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let make = |hex: &str, pid: Option<u32>, age: Duration| {
            let d = base.join(format!("mcpgate-{hex}"));
            std::fs::create_dir_all(&d).unwrap();
            if let Some(p) = pid {
                std::fs::write(d.join(PID_FILE), p.to_string()).unwrap();
            }
            let t = std::time::SystemTime::now() - age;
            std::fs::File::open(&d).unwrap().set_modified(t).unwrap();
            d
        };
        let hour = Duration::from_secs(3600);
        let dead = make("00000000000000aa", Some(u32::MAX - 1), hour);
        let no_pid = make("00000000000000bb", None, hour);
        let alive = make("00000000000000cc", Some(std::process::id()), hour);
        let young = make("00000000000000dd", Some(u32::MAX - 1), Duration::ZERO);
        let other = base.join("mcpgate-test-keepme");
        std::fs::create_dir_all(&other).unwrap();
        remove_stale_runtime_dirs(&base);
        assert!(!dead.exists() && !no_pid.exists());
        assert!(alive.exists() && young.exists() && other.exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
