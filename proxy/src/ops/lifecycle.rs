//! A worker process's life: bind, serve, drain, exit.
//!
//! Everything a worker listens on is bound (or, for the public sockets,
//! received from the supervisor) before it says it listens, so a taken
//! address is an error at start. On SIGTERM or SIGINT the worker
//! drains: it stops accepting, closes idle connections, ends held streams
//! cleanly (their last chunk; a legacy client resumes through its sealed
//! session id), lets every request in flight finish for up to
//! `[shutdown] grace_secs`, logs what it drained and exits 0. A second
//! signal ends it at once. SIGHUP reloads the policy ([`crate::ops::reload`]).
//! If the supervisor dies, the kernel sends the worker SIGTERM
//! (`PR_SET_PDEATHSIG`), so no worker outlives its instance.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};

use crate::accept::lean::{self, Bind, Connections, LeanListener};
use crate::accept::tls::Terminator;
use crate::exchange::tokens::Tokens;
use crate::gate::{Live, McpGate, ReloadSource};
use crate::ops::clock::SystemClock;
use crate::ops::handover;
use crate::ops::worker_identity::WorkerIdentity;
use crate::upstream::pool::stop_stdio_workers;

/// Environment variable naming the supervisor's pid, so a worker started
/// after its supervisor died notices and exits.
pub const ENV_SUPERVISOR_PID: &str = "MCPGATE_SUPERVISOR_PID";

/// Everything one worker serves, bound.
struct Bound {
    /// This worker's share of the instance's public sockets, lent by the
    /// supervisor ([`crate::ops::handover`]).
    public: Vec<std::net::TcpListener>,
    tls: Option<Arc<Terminator>>,
    internal: std::os::unix::net::UnixListener,
    admin: Option<std::net::TcpListener>,
}

/// Runs worker `identity.index` until it has drained.
pub fn run(
    policy: Arc<policies::Policy>,
    config: &Path,
    identity: WorkerIdentity,
    keys: &[[u8; 32]],
) -> ExitCode {
    if let Err(why) = die_with_supervisor() {
        eprintln!("error: {why}");
        return ExitCode::from(1);
    }
    let bound = match bind(&policy, &identity) {
        Ok(b) => b,
        Err(why) => {
            tracing::error!(worker = identity.index, "{why}");
            return ExitCode::from(1);
        }
    };
    let threads = policy.listen.threads.max(1);
    if threads > 1 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("mcpgate-worker")
            .enable_all()
            .build();
        return run_on(runtime, serve(policy, config, identity, keys, bound));
    }
    // One event-loop thread: a current-thread runtime on a thread of its
    // own (named as the multi-threaded runtime names its threads). The
    // multi-threaded runtime with one worker ran the worker's main future
    // on another thread than its connections, and paid for work-stealing
    // queues nothing could steal from.
    let ended = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("mcpgate-worker".into())
            .spawn_scoped(scope, move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                run_on(runtime, serve(policy, config, identity, keys, bound))
            })
            .map(|t| t.join())
    });
    match ended {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => {
            eprintln!("error: the event loop panicked");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: cannot start the event loop thread: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs the worker's main future to its end on `runtime`.
fn run_on(
    runtime: std::io::Result<tokio::runtime::Runtime>,
    main: impl std::future::Future<Output = ExitCode>,
) -> ExitCode {
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(main);
    runtime.shutdown_timeout(Duration::from_millis(200));
    code
}

/// Asks the kernel for SIGTERM when the supervisor goes, and checks it has
/// not gone already.
fn die_with_supervisor() -> Result<(), String> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .map_err(|e| format!("cannot set the parent-death signal: {e}"))?;
    if let Some(pid) = std::env::var(ENV_SUPERVISOR_PID)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        if std::os::unix::process::parent_id() != pid {
            return Err("the supervisor is gone".into());
        }
    }
    Ok(())
}

