//! `[upstream]` and `[upstreams.NAME]`: named pools of upstream endpoints
//! with their timeouts, health checks and circuit breakers.
//!
//! `[upstream]` is shorthand for one pool named `default`; both forms take the
//! same keys. Endpoints are HTTP(S) URLs today; `Transport` leaves room for
//! stdio worker processes. `[upstream.auth]`, the pool's own credential, is
//! read by `upstream_auth`.

use std::collections::BTreeMap;

use toml_edit::TableLike;

use super::stdio::{read_stdio, StdioSpec};
use super::upstream_auth::{read_upstream_auth, UpstreamCredential};
use crate::reader::{join, Reader};

/// Name of the pool `[upstream]` defines.
pub const DEFAULT_POOL: &str = "default";

/// How mcpgate reaches one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Streamable HTTP at a URL.
    Http {
        tls: bool,
        host: String,
        port: u16,
        path: String,
    },
    /// Worker processes mcpgate spawns, speaking MCP over stdio.
    Stdio(Box<StdioSpec>),
}

/// One upstream MCP server process.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URL as written.
    pub url: String,
    pub transport: Transport,
}

/// Deadlines for one upstream request, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connect.
    pub connect_ms: u64,
    /// From request sent to response head received.
    pub first_byte_ms: u64,
    /// Whole request; each progress notification restarts it...
    pub request_ms: u64,
    /// ...up to this hard maximum from the start.
    pub max_request_ms: u64,
}

/// Active and passive health checking of endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    /// Period of the active TCP connect check; 0 turns it off.
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive failures (active or passive) that mark an endpoint unhealthy.
    pub unhealthy_after: u32,
    /// Consecutive active successes that mark it healthy again.
    pub healthy_after: u32,
}

/// Circuit breaker settings, per endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker (0: off).
    pub consecutive_failures: u32,
    /// Failure ratio over `window_ms` that opens it (0.0: off)...
    pub failure_rate: f64,
    pub window_ms: u64,
    /// ...once the window holds at least this many requests.
    pub min_requests: u32,
    /// Time open before probing.
    pub cooldown_ms: u64,
    /// Probes let through while half-open.
    pub half_open_probes: u32,
    /// Count JSON-RPC -32603 answers as failures.
    pub count_internal_errors: bool,
}

/// A named pool of endpoints.
#[derive(Debug, Clone)]
pub struct UpstreamPool {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    /// Idle keep-alive connections kept per endpoint.
    pub pool_size: usize,
    pub pool_idle_secs: u64,
    /// Speak HTTP/2 to the endpoints (h2c with prior knowledge over
    /// `http://`, ALPN `h2` over `https://`), multiplexing requests and
    /// long-lived streams over few connections.
    pub http2: bool,
    /// Concurrent streams per HTTP/2 connection before another is opened.
    pub http2_max_streams: usize,
    pub timeouts: Timeouts,
    /// Per-tool overrides of `request_ms`/`first_byte_ms`/`max_request_ms`.
    pub tool_timeouts: BTreeMap<String, Timeouts>,
    pub health: HealthCheck,
    pub breaker: BreakerPolicy,
    /// How mcpgate authenticates itself to the endpoints (`[upstream.auth]`);
    /// `None`: no credential. The client's own never goes upstream.
    pub auth: Option<UpstreamCredential>,
}

impl UpstreamPool {
    /// The deadlines of a request, `tool` being the `tools/call` name if any.
    pub fn timeouts_for(&self, tool: Option<&str>) -> Timeouts {
        tool.and_then(|t| self.tool_timeouts.get(t))
            .copied()
            .unwrap_or(self.timeouts)
    }
}

