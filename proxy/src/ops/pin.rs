//! `mcpgate pin`: the definitions each upstream pool lists, as a lock file
//! for people to review, or compared with one (`--check`, for the CI of
//! those who deploy mcpgate).
//!
//! mcpgate connects to each pool as a client, with the pool's own settings
//! and credentials (`[upstream.auth]`), in each protocol revision the server
//! speaks: 2026-07-28 (`server/discover`, then stateless listings) and
//! 2025-11-25 (`initialize`, a session, then listings; the session is ended
//! with DELETE). Every page of `tools/list` and `prompts/list` is read. A
//! server that lists different definitions to the two revisions is an
//! error: a runtime listing in either would then differ from the lock.
//!
//! Exit status: 0 written, or no drift; 1 drift (`--check`, each change
//! printed with the members that differ); 2 an error (unreachable pool,
//! unreadable lock, a server answering garbage).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use filters::pins::lock::diff;
use filters::pins::{definition, LockFile, PinKind, Pinned, PoolLock};
use filters::sse::SseParser;
use filters::RequestId;
use policies::Policy;
use serde_json::{json, Value};

use crate::ops::clock::SystemClock;
use crate::upstream::client::{is_event_stream, OwnAnswer, UpstreamClient};
use crate::upstream::pool::Pool;

const LEGACY: &str = "2025-11-25";
const MODERN: &str = "2026-07-28";
/// How long one message to a server may take.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest answer read.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;
/// Most pages read of one listing.
const MAX_PAGES: usize = 10_000;

/// Which protocol revisions to list in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum EraChoice {
    /// Every revision the server speaks.
    Auto,
    /// 2025-11-25 only.
    Legacy,
    /// 2026-07-28 only.
    Modern,
}

pub(crate) struct PinArgs {
    pub out: Option<PathBuf>,
    pub check: bool,
    pub lock: Option<PathBuf>,
    pub era: EraChoice,
}

