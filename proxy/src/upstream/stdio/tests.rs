use std::ffi::OsString;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::json;

use super::answer::modernize;
use super::launch::{argv, parse_launch};
use super::worker::{Worker, WorkerEvents};
use super::*;

fn spec(command: &[&str]) -> StdioSpec {
    let src = format!(
        "[upstreams.x]\ncommand = {:?}\n[upstreams.x.limits]\nmemory_mb = 64\nopen_files = 32\n",
        command
    );
    let p = policies::parse_policy("t.toml", &src).unwrap();
    match &p.upstreams[0].endpoints[0].transport {
        policies::Transport::Stdio(s) => (**s).clone(),
        _ => unreachable!(),
    }
}

#[test]
fn the_launcher_gets_the_limits_and_the_command_after_a_separator() {
    let s = spec(&["srv", "--flag", "a b"]);
    let args: Vec<String> = argv(&s, std::path::Path::new("/bin/mcpgate"))
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "/bin/mcpgate",
            "stdio-exec",
            "--memory-mb",
            "64",
            "--open-files",
            "32",
            "--",
            "srv",
            "--flag",
            "a b"
        ]
    );
    let parsed = parse_launch(&args[2..].iter().map(OsString::from).collect::<Vec<_>>()).unwrap();
    assert_eq!(parsed.limits.memory_mb, Some(64));
    assert_eq!(parsed.limits.open_files, Some(32));
    assert_eq!(parsed.limits.cpu_secs, None);
    assert_eq!(parsed.program, ["srv", "--flag", "a b"]);
    // The server's own arguments may look like the launcher's.
    let parsed = parse_launch(&["--".into(), "srv".into(), "--memory-mb".into()]).unwrap();
    assert_eq!(parsed.program, ["srv", "--memory-mb"]);
    for bad in [
        &["--memory-mb"][..],
        &["--swap", "1", "--", "x"],
        &["--"],
        &[],
    ] {
        let bad: Vec<OsString> = bad.iter().map(OsString::from).collect();
        assert!(parse_launch(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn bubblewrap_wraps_the_launcher() {
    let mut s = spec(&["srv"]);
    s.sandbox = policies::Sandbox::Bwrap {
        network: false,
        writable: vec!["/srv/data".into()],
    };
    let args: Vec<String> = argv(&s, std::path::Path::new("/bin/mcpgate"))
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
    assert!(args[0].ends_with("bwrap"));
    let joined = args.join(" ");
    assert!(joined.contains("--ro-bind / / "), "{joined}");
    assert!(
        joined.contains(
            "--unshare-all --die-with-parent --bind /srv/data /srv/data -- /bin/mcpgate stdio-exec"
        ),
        "{joined}"
    );
    assert!(!joined.contains("--share-net"));
}

#[test]
fn modern_results_gain_what_the_revision_requires() {
    let mut list = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}});
    modernize(&mut list, "tools/list");
    assert_eq!(
        list["result"],
        json!({"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private"})
    );
    let mut call =
        json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [], "resultType": "complete"}});
    modernize(&mut call, "tools/call");
    assert_eq!(
        call["result"],
        json!({"content": [], "resultType": "complete"})
    );
    let mut error = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "x"}});
    modernize(&mut error, "tools/list");
    assert!(error.get("result").is_none());
    let mut req = json!({"params": {"name": "x", "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "progressToken": 3}}});
    strip_modern_meta(&mut req);
    assert_eq!(req["params"]["_meta"], json!({"progressToken": 3}));
    let mut req = json!({"params": {"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}}});
    strip_modern_meta(&mut req);
    assert_eq!(req["params"], json!({}));
}

struct Exits(parking_lot::Mutex<Vec<String>>);

impl WorkerEvents for Exits {
    fn exited(&self, _: &Arc<Worker>, status: String) {
        self.0.lock().push(status);
    }
}

/// `cat` as a worker: it writes back every line it reads.
fn cat(shared: bool, events: &Arc<Exits>) -> Arc<Worker> {
    let child = tokio::process::Command::new("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let events: Arc<dyn WorkerEvents> = events.clone();
    // `events` shares its allocation with the caller's `Arc`: the weak
    // reference stays valid as long as the test holds that.
    let weak: Weak<dyn WorkerEvents> = Arc::downgrade(&events);
    Worker::start(
        child,
        1,
        "t",
        shared,
        1024,
        Duration::from_millis(100),
        weak,
    )
}

#[tokio::test]
async fn answers_find_their_request_with_the_clients_id_put_back() {
    let exits = Arc::new(Exits(parking_lot::Mutex::new(Vec::new())));
    let w = cat(true, &exits);
    let a = w.register(&json!("client-a"), None);
    let b = w.register(&json!("client-a"), Some(&json!("tok")));
    assert_ne!(
        a.worker_id, b.worker_id,
        "a shared worker gets ids of its own"
    );
    let token = w.worker_progress_token(&b.key).unwrap();
    assert_ne!(token, json!("tok"));
    // What `cat` echoes is what a server would write.
    w.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/progress",
        "params": {"progressToken": token, "progress": 1}}),
    )
    .await
    .unwrap();
    w.send(&json!({"jsonrpc": "2.0", "id": b.worker_id, "result": {"n": 2}}))
        .await
        .unwrap();
    w.send(&json!({"jsonrpc": "2.0", "id": a.worker_id, "result": {"n": 1}}))
        .await
        .unwrap();
    let (mut ra, mut rb) = (a.rx, b.rx);
    let progress = rb.recv().await.unwrap();
    assert_eq!(progress["params"]["progressToken"], json!("tok"));
    assert_eq!(
        rb.recv().await.unwrap(),
        json!({"jsonrpc": "2.0", "id": "client-a", "result": {"n": 2}})
    );
    assert_eq!(
        ra.recv().await.unwrap(),
        json!({"jsonrpc": "2.0", "id": "client-a", "result": {"n": 1}})
    );
    assert_eq!(w.in_flight(), 0);
    w.stop("test over");
}

#[tokio::test]
async fn garbage_stops_the_worker_and_fails_what_waits() {
    let exits = Arc::new(Exits(parking_lot::Mutex::new(Vec::new())));
    let w = cat(false, &exits);
    let mut waiting = w.register(&json!(7), None).rx;
    // Not JSON-RPC: `cat` writes it back to mcpgate.
    w.send_raw_for_test(b"this is not json\n").await;
    let failed = tokio::time::timeout(Duration::from_secs(5), waiting.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed["id"], json!(7));
    assert_eq!(failed["error"]["code"], json!(-32603));
    for _ in 0..100 {
        if !w.is_alive() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!w.is_alive() && w.was_stopped());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(exits.0.lock().len(), 1);
}
