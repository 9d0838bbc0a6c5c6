//! `demo-upstream`: run the MCP mock server (see `bench::mock`).
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use bench::mock::{serve, Args};
use clap::Parser;

fn main() -> ExitCode {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = args.threads {
        builder.worker_threads(n.get());
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("demo-upstream: cannot start runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let config = args.config();
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let addr = listener.local_addr()?;
        // Tests read this line to learn the port when started with :0.
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "demo-upstream listening on http://{addr}{}",
            config.path
        )?;
        out.flush()?;
        drop(out);
        serve(listener, config).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo-upstream: {err}");
            ExitCode::FAILURE
        }
    }
}
