//! `bare-pingora`: the framework's floor. A pingora 0.9 `ProxyHttp`
//! passthrough to one upstream, no filters, used as the baseline for mcpgate
//! in the benchmarks. Same thread count as mcpgate (`--threads`).
#![forbid(unsafe_code)]

use async_trait::async_trait;
use clap::Parser;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// Upstream `host:port` (plain HTTP).
    #[arg(long)]
    upstream: String,
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

struct Passthrough(String);

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.0.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let args = Args::parse();
    let conf = ServerConf {
        threads: args.threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Passthrough(args.upstream));
    proxy.add_tcp(&args.listen);
    server.add_service(proxy);
    println!("bare-pingora listening on {}", args.listen);
    server.run_forever()
}