/// Runs `mcpgate pin`; returns the exit status.
pub(crate) fn main(policy: &Policy, args: &PinArgs) -> u8 {
    let lock_path = args
        .lock
        .clone()
        .or_else(|| args.check.then(|| args.out.clone()).flatten())
        .or_else(|| policy.tools.lock_file.clone());
    if args.check && lock_path.is_none() {
        eprintln!("error: --check needs a lock file: --lock FILE, or [tools] lock_file");
        return 2;
    }
    if !args.check && args.out.is_none() {
        eprintln!("error: name the lock file to write with --out FILE (or compare with --check)");
        return 2;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let live = match rt.block_on(list_all(policy, args.era)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if args.check {
        let path = lock_path.expect("checked above");
        let lock = match crate::upstream::pins::read_lock(&path) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        };
        let changes = diff(&lock, &live);
        if changes.is_empty() {
            println!(
                "{}: every pool lists what the lock approves",
                path.display()
            );
            return 0;
        }
        println!(
            "{}: {} difference(s) from what the pools list now:",
            path.display(),
            changes.len()
        );
        for c in &changes {
            println!("{c}");
        }
        return 1;
    }
    let out = args.out.as_ref().expect("checked above");
    if let Err(e) = std::fs::write(out, live.to_json()) {
        eprintln!("error: {}: {e}", out.display());
        return 2;
    }
    println!("wrote {}", out.display());
    0
}

/// Every pool's definitions.
async fn list_all(policy: &Policy, era: EraChoice) -> Result<LockFile, String> {
    let mut lock = LockFile::default();
    for config in &policy.upstreams {
        let pool = Pool::new(config, Arc::new(SystemClock), None, None)
            .map_err(|e| format!("pool {:?}: {e}", config.name))?;
        let mut last_error = String::from("no endpoint");
        let mut listed = None;
        // The first endpoint that answers speaks for the pool.
        for ep in &pool.endpoints {
            match list_endpoint(&ep.client, era).await {
                Ok((pins, eras)) => {
                    println!(
                        "pool {:?} ({}): {} tools, {} prompts, listed in {}",
                        config.name,
                        ep.url,
                        pins.tools.len(),
                        pins.prompts.len(),
                        eras.join(" and ")
                    );
                    listed = Some(pins);
                    break;
                }
                Err(e) => last_error = format!("{}: {e}", ep.url),
            }
        }
        for ep in &pool.endpoints {
            if let Some(stdio) = ep.client.stdio() {
                stdio.shutdown();
            }
        }
        let pins = listed.ok_or_else(|| format!("pool {:?}: {last_error}", config.name))?;
        lock.pools.insert(config.name.clone(), pins);
    }
    Ok(lock)
}

/// One endpoint's definitions, in every revision asked for that it speaks.
async fn list_endpoint(
    client: &UpstreamClient,
    era: EraChoice,
) -> Result<(PoolLock, Vec<&'static str>), String> {
    let mut results: Vec<(&'static str, PoolLock)> = Vec::new();
    let mut errors = Vec::new();
    if era != EraChoice::Legacy {
        match Modern::discover(client).await {
            Ok(Some(m)) => results.push((MODERN, m.catalogue(client).await?)),
            Ok(None) => errors.push(format!("{MODERN}: not spoken")),
            Err(e) => errors.push(format!("{MODERN}: {e}")),
        }
    }
    if era != EraChoice::Modern {
        match Legacy::initialize(client).await {
            Ok(Some(l)) => {
                let listed = l.catalogue(client).await;
                l.end(client).await;
                results.push((LEGACY, listed?));
            }
            Ok(None) => errors.push(format!("{LEGACY}: not spoken")),
            Err(e) => errors.push(format!("{LEGACY}: {e}")),
        }
    }
    let Some((first_era, first)) = results.first().cloned() else {
        return Err(errors.join("; "));
    };
    for (other_era, other) in &results[1..] {
        let as_lock = |p: &PoolLock| {
            let mut l = LockFile::default();
            l.pools.insert("pool".into(), p.clone());
            l
        };
        let changes = diff(&as_lock(&first), &as_lock(other));
        if !changes.is_empty() {
            let text: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
            return Err(format!(
                "the server lists different definitions to {first_era} and {other_era} clients (a listing in one would differ from the lock):\n{}",
                text.join("\n")
            ));
        }
    }
    Ok((first, results.iter().map(|(e, _)| *e).collect()))
}

/// A JSON-RPC request and its answer's `result`.
async fn request(
    client: &UpstreamClient,
    headers: &[(&str, &str)],
    body: &Value,
) -> Result<(OwnAnswer, Option<Value>), String> {
    let id = body.get("id").and_then(RequestId::from_json);
    let answer = client
        .fetch_own(
            http::Method::POST,
            headers,
            Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
            MESSAGE_TIMEOUT,
            MAX_ANSWER_BYTES,
        )
        .await?;
    if !(200..300).contains(&answer.status) {
        return Ok((answer, None));
    }
    let Some(id) = id else {
        return Ok((answer, None));
    };
    let is_sse = is_event_stream(&answer.headers);
    let mut messages = Vec::new();
    if is_sse {
        let mut parser = SseParser::new(MAX_ANSWER_BYTES);
        parser.feed(&answer.body, |ev| messages.push(ev.data));
        parser.feed(b"\n\n", |ev| messages.push(ev.data));
    } else {
        messages.push(String::from_utf8_lossy(&answer.body).into_owned());
    }
    for m in messages {
        let Ok(v) = serde_json::from_str::<Value>(&m) else {
            continue;
        };
        if v.get("id").and_then(RequestId::from_json).as_ref() != Some(&id) {
            continue;
        }
        if let Some(e) = v.get("error") {
            return Err(format!("{} answered with an error: {e}", body["method"]));
        }
        return Ok((answer, v.get("result").cloned()));
    }
    Err(format!(
        "no answer to {} (id {id:?}) in the response",
        body["method"]
    ))
}

/// Reads every page of one kind's listing.
async fn list_kind(
    kind: PinKind,
    mut send: impl AsyncFnMut(Value) -> Result<Value, String>,
) -> Result<std::collections::BTreeMap<String, Pinned>, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut cursor: Option<String> = None;
    let mut seen_cursors = std::collections::HashSet::new();
    for _ in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        let result = send(params).await?;
        let entries = result
            .get(kind.member())
            .and_then(Value::as_array)
            .ok_or_else(|| {
                format!(
                    "{}: the result has no {:?} list",
                    kind.list_method(),
                    kind.member()
                )
            })?;
        for entry in entries {
            let (name, def) = definition(kind, entry)
                .ok_or_else(|| format!("{}: an entry without a name", kind.list_method()))?;
            if out.insert(name.to_owned(), Pinned::new(def)).is_some() {
                return Err(format!(
                    "{}: {} {name:?} is listed twice",
                    kind.list_method(),
                    kind.as_str()
                ));
            }
        }
        match result.get("nextCursor").and_then(Value::as_str) {
            None => return Ok(out),
            Some(c) => {
                if !seen_cursors.insert(c.to_owned()) {
                    return Err(format!(
                        "{}: the cursor {c:?} came back twice (a loop)",
                        kind.list_method()
                    ));
                }
                cursor = Some(c.to_owned());
            }
        }
    }
    Err(format!(
        "{}: more than {MAX_PAGES} pages",
        kind.list_method()
    ))
}

