//! `mcpgate explain`: the chain run offline on one message.
//!
//! The message phase runs as the proxy runs it (same filters, same policy),
//! as the caller `--tenant` (or the anonymous tenant), with `--subject` and
//! `--scope` standing for a verified token; a legacy request other than
//! `initialize` is judged as part of a ready session. Each filter's decision
//! is printed, then the wire answer a client would get. With `--response`,
//! a server's answer goes through the response phase too; with `--tools`,
//! the tools of a `tools/list` result are the schemas arguments are checked
//! against (and, with `[content.output_schema]`, the `outputSchema`s results
//! are held to). The answer is one message, held to `[content.limits]`
//! `max_result_bytes` as the proxy holds it. For operators trying a policy before deploying it. The head
//! phase (transport, credentials) is not run: its rules concern HTTP, not
//! the message.

use std::path::PathBuf;
use std::process::ExitCode;

use filters::tool_schema::SchemaCatalog;
use filters::{
    Chain, Era, Exchange, Identity, MessageStream, RequestId, ResponseChain, ResponseFacts,
    SessionLookup, SessionState, SessionView, StepOutcome,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use policies::{AuthMethod, Policy, TenantName};
use serde_json::Value;

/// What to explain.
pub(crate) struct ExplainArgs {
    pub message: PathBuf,
    pub response: Option<PathBuf>,
    pub tenant: Option<String>,
    pub subject: Option<String>,
    pub scopes: Vec<String>,
    pub tools: Option<PathBuf>,
}

/// The `MCP-Protocol-Version` of a legacy request: the revision a session
/// would negotiate.
const LEGACY_VERSION: &str = "2025-11-25";

/// A legacy session past its handshake, with nothing in flight.
struct ReadySession;

impl SessionView for ReadySession {
    fn state(&self) -> SessionState {
        SessionState::Ready
    }
    fn negotiated_version(&self) -> &str {
        LEGACY_VERSION
    }
    fn is_in_flight(&self, _id: &RequestId) -> bool {
        false
    }
}

/// Runs `mcpgate explain`: 0 when the message passes, 1 when refused, 2 on
/// unusable input.
pub(crate) fn explain(policy: &Policy, args: &ExplainArgs) -> ExitCode {
    match run(policy, args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn read_json(path: &PathBuf) -> Result<(Vec<u8>, Value), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((bytes, value))
}

/// The routing headers a client of the message's revision sends.
fn headers_for(message: &Value) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::new();
    let mut add = |k: &'static str, v: &str| -> Result<(), String> {
        let value = HeaderValue::from_str(v).map_err(|_| format!("{k}: not a header value"))?;
        h.insert(HeaderName::from_static(k), value);
        Ok(())
    };
    add("content-type", "application/json")?;
    add("accept", "application/json, text/event-stream")?;
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    let params = message.get("params");
    let modern = params
        .and_then(|p| p.pointer("/_meta"))
        .and_then(|m| m.get(filters::era::META_PROTOCOL_VERSION))
        .and_then(Value::as_str);
    match modern {
        Some(version) => {
            add("mcp-protocol-version", version)?;
            add("mcp-method", method)?;
            let name = match method {
                "tools/call" | "prompts/get" => params.and_then(|p| p.get("name")),
                "resources/read" => params.and_then(|p| p.get("uri")),
                _ => None,
            };
            if let Some(name) = name.and_then(Value::as_str) {
                add("mcp-name", name)?;
            }
        }
        None if method != "initialize" => add("mcp-protocol-version", LEGACY_VERSION)?,
        None => {}
    }
    Ok(h)
}

