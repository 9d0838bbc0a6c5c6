//! Holding many open MCP streams: legacy `GET` streams (after the
//! `initialize` handshake) and modern `subscriptions/listen` streams.
//!
//! A holder is driven over stdin by the `connections-100k` scenario, one
//! command a line: `open N` opens N more streams and answers one JSON line
//! ([`HoldStatus`]) on stdout; `status` answers without opening; `quit` (or
//! end of input) closes everything. Each held stream costs the holder one
//! descriptor and a few hundred bytes; a process holds at most what its
//! descriptor limit allows, so the scenario starts several holders.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, Semaphore};

use super::client::{with_timeout, Conn};
use super::mcp::{self, Target};
use super::EraMix;

/// What a holder was asked to hold.
#[derive(Debug, Clone)]
pub struct HoldConfig {
    pub addr: SocketAddr,
    pub target: Target,
    pub eras: EraMix,
    /// Loopback source addresses, used in turn.
    pub source_ips: Vec<IpAddr>,
    /// Streams being set up at once.
    pub parallel: usize,
    pub timeout: Duration,
}

/// A holder's answer to a command.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HoldStatus {
    /// Streams open now.
    pub open_count: u64,
    /// Stream setups that failed since the start.
    pub failed_count: u64,
    /// Streams that were open and then ended by the peer or an error.
    pub ended_count: u64,
    /// Time the last `open` command took.
    pub last_open_ms: u64,
    /// Failures by cause.
    pub errors: BTreeMap<String, u64>,
}

struct State {
    cfg: HoldConfig,
    opened: AtomicU64,
    open: AtomicU64,
    failed: AtomicU64,
    ended: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

/// Opens held stream number `n` (its era by `cfg.eras` and `n`): the
/// connection, its response head read, the stream's events to come.
pub async fn open_one(cfg: &HoldConfig, n: u64) -> Result<Conn, String> {
    let source =
        (!cfg.source_ips.is_empty()).then(|| cfg.source_ips[(n as usize) % cfg.source_ips.len()]);
    let mut conn = with_timeout(cfg.timeout, Conn::connect(cfg.addr, source))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let era = match cfg.eras {
        EraMix::Legacy => mcp::Era::Legacy,
        EraMix::Modern => mcp::Era::Modern,
        EraMix::Mixed if n.is_multiple_of(2) => mcp::Era::Legacy,
        EraMix::Mixed => mcp::Era::Modern,
    };
    let request = match era {
        mcp::Era::Modern => mcp::modern_listen(&cfg.target, n),
        mcp::Era::Legacy => {
            let r = with_timeout(cfg.timeout, conn.request(&mcp::initialize(&cfg.target)))
                .await
                .map_err(|e| format!("initialize: {e}"))?;
            let Some(sid) = r.session_id.filter(|_| r.status == 200) else {
                return Err(format!("initialize: status {}", r.status));
            };
            let r = with_timeout(
                cfg.timeout,
                conn.request(&mcp::initialized(&cfg.target, &sid)),
            )
            .await
            .map_err(|e| format!("initialized: {e}"))?;
            if r.status != 202 {
                return Err(format!("initialized: status {}", r.status));
            }
            mcp::legacy_get_stream(&cfg.target, &sid)
        }
    };
    let r = with_timeout(cfg.timeout, conn.open_stream(&request))
        .await
        .map_err(|e| format!("{} stream: {e}", era.name()))?;
    if r.status != 200 || !r.sse {
        return Err(format!("{} stream: status {}", era.name(), r.status));
    }
    Ok(conn)
}

/// An `open` command gives up after this many failed setups (or 1 % of
/// what it was asked, if more): past the server's limit every further attempt
/// would only wait for its timeout.
const GIVE_UP_AFTER_FAILURES: u64 = 100;

async fn open_many(st: &Arc<State>, count: u64) {
    let sem = Arc::new(Semaphore::new(st.cfg.parallel.max(1)));
    let mut tasks = Vec::with_capacity(count as usize);
    let failed_before = st.failed.load(Ordering::Relaxed);
    let give_up = GIVE_UP_AFTER_FAILURES.max(count / 100);
    for _ in 0..count {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        if st.failed.load(Ordering::Relaxed) - failed_before >= give_up {
            *st.errors
                .lock()
                .await
                .entry("open command given up after too many failures".into())
                .or_default() += 1;
            break;
        }
        let st = st.clone();
        let n = st.opened.fetch_add(1, Ordering::Relaxed);
        tasks.push(tokio::spawn(async move {
            let result = open_one(&st.cfg, n).await;
            drop(permit);
            match result {
                Ok(mut conn) => {
                    st.open.fetch_add(1, Ordering::Relaxed);
                    // Hold it: read (and drop) whatever the server sends.
                    tokio::spawn(async move {
                        let r = conn.drain(256).await;
                        st.open.fetch_sub(1, Ordering::Relaxed);
                        st.ended.fetch_add(1, Ordering::Relaxed);
                        let why = match r {
                            Ok(_) => "held stream closed by peer".to_owned(),
                            Err(e) => format!("held stream: {}", e.kind()),
                        };
                        *st.errors.lock().await.entry(why).or_default() += 1;
                    });
                }
                Err(e) => {
                    st.failed.fetch_add(1, Ordering::Relaxed);
                    *st.errors.lock().await.entry(e).or_default() += 1;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn status(st: &State, last_open: Duration) -> HoldStatus {
    HoldStatus {
        open_count: st.open.load(Ordering::Relaxed),
        failed_count: st.failed.load(Ordering::Relaxed),
        ended_count: st.ended.load(Ordering::Relaxed),
        last_open_ms: last_open.as_millis() as u64,
        errors: st.errors.lock().await.clone(),
    }
}

/// Serves holder commands from stdin until `quit` or end of input.
pub async fn serve_commands(cfg: HoldConfig) -> std::io::Result<()> {
    let st = Arc::new(State {
        cfg,
        opened: AtomicU64::new(0),
        open: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        ended: AtomicU64::new(0),
        errors: Mutex::new(BTreeMap::new()),
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    let mut last = Duration::ZERO;
    while let Some(line) = lines.next_line().await? {
        let mut words = line.split_whitespace();
        match (
            words.next(),
            words.next().and_then(|n| n.parse::<u64>().ok()),
        ) {
            (Some("open"), Some(n)) => {
                let t = Instant::now();
                open_many(&st, n).await;
                last = t.elapsed();
            }
            (Some("status"), _) => {}
            (Some("quit"), _) => break,
            _ => {
                eprintln!("holder: unknown command {line:?}");
                continue;
            }
        }
        let s = status(&st, last).await;
        let mut text = serde_json::to_string(&s).unwrap_or_else(|_| "{}".into());
        text.push('\n');
        out.write_all(text.as_bytes()).await?;
        out.flush().await?;
    }
    Ok(())
}
