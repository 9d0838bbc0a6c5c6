//! Background work: active health checks of every endpoint, and the sweep
//! that expires idle sessions (telling their upstream with DELETE) and
//! forgets idle rate-limit buckets.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use bytes::Bytes;

use crate::gate::McpGate;
use crate::upstream::client::OWN_MESSAGE_TIMEOUT;
use crate::upstream::pool::Pool;

pub(crate) struct Maintenance(pub Arc<McpGate>);

/// How often idle sessions are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

#[async_trait]
impl BackgroundService for Maintenance {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let gate = &self.0;
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        // Pins and changes other workers wrote to the state file.
        let mut pins = tokio::time::interval(Duration::from_secs(1));
        let mut since_check: Vec<u64> = gate.pools.values().map(|_| 0).collect();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = sweep.tick() => sweep_sessions(gate).await,
                _ = pins.tick() => {
                    gate.pin_files.refresh(gate);
                    for pool in gate.pools.values() {
                        for ep in &pool.endpoints {
                            if let Some(stdio) = ep.client.stdio() {
                                stdio.tick();
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    for (i, pool) in gate.pools.values().enumerate() {
                        let every = pool.config.health.interval_ms;
                        if every == 0 {
                            continue;
                        }
                        since_check[i] += 100;
                        if since_check[i] >= every {
                            since_check[i] = 0;
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