fn run(policy: &Policy, args: &ExplainArgs) -> Result<bool, String> {
    let (body, message) = read_json(&args.message)?;
    let headers = headers_for(&message)?;
    let tenant: TenantName = match (&args.tenant, &policy.auth.anonymous_tenant) {
        (Some(t), _) => {
            let known = policy.auth.tenants.iter().any(|x| &*x.name == t.as_str())
                || policy.auth.anonymous_tenant.as_deref() == Some(t.as_str());
            if !known {
                return Err(format!("no tenant named {t:?} in the policy"));
            }
            TenantName::from(t.as_str())
        }
        (None, Some(anonymous)) => anonymous.clone(),
        (None, None) => {
            return Err("the policy has no anonymous tenant: name one with --tenant".into())
        }
    };
    let listed = match &args.tools {
        None => None,
        Some(path) => {
            let (_, listing) = read_json(path)?;
            let tools = listing
                .pointer("/result/tools")
                .or_else(|| listing.get("tools"))
                .and_then(Value::as_array)
                .ok_or_else(|| format!("{}: no tools list (result.tools)", path.display()))?;
            let catalog = SchemaCatalog::new();
            catalog.learn_listing(tools);
            let declared = filters::ParamHeaderBook::new();
            declared.learn_listing(tools);
            // The `outputSchema`s results are held to, as a pool learns them.
            let outputs = SchemaCatalog::new();
            outputs.learn_output_schemas(tools);
            let names: Vec<String> = tools
                .iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect();
            Some((catalog, declared, names, outputs))
        }
    };
    // With a lock file, the pins of the tenant's pool, as a worker starts
    // with them (a first-seen pool has seen nothing yet offline).
    let pins = match &policy.tools.lock_file {
        Some(path) => {
            let lock = crate::upstream::pins::read_lock(path)?;
            Some(filters::PinBook::from_lock(
                lock.pools.get(&policy.pool_for(&tenant).name),
            ))
        }
        None => None,
    };
    let is_initialize = message.get("method").and_then(Value::as_str) == Some("initialize");
    let session = ReadySession;
    let mut ex = Exchange::new(policy, "POST", &policy.listen.path, &headers, &body);
    ex.tenant = Some(tenant.clone());
    ex.identity = Some(Identity {
        method: if args.subject.is_some() {
            AuthMethod::Jwt
        } else {
            AuthMethod::ApiKey
        },
        subject: args.subject.clone(),
        scopes: args.scopes.clone(),
    });
    if !is_initialize {
        ex.session = SessionLookup::Found(&session);
    }
    if policy.tools.validate_arguments {
        ex.tool_schemas = listed.as_ref().map(|(c, _, _, _)| c as _);
    }
    ex.param_headers = listed.as_ref().map(|(_, d, _, _)| d);
    ex.pins = pins.as_ref();
    let (steps, verdict) = Chain::standard().explain_message(&mut ex);
    println!(
        "tenant {tenant}, subject {}",
        args.subject.as_deref().unwrap_or("-")
    );
    for step in &steps {
        match &step.outcome {
            StepOutcome::Pass => println!("  {:<16} pass", step.filter),
            StepOutcome::Shadowed(hit) => {
                println!(
                    "  {:<16} shadow: would refuse ({})",
                    step.filter, hit.detail
                )
            }
            StepOutcome::Refused(r) => println!(
                "  {:<16} REFUSED: rule {}{}: {}",
                step.filter,
                r.rule,
                r.at().map(|a| format!(" at {a}")).unwrap_or_default(),
                r.detail
            ),
        }
    }
    if let Err(r) = verdict {
        let wire = r.kind.wire();
        println!("refused: HTTP {} JSON-RPC {}", wire.status, wire.code);
        println!("{}", String::from_utf8_lossy(&r.json_body()));
        return Ok(false);
    }
    let era = ex.era;
    let concealed = ex.concealed.take();
    match &concealed {
        Some(c) => println!(
            "passed, concealed: {} {:?} is hidden by {}; it goes upstream under a placeholder name, and the client gets the server's own answer for an unknown name",
            filters::access::noun(c.kind),
            c.original,
            c.rule
        ),
        None => println!("passed: forwarded upstream"),
    }
    if let Some(path) = &args.response {
        let (answer, _) = read_json(path)?;
        let method = message.get("method").and_then(Value::as_str).unwrap_or("");
        let request_id = message.get("id").and_then(RequestId::from_json);
        let target =
            filters::access::target_of(method, message.get("params").and_then(Value::as_object))
                .and_then(|t| t.name);
        let content_book = policy.content.any_enabled().then(filters::ContentBook::new);
        // `tool-shadowing` knows the tools `--tools` lists.
        if let (Some(book), Some((_, _, names, _))) = (&content_book, &listed) {
            book.saw_tools(names.iter().map(String::as_str));
        }
        let facts = ResponseFacts {
            method,
            target,
            tenant: &tenant,
            subject: args.subject.as_deref(),
            scopes: &args.scopes,
            era: if era == Era::Unknown {
                Era::Legacy
            } else {
                era
            },
            request_id: request_id.as_ref(),
            concealed: None,
            pins: pins.as_ref(),
            content_book: content_book.as_ref(),
            output_schemas: listed
                .as_ref()
                .filter(|_| policy.content.output_schema.enabled)
                .map(|(_, _, _, outputs)| outputs),
        };
        let responses = ResponseChain::standard();
        if !responses.wants(policy, &facts) && !policy.content.present {
            println!("response: not read (no response rule applies to {method})");
        } else {
            // The answer as one JSON body, through what the relay runs.
            let caps = policy.content.limits.caps_for(method, target);
            let most = filters::response::stream::MAX_MESSAGE_BYTES;
            let mut stream = MessageStream::new(false, most, request_id.clone()).with_caps(caps);
            let mut judge = |bytes: &[u8]| responses.judge(policy, &facts, bytes);
            let mut sent = Vec::new();
            stream.feed(&answer, &mut judge, &mut sent);
            stream.finish(&mut judge, &mut sent);
            let stats = &stream.stats;
            match stats.first_replaced {
                Some((_, rule, _)) => println!("response: replaced (rule {rule})"),
                None if stats.rewritten > 0 => println!("response: rewritten"),
                None => println!("response: unchanged"),
            }
            if stats.replaced + stats.rewritten > 0 {
                println!("{}", String::from_utf8_lossy(&sent));
            }
            for f in content_book.iter().flat_map(|b| b.take_events().0) {
                println!(
                    "content: {} {:?} {}: {} rule {} ({})",
                    f.kind.noun(),
                    f.name,
                    f.field,
                    f.guard,
                    f.rule,
                    f.action
                );
            }
        }
    }
    Ok(true)
}