fn bind(policy: &policies::Policy, identity: &WorkerIdentity) -> Result<Bound, String> {
    let addr = policy.listen.address;
    let tls = match &policy.listen.tls {
        Some(settings) => Some(Arc::new(
            Terminator::new(settings).map_err(|e| format!("[listen.tls]: {e}"))?,
        )),
        None => None,
    };
    let public = handover::ask_supervisor(&identity.runtime_dir, identity.index)
        .map_err(|e| format!("cannot get the sockets listening on {addr}: {e}"))?;
    let path = identity.socket_of(identity.index);
    let internal = lean::bind_internal(&path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    // Shared (SO_REUSEPORT) so that an instance started with `--takeover`
    // binds it beside the one it replaces; the supervisor refuses a second
    // instance there otherwise.
    let admin = match policy.admin.as_ref().filter(|_| identity.index == 0) {
        Some(a) => Some(
            lean::listen_on(a.address, true, 128)
                .map_err(|e| format!("cannot listen on {} (admin): {e}", a.address))?,
        ),
        None => None,
    };
    Ok(Bound {
        public,
        tls,
        internal,
        admin,
    })
}

async fn serve(
    policy: Arc<policies::Policy>,
    config: &Path,
    identity: WorkerIdentity,
    keys: &[[u8; 32]],
    bound: Bound,
) -> ExitCode {
    let index = identity.index;
    let workers = identity.workers;
    // First: the supervisor passes SIGHUP on to every worker, and its
    // default action would end one still starting (a signal that arrives
    // before the loop below waits is kept for it).
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            tracing::error!(worker = index, "cannot install signal handlers");
            return ExitCode::from(1);
        }
    };
    let tokens = match &policy.auth.jwt {
        Some(jwt) => match Tokens::load(jwt, Arc::new(SystemClock)).await {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                tracing::error!(worker = index, "{e}");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    if let Some(t) = tokens.clone() {
        tokio::spawn(t.keep_fresh());
    }
    let gate = match McpGate::new(policy.clone(), identity, keys, tokens) {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(worker = index, "upstream: {e}");
            return ExitCode::from(1);
        }
    };
    let live = Live::reloading_from(
        gate,
        Some(ReloadSource {
            config: config.to_path_buf(),
            tls: bound.tls.clone(),
        }),
    );
    // The fair gate's limit follows this worker's scheduling delay.
    live.load().admission.start_lag_probe();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let connections = Arc::new(Connections::default());
    let public = bound
        .public
        .into_iter()
        .map(|l| (Bind::Tcp(l), bound.tls.clone()));
    let mut accepting = Vec::new();
    for (bind, tls) in public.chain([(Bind::Internal(bound.internal), None)]) {
        let listener = LeanListener {
            live: live.clone(),
            bind,
            connections: connections.clone(),
            tls,
        };
        accepting.push(tokio::spawn(listener.run(stopped.clone())));
    }
    if let Some(tls) = bound.tls.clone() {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(crate::accept::tls::WATCH_EVERY);
            loop {
                every.tick().await;
                tls.reload(false);
            }
        });
    }
    {
        use pingora::services::background::BackgroundService;
        let (maintenance, stopped) = (
            crate::ops::background::Maintenance(live.clone()),
            stopped.clone(),
        );
        tokio::spawn(async move { maintenance.start(stopped).await });
    }
    if let Some(admin) = bound.admin {
        tokio::spawn(crate::ops::admin::serve(live.clone(), admin));
    }
    tracing::info!(
        worker = index, workers, listen = %policy.listen.address, path = %policy.listen.path,
        upstreams = ?policy.upstreams.iter().map(|p| &p.name).collect::<Vec<_>>(),
        "mcpgate listening"
    );

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!(worker = index, "SIGHUP: reloading the policy");
                let live = live.clone();
                // Off this loop: a second signal must still be heard.
                tokio::spawn(async move { crate::ops::reload::reload(&live).await });
            }
        }
    }

    let gate = live.load();
    let grace = Duration::from_secs(gate.policy.shutdown.grace_secs);
    let began = Instant::now();
    let (open, in_flight, streams) = (
        connections.open(),
        gate.admission.in_flight(),
        gate.admission.streams_open(),
    );
    gate.draining.store(true, Ordering::Release);
    tracing::info!(
        worker = index,
        connections = open,
        in_flight,
        streams,
        grace_secs = grace.as_secs(),
        "draining: stopped accepting, finishing what is in flight"
    );
    let _ = stop.send(true);
    // First the listeners take what the kernel had queued for them (else a
    // connection accepted as the worker exits would be reset), then every
    // connection finishes.
    let finished = async {
        for listener in accepting {
            let _ = listener.await;
        }
        connections.all_closed().await
    };
    let outcome = tokio::select! {
        _ = finished => "every connection finished",
        _ = tokio::time::sleep(grace) => "grace period over",
        _ = term.recv() => "second signal",
        _ = int.recv() => "second signal",
    };
    // Every stdio worker of this process, those of pools a reload replaced
    // too: none is left behind.
    let retired = gate.retired.lock().clone();
    stop_stdio_workers(gate.pools.values().chain(&retired)).await;
    if gate.traces.is_some() {
        // The last requests' spans reach the collector (or are given up
        // after the export timeout), off the event loop.
        let g = gate.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(t) = &g.traces {
                t.shutdown();
            }
        })
        .await;
    }
    if let Some(trail) = &gate.audit {
        // The last requests' records reach the file before the exit.
        if !trail.flush(Duration::from_secs(5)) {
            tracing::warn!(file = %trail.path.display(), "audit: records still queued at exit were lost");
        }
    }
    let left = connections.open();
    if left == 0 {
        tracing::info!(
            worker = index,
            connections = open,
            in_flight,
            streams,
            cut = 0,
            millis = began.elapsed().as_millis() as u64,
            "drained: {outcome}"
        );
    } else {
        tracing::warn!(
            worker = index,
            connections = open,
            in_flight,
            streams,
            cut = left,
            millis = began.elapsed().as_millis() as u64,
            "drain ended early: {outcome}; closing {left} connections"
        );
    }
    ExitCode::SUCCESS
}
