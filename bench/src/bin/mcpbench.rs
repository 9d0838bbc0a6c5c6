//! `mcpbench`: the benchmark scenarios and the evidence bundle.
//!
//! ```sh
//! mcpbench run [--quick] [--only throughput-4k,latency] [--out evidence/bench]
//! mcpbench evidence [--dir evidence]     # bundle.json, REPORT.md, SVG plots
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use bench::scenario::{self, procs, rig::Rig, Ctx};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mcpbench",
    version,
    about = "mcpgate benchmark scenarios and evidence"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios; each writes <out>/<scenario>.json.
    Run {
        /// Smoke-test sizes (whole run well under 2 minutes).
        #[arg(long)]
        quick: bool,
        /// Comma-separated scenarios (default: all).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        #[arg(long, default_value = "evidence/bench")]
        out: PathBuf,
        /// Directory of mcpgate, demo-upstream, bare-pingora and loadgen
        /// (default: this binary's directory).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Worker processes/threads of every proxy (mcpgate, nginx, pingora).
        #[arg(long, default_value_t = 1)]
        proxy_workers: usize,
        /// Tokio threads of the mock upstream.
        #[arg(long, default_value_t = 1)]
        mock_threads: usize,
        /// Tokio threads of the in-process load generator.
        #[arg(long, default_value_t = 1)]
        load_threads: usize,
    },
    /// Build evidence/bundle.json, REPORT.md and the SVG plots.
    Evidence {
        #[arg(long, default_value = "evidence")]
        dir: PathBuf,
        /// The command that produced the evidence, recorded in the report.
        #[arg(long, default_value = "make evidence")]
        made_by: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            quick,
            only,
            out,
            bin_dir,
            proxy_workers,
            mock_threads,
            load_threads,
        } => {
            let bin_dir = bin_dir.unwrap_or_else(|| {
                std::env::current_exe()
                    .ok()
                    .and_then(|p| p.parent().map(PathBuf::from))
                    .unwrap_or_else(|| PathBuf::from("target/release"))
            });
            let cwd = std::env::current_dir().unwrap_or_default();
            let Some(repo) = scenario::rig::find_repo(&cwd) else {
                eprintln!("mcpbench: run from the repository (config.example.toml not found)");
                return ExitCode::from(2);
            };
            let work = std::env::temp_dir().join(format!("mcpbench-{}", std::process::id()));
            if let Err(e) = std::fs::create_dir_all(&work).and(std::fs::create_dir_all(&out)) {
                eprintln!("mcpbench: {e}");
                return ExitCode::FAILURE;
            }
            let names: Vec<String> = if only.is_empty() {
                scenario::ALL.iter().map(|s| s.to_string()).collect()
            } else {
                only
            };
            let command = std::env::var("MCPBENCH_COMMAND")
                .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
            let mut rig = Rig {
                bin_dir: bin_dir.clone(),
                mcpgate: bin_dir.join("mcpgate"),
                repo,
                work: work.clone(),
                proxy_threads: proxy_workers.max(1),
                mock_threads: mock_threads.max(1),
            };
            if let Err(e) = rig.freeze_binaries(&bin_dir) {
                eprintln!("mcpbench: binaries in {}: {e}", bin_dir.display());
                return ExitCode::FAILURE;
            }
            let mut ctx = Ctx {
                rig,
                quick,
                out: out.clone(),
                command,
                mcpgate_max_per_s: None,
                ticks_per_s: procs::clock_ticks_per_s(),
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(load_threads.max(1))
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("mcpbench: runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let mut failed = false;
            for name in names {
                let t = Instant::now();
                eprintln!("== {name}");
                match runtime.block_on(scenario::run_one(&mut ctx, &name)) {
                    Ok(v) => {
                        let path = out.join(format!("{name}.json"));
                        let text = serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
                        if let Err(e) = std::fs::write(&path, text) {
                            eprintln!("mcpbench: {}: {e}", path.display());
                            failed = true;
                        }
                        eprintln!(
                            "== {name}: {} in {:.1} s{}",
                            path.display(),
                            t.elapsed().as_secs_f64(),
                            v["stopped_by"]
                                .as_str()
                                .map(|s| format!(" (stopped: {s})"))
                                .unwrap_or_default()
                        );
                    }
                    Err(e) => {
                        eprintln!("== {name}: FAILED: {e}");
                        failed = true;
                    }
                }
            }
            runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            // MCPBENCH_KEEP_WORK=1 keeps the scenario's logs, configs and
            // the profile's folded stacks and strace tables for a look.
            if std::env::var_os("MCPBENCH_KEEP_WORK").is_some() {
                eprintln!("work directory kept: {}", work.display());
            } else {
                let _ = std::fs::remove_dir_all(&work);
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Evidence { dir, made_by } => match bench::report::build(&dir, &made_by) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mcpbench evidence: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