/// Reads `[upstream]` and every `[upstreams.NAME]`; at least one is required.
pub(crate) fn read_upstreams(
    r: &mut Reader,
    shorthand: Option<&dyn TableLike>,
    named: Option<&dyn TableLike>,
) -> Vec<UpstreamPool> {
    let mut pools = Vec::new();
    if let Some(t) = shorthand {
        pools.extend(read_pool(r, t, "upstream", DEFAULT_POOL));
    }
    if let Some(named) = named {
        for (name, _) in named.iter() {
            let path = join("upstreams", name);
            if name == DEFAULT_POOL && shorthand.is_some() {
                r.error(
                    named.get_key_value(name).and_then(|(k, _)| k.span()),
                    &path,
                    "`default` is already defined by [upstream]",
                );
                continue;
            }
            if let Some(t) = r.table(named, name, "upstreams") {
                pools.extend(read_pool(r, t, &path, name));
            }
        }
    }
    if shorthand.is_none() && named.is_none() {
        r.error(
            None,
            "upstream",
            "missing required table [upstream] (or [upstreams.NAME])",
        );
    } else if pools.is_empty() && named.is_some_and(|n| n.is_empty()) {
        r.error(None, "upstreams", "defines no pool");
    }
    pools
}

/// Reads one pool; `[upstreams.NAME]` takes exactly the keys of `[upstream]`
/// (schema table `upstream`, sub-tables `upstream.*`).
fn read_pool(r: &mut Reader, t: &dyn TableLike, path: &str, name: &str) -> Option<UpstreamPool> {
    r.deny_unknown(t, path, "upstream");
    let mut urls = Vec::new();
    if let Some(url) = r.opt_string(t, "url", path) {
        urls.push((url, Reader::span_of(t, "url")));
    }
    if let Some(list) = r.strings(t, "endpoints", path) {
        urls.extend(list);
    }
    if t.get("url").is_some() && t.get("endpoints").is_some() {
        r.error(
            Reader::span_of(t, "endpoints"),
            &join(path, "endpoints"),
            "give `url` or `endpoints`, not both",
        );
    }
    let stdio = read_stdio(r, t, path);
    if stdio.is_some() && (t.get("url").is_some() || t.get("endpoints").is_some()) {
        r.error(
            Reader::span_of(t, "command"),
            &join(path, "command"),
            "give `command` (a stdio server) or `url`/`endpoints`, not both",
        );
    }
    if t.get("url").is_none() && t.get("endpoints").is_none() && stdio.is_none() {
        r.error(
            t.get_key_value("url").and_then(|(k, _)| k.span()),
            &join(path, "url"),
            "missing required key (`url`, `endpoints` or `command`)",
        );
    }
    let mut endpoints = Vec::new();
    if let Some(spec) = stdio {
        endpoints.push(Endpoint {
            url: spec.display(),
            transport: Transport::Stdio(Box::new(spec)),
        });
    }
    for (url, span) in urls {
        match parse_http_url(&url) {
            Ok(transport) => endpoints.push(Endpoint { url, transport }),
            Err(why) => r.error(span, &join(path, "url"), why),
        }
    }
    let timeouts = read_timeouts(r, t, path, None);
    let tool_timeouts = read_tool_timeouts(r, t, path, timeouts);
    let pool = UpstreamPool {
        name: name.to_string(),
        pool_size: r.integer(t, "pool_size", path, 128, 1..=65_536) as usize,
        pool_idle_secs: r.integer(t, "pool_idle_secs", path, 60, 0..=3_600) as u64,
        http2: r.boolean(t, "http2", path, false),
        http2_max_streams: r.integer(t, "http2_max_streams", path, 1000, 1..=100_000) as usize,
        timeouts,
        tool_timeouts,
        health: read_health(r, t, path),
        breaker: read_breaker(r, t, path),
        auth: read_upstream_auth(r, t, path),
        endpoints,
    };
    (!pool.endpoints.is_empty()).then_some(pool)
}

