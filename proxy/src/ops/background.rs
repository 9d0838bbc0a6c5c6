//! Background work: active health checks of every endpoint, and the sweep
//! that expires idle sessions (telling their upstream with DELETE) and
//! forgets idle rate-limit buckets.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use bytes::Bytes;

use crate::gate::{Live, McpGate};
use crate::upstream::client::OWN_MESSAGE_TIMEOUT;
use crate::upstream::pool::Pool;

/// Follows the worker's current generation: each round works on the one
/// current then.
pub(crate) struct Maintenance(pub Arc<Live>);

/// How often idle sessions are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

#[async_trait]
impl BackgroundService for Maintenance {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let live = &self.0;
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        // Pins and changes other workers wrote to the state file; idle
        // upstream connections past their time.
        let mut pins = tokio::time::interval(Duration::from_secs(1));
        // Milliseconds since each pool's last check, by pool (a pool a
        // reload carried over keeps its count; a new one starts at 0).
        let mut since_check: Vec<(Arc<Pool>, u64)> = Vec::new();
        loop {
            let gate = live.load();
            let gate = &gate;
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = sweep.tick() => sweep_sessions(gate).await,
                _ = pins.tick() => {
                    gate.pin_files.refresh(gate);
                    for pool in gate.pools.values() {
                        for ep in &pool.endpoints {
                            ep.client.sweep_idle();
                            if let Some(stdio) = ep.client.stdio() {
                                stdio.tick();
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    since_check = gate
                        .pools
                        .values()
                        .map(|pool| {
                            let since = since_check
                                .iter()
                                .find(|(p, _)| Arc::ptr_eq(p, pool))
                                .map_or(0, |(_, since)| *since);
                            (pool.clone(), since)
                        })
                        .collect();
                    for (pool, since) in &mut since_check {
                        let every = pool.config.health.interval_ms;
                        if every == 0 {
                            continue;
                        }
                        *since += 100;
                        if *since >= every {
                            *since = 0;
                            let pool = pool.clone();
                            tokio::spawn(async move { check_pool(&pool).await });
                        }
                    }
                }
            }
        }
    }
}

/// One TCP connect per endpoint: the endpoint accepts connections or not.
async fn check_pool(pool: &Pool) {
    let limit = Duration::from_millis(pool.config.health.timeout_ms);
    for ep in &pool.endpoints {
        // A stdio pool watches its own workers.
        let Some(addr) = ep.client.addr() else {
            continue;
        };
        let ok = matches!(
            tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr)).await,
            Ok(Ok(_))
        );
        pool.report_check(ep, ok);
    }
}

/// Expires idle sessions: each one's upstream gets a DELETE so it can
/// free the session too; the client's next request gets 404.
async fn sweep_sessions(gate: &McpGate) {
    gate.sessions.sweep();
    gate.rate_limits.retain_recent();
    for s in gate.sessions.take_expired() {
        gate.metrics.expired_sessions.inc();
        let Some(upstream_id) = s.upstream_id.clone() else {
            continue;
        };
        let Some(ep) = gate
            .pools
            .get(&*s.pool)
            .and_then(|p| p.endpoints.get(s.endpoint))
            .cloned()
        else {
            continue;
        };
        let version = s.snapshot_version();
        tokio::spawn(async move {
            let headers = [
                ("mcp-session-id", upstream_id.as_str()),
                ("mcp-protocol-version", version.as_str()),
            ];
            let status = ep
                .client
                .send_own(
                    http::Method::DELETE,
                    &headers,
                    Bytes::new(),
                    OWN_MESSAGE_TIMEOUT,
                )
                .await;
            tracing::info!(endpoint = %ep.url, ?status, "expired idle session; DELETE sent upstream");
        });
    }
    gate.metrics.sessions.set(gate.sessions.len() as i64);
}
