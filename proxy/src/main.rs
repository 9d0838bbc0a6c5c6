#![forbid(unsafe_code)]
//! `mcpgate`: a Model Context Protocol safety gateway.

mod admin;
mod admission;
mod app;
mod background;
mod breaker;
mod clock;
mod forward;
mod inspect;
mod metrics;
mod pool;
mod ratelimit;
mod relay;
mod respond;
mod sessions;
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
    /// Start the gateway with a policy file.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match &cli.command {
        Command::Check { config } | Command::Run { config } => config,
    };
    let policy = match policies::parse_policy_file(config) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Check { .. } => {
            println!("{}: ok", config.display());
            ExitCode::SUCCESS
        }
        Command::Run { .. } => run(policy),
    }
}

fn run(policy: policies::Policy) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,pingora=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let policy = Arc::new(policy);
    let conf = ServerConf {
        threads: policy.listen.threads,
        // SIGTERM: stop accepting at once and give streams 5 s, not minutes.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let gate = match app::McpGate::new(policy.clone()) {
        Ok(g) => Arc::new(g),
        Err(e) => {
            eprintln!("error: upstream: {e}");
            return ExitCode::from(1);
        }
    };
    let mut service = Service::new("mcpgate".to_string(), app::GateService(gate.clone()));
    service.add_tcp(&policy.listen.address.to_string());
    server.add_service(service);
    server.add_service(pingora::services::background::background_service(
        "mcpgate-maintenance",
        background::Maintenance(gate.clone()),
    ));
    if let Some(admin) = &policy.admin {
        let app = pingora::apps::http_app::HttpServer::new_app(admin::Admin { gate });
        let mut service = Service::new("mcpgate-admin".to_string(), app);
        service.add_tcp(&admin.address.to_string());
        server.add_service(service);
    }
    tracing::info!(
        listen = %policy.listen.address, path = %policy.listen.path, upstreams = ?policy.upstreams.iter().map(|p| &p.name).collect::<Vec<_>>(),
        "mcpgate listening"
    );
    server.run_forever()
}