fn read_timeouts(
    r: &mut Reader,
    t: &dyn TableLike,
    path: &str,
    base: Option<Timeouts>,
) -> Timeouts {
    let b = base.unwrap_or(Timeouts {
        connect_ms: 2_000,
        first_byte_ms: 30_000,
        request_ms: 60_000,
        max_request_ms: 600_000,
    });
    let ms = 1..=86_400_000;
    let out = Timeouts {
        connect_ms: if base.is_none() {
            r.integer(
                t,
                "connect_timeout_ms",
                path,
                b.connect_ms as i64,
                ms.clone(),
            ) as u64
        } else {
            b.connect_ms
        },
        first_byte_ms: r.integer(
            t,
            "first_byte_timeout_ms",
            path,
            b.first_byte_ms as i64,
            ms.clone(),
        ) as u64,
        request_ms: r.integer(
            t,
            "request_timeout_ms",
            path,
            b.request_ms as i64,
            ms.clone(),
        ) as u64,
        max_request_ms: r.integer(t, "max_request_ms", path, b.max_request_ms as i64, ms) as u64,
    };
    if out.max_request_ms < out.request_ms {
        r.error(
            Reader::span_of(t, "max_request_ms"),
            &join(path, "max_request_ms"),
            "must be at least request_timeout_ms",
        );
    }
    out
}

fn read_tool_timeouts(
    r: &mut Reader,
    t: &dyn TableLike,
    path: &str,
    base: Timeouts,
) -> BTreeMap<String, Timeouts> {
    let mut out = BTreeMap::new();
    let tools_path = join(path, "tools");
    let Some(tools) = r.table(t, "tools", path) else {
        return out;
    };
    for (tool, _) in tools.iter() {
        let tp = join(&tools_path, tool);
        if let Some(tt) = r.table(tools, tool, &tools_path) {
            r.deny_unknown(tt, &tp, "upstream.tools.*");
            out.insert(tool.to_string(), read_timeouts(r, tt, &tp, Some(base)));
        }
    }
    out
}

fn read_health(r: &mut Reader, t: &dyn TableLike, path: &str) -> HealthCheck {
    let p = join(path, "health");
    let empty = toml_edit::Table::new();
    let h = r.table(t, "health", path).unwrap_or(&empty);
    r.deny_unknown(h, &p, "upstream.health");
    HealthCheck {
        interval_ms: r.integer(h, "interval_ms", &p, 2_000, 0..=3_600_000) as u64,
        timeout_ms: r.integer(h, "timeout_ms", &p, 1_000, 1..=60_000) as u64,
        unhealthy_after: r.integer(h, "unhealthy_after", &p, 3, 1..=1_000) as u32,
        healthy_after: r.integer(h, "healthy_after", &p, 1, 1..=1_000) as u32,
    }
}

fn read_breaker(r: &mut Reader, t: &dyn TableLike, path: &str) -> BreakerPolicy {
    let p = join(path, "breaker");
    let empty = toml_edit::Table::new();
    let b = r.table(t, "breaker", path).unwrap_or(&empty);
    r.deny_unknown(b, &p, "upstream.breaker");
    BreakerPolicy {
        consecutive_failures: r.integer(b, "consecutive_failures", &p, 5, 0..=1_000_000) as u32,
        failure_rate: r.integer(b, "failure_rate_percent", &p, 50, 0..=100) as f64 / 100.0,
        window_ms: r.integer(b, "window_ms", &p, 10_000, 100..=3_600_000) as u64,
        min_requests: r.integer(b, "min_requests", &p, 20, 1..=1_000_000) as u32,
        cooldown_ms: r.integer(b, "cooldown_ms", &p, 5_000, 1..=3_600_000) as u64,
        half_open_probes: r.integer(b, "half_open_probes", &p, 1, 1..=1_000) as u32,
        count_internal_errors: r.boolean(b, "count_internal_errors", &p, false),
    }
}

/// Splits an `http(s)://host:port/path` URL.
pub(crate) fn parse_http_url(url: &str) -> Result<Transport, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("`{url}`: scheme must be http or https")),
    };
    let host = uri.host().ok_or_else(|| format!("`{url}` has no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let path = match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("") => "/".to_string(),
        Some(p) => p.to_string(),
    };
    Ok(Transport::Http {
        tls,
        host,
        port,
        path,
    })
}
