//! `mcpgate run --workers N`: start N worker processes that share the
//! listening port (`SO_REUSEPORT`), each with its own event loop, and restart
//! any that dies.
//!
//! The supervisor creates the instance id, a private runtime directory for
//! the workers' internal sockets, and (when the policy names no key) a random
//! session key shared by its workers. SIGTERM/SIGINT are passed on to the
//! workers, then the supervisor exits.

use std::path::Path;
use std::process::{Child, Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::identity::{ENV_INSTANCE, ENV_RUNTIME_DIR, ENV_SESSION_KEYS};

/// A worker that keeps dying is restarted at most this often.
const RESTART_BACKOFF: Duration = Duration::from_millis(500);
/// A worker that exits this soon after starting...
const QUICK_DEATH: Duration = Duration::from_secs(3);
/// ...this many times in a row makes the supervisor give up.
const MAX_QUICK_DEATHS: u32 = 5;

pub fn supervise(config: &Path, workers: usize, keys_configured: bool) -> ExitCode {
    let mut instance = [0u8; 8];
    getrandom::fill(&mut instance).expect("the OS random source is available");
    let instance_hex = hex::encode(instance);
    let runtime_dir = std::env::temp_dir().join(format!("mcpgate-{instance_hex}"));
    if let Err(e) = create_private_dir(&runtime_dir) {
        eprintln!(
            "error: cannot create runtime dir {}: {e}",
            runtime_dir.display()
        );
        return ExitCode::from(1);
    }
    let generated_key = (!keys_configured).then(|| {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source is available");
        base64::engine::general_purpose::STANDARD.encode(key)
    });
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("error: cannot install signal handler: {e}");
            return ExitCode::from(1);
        }
    }
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
            .env(ENV_RUNTIME_DIR, &runtime_dir);
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
                stop_all(&mut children);
                return ExitCode::from(1);
            }
        }
    }
    tracing::info!(workers, instance = %instance_hex, "supervisor started workers");
    let mut failed = false;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        for (i, (slot, started)) in children.iter_mut().enumerate() {
            let exited = match slot.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Ok(None)) => None,
                Some(Err(e)) => Some(e.to_string()),
                None => Some("not running".into()),
            };
            let Some(why) = exited else { continue };
            if stop.load(Ordering::Relaxed) || started.elapsed() < RESTART_BACKOFF {
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
                stop.store(true, Ordering::Relaxed);
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
    stop_all(&mut children);
    let _ = std::fs::remove_dir_all(&runtime_dir);
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// SIGTERM to every worker, then wait (a worker drains streams for a few
/// seconds at most), then SIGKILL what is left.
fn stop_all(children: &mut [(Option<Child>, Instant)]) {
    for (c, _) in children
        .iter()
        .filter_map(|(c, t)| c.as_ref().map(|c| (c, t)))
    {
        let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    for (slot, _) in children.iter_mut() {
        let Some(c) = slot.as_mut() else { continue };
        while Instant::now() < deadline {
            if matches!(c.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
}
