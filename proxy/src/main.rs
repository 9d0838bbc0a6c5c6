#![forbid(unsafe_code)]
//! `mcpgate`: a Model Context Protocol safety gateway.

// The stages of a request and its answer: accept → exchange → sessions →
// admission → upstream, and the answer back through the upstream's relay
// (or, for a long-lived stream, a held stream that the accept layer runs).
// Each folder's module doc says what its stage does and what it hands on.
mod accept;
mod admission;
mod exchange;
mod sessions;
mod upstream;

// The state every stage takes by reference, and the process around them.
mod gate;
mod ops;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use ops::worker_identity;

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
        /// Start even though another process listens on the address (for an
        /// upgrade: the old instance is then drained with SIGTERM).
        #[arg(long)]
        takeover: bool,
    },
    /// Run the chain offline on one message (a JSON-RPC file): each filter's
    /// decision, then the answer a client would get. Exit 0 when it passes,
    /// 1 when refused.
    Explain {
        #[arg(long)]
        config: PathBuf,
        /// The caller's tenant (default: the anonymous tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// A verified token's subject (the caller then holds a token).
        #[arg(long)]
        subject: Option<String>,
        /// A scope of that token (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A `tools/list` result whose inputSchemas arguments are checked
        /// against (with `[tools] validate_arguments`).
        #[arg(long)]
        tools: Option<PathBuf>,
        /// The message (JSON-RPC request) to judge.
        message: PathBuf,
        /// A server's answer to it, for the response phase.
        #[arg(long)]
        response: Option<PathBuf>,
    },
    /// Write the tool and prompt definitions every upstream pool lists to a
    /// lock file to review (`--out`), or compare them with one (`--check`:
    /// exit 1 and a diff when they drifted). Exit 2 on an error.
    Pin {
        #[arg(long)]
        config: PathBuf,
        /// The lock file to write (with `--check`: the one compared, unless
        /// `--lock` names it).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Compare instead of writing.
        #[arg(long)]
        check: bool,
        /// The lock file `--check` compares with (default: `--out`, then
        /// `[tools] lock_file`).
        #[arg(long)]
        lock: Option<PathBuf>,
        /// Protocol revisions to list in: every one the server speaks
        /// (`auto`), or one.
        #[arg(long, value_enum, default_value = "auto")]
        era: ops::pin::EraChoice,
    },
    /// Ask the running instance to reload its policy (`POST /reload` on its
    /// admin listener) and print every worker's report. An invalid file is
    /// reported as `check` does and never sent. Exit 0 when every worker
    /// reloaded, 1 when one did not, 2 when the instance could not be asked.
    Reload {
        #[arg(long)]
        config: PathBuf,
        /// The admin listener to ask (default: the file's `[admin] address`).
        #[arg(long)]
        admin: Option<std::net::SocketAddr>,
    },
    /// The audit trail (`[audit]`).
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
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

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain of one worker's trail across its files, oldest
    /// first (rotated files, then the current one): exit 0 when intact, 1
    /// naming the first changed, removed or reordered record, 2 when a file
    /// cannot be read.
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    // The stdio worker launcher: limits on itself, then exec. Read before
    // clap, which must not interpret the server's own arguments.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv
        .get(1)
        .is_some_and(|a| a == upstream::stdio::launch::SUBCOMMAND)
    {
        eprintln!(
            "mcpgate {}: {}",
            upstream::stdio::launch::SUBCOMMAND,
            upstream::stdio::launch::exec(&argv[2..])
        );
        return ExitCode::from(127);
    }
    let cli = Cli::parse();
    if let Command::Audit {
        action: AuditCommand::Verify { files },
    } = &cli.command
    {
        return ops::audit::verify::run(files);
    }
    let config = match &cli.command {
        Command::Check { config }
        | Command::Run { config, .. }
        | Command::Explain { config, .. }
        | Command::Pin { config, .. }
        | Command::Reload { config, .. }
        | Command::Worker { config, .. } => config,
        Command::Audit { .. } => return ExitCode::from(2),
    };
    let policy = match policies::parse_policy_file(config) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(1);
        }
    };
    let keys = match ops::policy_file::session_keys(&policy) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Check { .. } => {
            if let Err(e) = ops::policy_file::runnable(&policy) {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
            println!("{}: ok", config.display());
            ExitCode::SUCCESS
        }
        Command::Pin {
            out,
            check,
            lock,
            era,
            ..
        } => ExitCode::from(ops::pin::main(
            &policy,
            &ops::pin::PinArgs {
                out,
                check,
                lock,
                era,
            },
        )),
        Command::Run {
            workers, takeover, ..
        } => {
            init_logging();
            let n = workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            if n == 0 || n > 256 {
                eprintln!("error: --workers must be 1..=256");
                return ExitCode::from(1);
            }
            if let Err(e) = ops::policy_file::runnable(&policy) {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
            ops::supervisor::supervise(&policy, config, n, !keys.is_empty(), takeover)
        }
        Command::Explain {
            tenant,
            subject,
            scopes,
            tools,
            message,
            response,
            ..
        } => ops::explain::explain(
            &policy,
            &ops::explain::ExplainArgs {
                message,
                response,
                tenant,
                subject,
                scopes,
                tools,
            },
        ),
        Command::Reload { admin, .. } => {
            if let Err(e) = ops::policy_file::runnable(&policy) {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
            ops::reload::command(config, &policy, admin)
        }
        Command::Worker { index, workers, .. } => {
            init_logging();
            worker(policy, config, index, workers, keys)
        }
        Command::Audit { .. } => ExitCode::from(2),
    }
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

fn identity_from_env(index: usize, workers: usize) -> Option<worker_identity::WorkerIdentity> {
    let mut instance = [0u8; 8];
    hex::decode_to_slice(
        std::env::var(worker_identity::ENV_INSTANCE).ok()?,
        &mut instance,
    )
    .ok()?;
    let runtime_dir = std::env::var_os(worker_identity::ENV_RUNTIME_DIR)?.into();
    Some(worker_identity::WorkerIdentity {
        instance,
        index,
        workers,
        runtime_dir,
    })
}

fn worker(
    policy: policies::Policy,
    config: &std::path::Path,
    index: usize,
    workers: usize,
    keys: Vec<[u8; 32]>,
) -> ExitCode {
    let Some(identity) = identity_from_env(index, workers) else {
        eprintln!("error: `mcpgate worker` is started by `mcpgate run`");
        return ExitCode::from(1);
    };
    if keys.is_empty() {
        eprintln!("error: no session key");
        return ExitCode::from(1);
    }
    let policy = Arc::new(policy.for_worker(index, workers));
    ops::lifecycle::run(policy, config, identity, &keys)
}
