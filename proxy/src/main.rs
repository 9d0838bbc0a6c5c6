#![forbid(unsafe_code)]
//! `mcpgate`: a Model Context Protocol safety gateway.

mod admin;
mod admission;
mod app;
mod background;
mod breaker;
mod chunked;
mod clock;
mod forward;
mod h1_stream;
mod held;
mod identity;
mod inspect;
mod lean;
mod metrics;
mod owner;
mod pool;
mod ratelimit;
mod relay;
mod respond;
mod session_id;
mod sessions;
mod supervisor;
mod upstream;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;

#[derive(Parser)]
#[command(name = "mcpgate", version, about = "MCP safety gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a policy file: every problem with file, line, column and key path.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Start the gateway: a supervisor and N worker processes sharing the port.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Worker processes (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// One worker process (started by `run`).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        index: usize,
        #[arg(long)]
        workers: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match &cli.command {
        Command::Check { config }
        | Command::Run { config, .. }
        | Command::Worker { config, .. } => config,
    };
    let policy = match policies::parse_policy_file(config) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(1);
        }
    };
    let keys = match session_keys(&policy) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Check { .. } => {
            println!("{}: ok", config.display());
            ExitCode::SUCCESS
        }
        Command::Run { workers, .. } => {
            init_logging();
            let n = workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            if n == 0 || n > 256 {
                eprintln!("error: --workers must be 1..=256");
                return ExitCode::from(1);
            }
            supervisor::supervise(config, n, !keys.is_empty())
        }
        Command::Worker { index, workers, .. } => {
            init_logging();
            worker(policy, index, workers, keys)
        }
    }
}

/// Session keys, newest first: `[sessions] keys`, then `key_file`, else
/// the key the supervisor generated for this run (`MCPGATE_SESSION_KEYS`).
fn session_keys(policy: &policies::Policy) -> Result<Vec<[u8; 32]>, String> {
    let mut keys = policy.sessions.keys.clone();
    if let Some(path) = &policy.sessions.key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("sessions.key_file {}: {e}", path.display()))?;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            keys.push(policies::decode_session_key(line).ok_or_else(|| {
                format!("{}:{}: not the base64 of 32 bytes", path.display(), n + 1)
            })?);
        }
    }
    if keys.is_empty() {
        if let Ok(v) = std::env::var(identity::ENV_SESSION_KEYS) {
            keys.extend(v.split(',').filter_map(policies::decode_session_key));
        }
    }
    Ok(keys)
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,pingora=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn identity_from_env(index: usize, workers: usize) -> Option<identity::WorkerIdentity> {
    let mut instance = [0u8; 8];
    hex::decode_to_slice(std::env::var(identity::ENV_INSTANCE).ok()?, &mut instance).ok()?;
    let runtime_dir = std::env::var_os(identity::ENV_RUNTIME_DIR)?.into();
    Some(identity::WorkerIdentity {
        instance,
        index,
        workers,
        runtime_dir,
    })
}

fn worker(policy: policies::Policy, index: usize, workers: usize, keys: Vec<[u8; 32]>) -> ExitCode {
    let Some(identity) = identity_from_env(index, workers) else {
        eprintln!("error: `mcpgate worker` is started by `mcpgate run`");
        return ExitCode::from(1);
    };
    if keys.is_empty() {
        eprintln!("error: no session key");
        return ExitCode::from(1);
    }
    let policy = Arc::new(policy.for_worker(index, workers));
    let conf = ServerConf {
        threads: policy.listen.threads,
        // SIGTERM: stop accepting at once and give streams 5 s, not minutes.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let internal_socket = identity.socket_of(index);
    let gate = match app::McpGate::new(policy.clone(), identity, &keys) {
        Ok(g) => Arc::new(g),
        Err(e) => {
            eprintln!("error: upstream: {e}");
            return ExitCode::from(1);
        }
    };
    server.add_service(pingora::services::background::background_service(
        "mcpgate-listener",
        lean::LeanListener {
            gate: gate.clone(),
            bind: lean::Bind::Tcp(policy.listen.address),
        },
    ));
    server.add_service(pingora::services::background::background_service(
        "mcpgate-internal",
        lean::LeanListener {
            gate: gate.clone(),
            bind: lean::Bind::Internal(internal_socket),
        },
    ));
    server.add_service(pingora::services::background::background_service(
        "mcpgate-maintenance",
        background::Maintenance(gate.clone()),
    ));
    if let Some(admin) = policy.admin.as_ref().filter(|_| index == 0) {
        let app = pingora::apps::http_app::HttpServer::new_app(admin::Admin { gate });
        let mut service = Service::new("mcpgate-admin".to_string(), app);
        service.add_tcp(&admin.address.to_string());
        server.add_service(service);
    }
    tracing::info!(
        worker = index, workers, listen = %policy.listen.address, path = %policy.listen.path, upstreams = ?policy.upstreams.iter().map(|p| &p.name).collect::<Vec<_>>(),
        "mcpgate listening"
    );
    server.run_forever()
}
