//! `loadgen`: MCP load generator (see `bench::load`).
//!
//! ```sh
//! loadgen run --url http://127.0.0.1:8080/mcp --connections 64 --duration-s 10 --json out.json
//! loadgen run --url ... --rate 5000            # fixed rate, latency from intended send time
//! loadgen run --url https://localhost:8443/mcp --ca-file ca.pem   # over TLS
//! loadgen hold --url ... < commands            # hold streams: "open N", "status", "quit"
//! ```
//! Loopback only: a non-loopback address is refused.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bench::load::client::TlsClient;
use bench::load::{self, hold, mcp::Target, EraMix, LoadConfig};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loadgen",
    version,
    about = "MCP load generator (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send `tools/call` load and report latencies.
    Run(RunArgs),
    /// Hold open streams, driven by commands on stdin.
    Hold(HoldArgs),
}

#[derive(Args)]
struct Common {
    /// MCP endpoint, e.g. http://127.0.0.1:8080/mcp (loopback only).
    #[arg(long)]
    url: String,
    /// Protocol revision of the clients.
    #[arg(long, value_enum, default_value = "mixed")]
    era: EraMix,
    /// API key (sent as `Authorization: Bearer`).
    #[arg(long)]
    api_key: Option<String>,
    /// Loopback source addresses to spread connections over (comma separated).
    #[arg(long, value_delimiter = ',')]
    source_ip: Vec<IpAddr>,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Per-request timeout (ms).
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// CA certificates (PEM) an https:// URL's server is verified against;
    /// the name verified is the URL's host (`localhost` for a loopback
    /// address written as `localhost`), or --server-name.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// The name sent (SNI) and verified, for an https:// URL.
    #[arg(long)]
    server_name: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Fixed request rate (per second); omitted: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    #[arg(long, default_value_t = 5.0)]
    duration_s: f64,
    /// Stop after this many measured requests.
    #[arg(long)]
    max_requests: Option<u64>,
    /// Size of the echo text, in bytes.
    #[arg(long, default_value_t = 4096)]
    payload_bytes: usize,
    /// Write the report here (JSON); stdout otherwise.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Record a per-interval timeline (ms).
    #[arg(long)]
    timeline_ms: Option<u64>,
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct HoldArgs {
    #[command(flatten)]
    common: Common,
    /// Streams set up at once.
    #[arg(long, default_value_t = 128)]
    parallel: usize,
}

/// Splits an `http://` or `https://host:port/path` URL into its address and
/// target (and, for https, how to speak TLS).
fn parse_url(common: &Common) -> Result<(SocketAddr, Target, Option<TlsClient>), String> {
    let (rest, https) = match common.url.strip_prefix("https://") {
        Some(rest) => (rest, true),
        None => (
            common
                .url
                .strip_prefix("http://")
                .ok_or("only http:// and https:// URLs are supported")?,
            false,
        ),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    if !addr.ip().is_loopback() || common.source_ip.iter().any(|ip| !ip.is_loopback()) {
        return Err("loopback addresses only".into());
    }
    let tls = if https {
        let ca = common
            .ca_file
            .as_ref()
            .ok_or("an https:// URL needs --ca-file")?;
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let name = common.server_name.as_deref().unwrap_or(host);
        Some(TlsClient::new(&pem, name).map_err(|e| format!("TLS client: {e}"))?)
    } else {
        None
    };
    Ok((
        addr,
        Target {
            authority: authority.to_owned(),
            path: path.to_owned(),
            api_key: common.api_key.clone(),
        },
        tls,
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let common = match &cli.command {
        Command::Run(a) => &a.common,
        Command::Hold(a) => &a.common,
    };
    let (addr, target, tls) = match parse_url(common) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(common.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Run(a) => {
            let mut cfg = LoadConfig::new("loadgen", addr);
            cfg.target = target;
            cfg.eras = a.common.era;
            cfg.connections = a.connections.max(1);
            cfg.rate_per_s = a.rate.filter(|r| *r > 0.0);
            cfg.warmup = Duration::from_secs_f64(a.warmup_s.max(0.0));
            cfg.duration = Duration::from_secs_f64(a.duration_s.clamp(0.1, 3600.0));
            cfg.max_requests = a.max_requests;
            cfg.payload_bytes = a.payload_bytes;
            cfg.timeout = Duration::from_millis(a.common.timeout_ms);
            cfg.timeline_bucket = a.timeline_ms.map(Duration::from_millis);
            cfg.progress = !a.quiet;
            cfg.source_ips = a.common.source_ip.clone();
            cfg.tls = tls;
            let report = runtime.block_on(load::run(cfg));
            let text = serde_json::to_string_pretty(&report).unwrap_or_default();
            match a.json {
                Some(path) => {
                    if let Err(e) = std::fs::write(&path, text + "\n") {
                        eprintln!("loadgen: {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                }
                None => println!("{text}"),
            }
            ExitCode::SUCCESS
        }
        Command::Hold(a) => {
            if tls.is_some() {
                eprintln!("loadgen hold: https:// is not supported");
                return ExitCode::from(2);
            }
            let cfg = hold::HoldConfig {
                addr,
                target,
                eras: a.common.era,
                source_ips: a.common.source_ip.clone(),
                parallel: a.parallel,
                timeout: Duration::from_millis(a.common.timeout_ms),
            };
            match runtime.block_on(hold::serve_commands(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("loadgen hold: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