/// Which kinds a server's capabilities announce.
fn announced(capabilities: Option<&Value>) -> Vec<PinKind> {
    PinKind::ALL
        .into_iter()
        .filter(|k| capabilities.and_then(|c| c.get(k.capability())).is_some())
        .collect()
}

/// A 2026-07-28 server, as its `server/discover` described it.
struct Modern {
    kinds: Vec<PinKind>,
}

impl Modern {
    fn body(id: u64, method: &str, mut params: Value) -> Value {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "mcpgate-pin", "version": env!("CARGO_PKG_VERSION")},
        });
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    }

    async fn send(
        client: &UpstreamClient,
        id: u64,
        method: &str,
        params: Value,
    ) -> Result<(OwnAnswer, Option<Value>), String> {
        let headers = [
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", MODERN),
            ("mcp-method", method),
        ];
        request(client, &headers, &Self::body(id, method, params)).await
    }

    /// `Ok(None)` when the server does not speak 2026-07-28.
    async fn discover(client: &UpstreamClient) -> Result<Option<Self>, String> {
        let (answer, result) = Self::send(client, 1, "server/discover", json!({})).await?;
        let Some(result) = result else {
            return if answer.status == 400 || answer.status == 404 || answer.status == 405 {
                Ok(None)
            } else {
                Err(format!("server/discover got HTTP {}", answer.status))
            };
        };
        Ok(Some(Self {
            kinds: announced(result.get("capabilities")),
        }))
    }

    async fn catalogue(&self, client: &UpstreamClient) -> Result<PoolLock, String> {
        let mut pins = PoolLock::default();
        let mut id = 1;
        for &kind in &self.kinds {
            *pins.entries_mut(kind) = list_kind(kind, async |params| {
                id += 1;
                let (answer, result) = Self::send(client, id, kind.list_method(), params).await?;
                result.ok_or_else(|| format!("{} got HTTP {}", kind.list_method(), answer.status))
            })
            .await?;
        }
        Ok(pins)
    }
}

/// A 2025-11-25 session.
struct Legacy {
    session: Option<String>,
    version: String,
    kinds: Vec<PinKind>,
}

impl Legacy {
    /// `Ok(None)` when the server refuses to initialize.
    async fn initialize(client: &UpstreamClient) -> Result<Option<Self>, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": LEGACY, "capabilities": {},
            "clientInfo": {"name": "mcpgate-pin", "version": env!("CARGO_PKG_VERSION")}}});
        let headers = [
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        let (answer, result) = request(client, &headers, &body).await?;
        let Some(result) = result else {
            return if (400..500).contains(&answer.status) {
                Ok(None)
            } else {
                Err(format!("initialize got HTTP {}", answer.status))
            };
        };
        let session = answer
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(LEGACY)
            .to_owned();
        let me = Self {
            session,
            version,
            kinds: announced(result.get("capabilities")),
        };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let (answer, _) = request(client, &me.headers(), &initialized).await?;
        if !(200..300).contains(&answer.status) {
            return Err(format!(
                "notifications/initialized got HTTP {}",
                answer.status
            ));
        }
        Ok(Some(me))
    }

    fn headers(&self) -> Vec<(&str, &str)> {
        let mut h = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", self.version.as_str()),
        ];
        if let Some(s) = &self.session {
            h.push(("mcp-session-id", s.as_str()));
        }
        h
    }

    async fn catalogue(&self, client: &UpstreamClient) -> Result<PoolLock, String> {
        let mut pins = PoolLock::default();
        let mut id = 1;
        let headers = self.headers();
        for &kind in &self.kinds {
            *pins.entries_mut(kind) = list_kind(kind, async |params| {
                id += 1;
                let body = json!({"jsonrpc": "2.0", "id": id, "method": kind.list_method(), "params": params});
                let (answer, result) = request(client, &headers, &body).await?;
                result.ok_or_else(|| format!("{} got HTTP {}", kind.list_method(), answer.status))
            })
            .await?;
        }
        Ok(pins)
    }

    /// Ends the session (a server without sessions, or that keeps them,
    /// answers as it likes: nothing to do about it).
    async fn end(&self, client: &UpstreamClient) {
        if self.session.is_some() {
            let _ = client
                .fetch_own(
                    http::Method::DELETE,
                    &self.headers()[2..],
                    Bytes::new(),
                    MESSAGE_TIMEOUT,
                    64 * 1024,
                )
                .await;
        }
    }
}
