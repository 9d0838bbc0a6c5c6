use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::chain::{ChainFile, Rotation, GENESIS};
use super::record::{record, utc_compact, utc_rfc3339, Ending, Note, Writer};
use super::verify::verify;
use super::worker_path;

/// A directory of its own for one test, removed when the test ends (passed or not).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).unwrap();
    let dir = std::env::temp_dir().join(format!("mcpgate-audit-{name}-{}", hex::encode(nonce)));
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn rec(n: u64) -> Map<String, Value> {
    json!({"method": "tools/call", "n": n})
        .as_object()
        .unwrap()
        .clone()
}

const NO_ROTATION: Rotation = Rotation {
    bytes: 0,
    age: None,
};

fn write(path: &Path, n: u64, rotation: Rotation) {
    let (mut f, warning) = ChainFile::open(path, rotation).unwrap();
    assert!(warning.is_none());
    for i in 0..n {
        f.append(rec(i)).unwrap();
        f.flush().unwrap();
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn rotated(dir: &Path, base: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{base}."))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn records_chain_and_a_restart_continues_the_chain() {
    let dir = scratch("chain");
    let path = dir.join("audit.jsonl");
    write(&path, 3, NO_ROTATION);
    write(&path, 2, NO_ROTATION);
    let l = lines(&path);
    assert_eq!(l.len(), 5);
    let first: Value = serde_json::from_str(&l[0]).unwrap();
    assert_eq!(
        (first["seq"].as_u64(), first["prev"].as_str()),
        (Some(1), Some(GENESIS))
    );
    let v = verify(std::slice::from_ref(&path)).unwrap();
    assert_eq!(
        (v.records, v.first_seq, v.last_seq, v.broken),
        (5, Some(1), Some(5), None)
    );
}

#[test]
fn verify_names_the_first_changed_removed_or_reordered_record() {
    let dir = scratch("tamper");
    let path = dir.join("audit.jsonl");
    write(&path, 5, NO_ROTATION);
    let good = lines(&path);
    let check = |l: &[String]| {
        std::fs::write(&path, l.join("\n") + "\n").unwrap();
        verify(std::slice::from_ref(&path))
            .unwrap()
            .broken
            .map(|(_, line, what)| (line, what))
    };
    // Changed: record 2's tenant edited; seq 3 carries its old hash.
    let mut l = good.clone();
    l[1] = l[1].replace("\"n\":1", "\"n\":7");
    let (line, what) = check(&l).unwrap();
    assert_eq!(line, 2);
    assert!(what.contains("seq 2 was changed"), "{what}");
    // Removed.
    let mut l = good.clone();
    l.remove(2);
    let (line, what) = check(&l).unwrap();
    assert_eq!(line, 3);
    assert!(
        what.contains("records removed or reordered: seq 4 follows seq 2"),
        "{what}"
    );
    // Reordered.
    let mut l = good.clone();
    l.swap(1, 2);
    let (line, what) = check(&l).unwrap();
    assert_eq!(line, 2);
    assert!(what.contains("reordered"), "{what}");
    // Not a record at all.
    let mut l = good.clone();
    l[3] = "hello".into();
    assert_eq!(check(&l).unwrap().0, 4);
    // The first record removed: the chain no longer starts at genesis,
    // but a run that starts mid-chain (older files not given) is fine.
    let l = good[1..].to_vec();
    assert_eq!(check(&l), None);
    let mut l = good.clone();
    l[0] = l[0].replace(GENESIS, &"1".repeat(64));
    let (line, what) = check(&l).unwrap();
    assert_eq!(line, 1);
    assert!(what.contains("genesis"), "{what}");
    assert_eq!(check(&good), None);
}

#[test]
fn rotation_continues_the_chain_in_a_new_file() {
    let dir = scratch("rotate");
    let path = dir.join("audit.jsonl");
    write(
        &path,
        12,
        Rotation {
            bytes: 200,
            age: None,
        },
    );
    // The last flush rotated: the current file is empty, and a restart
    // takes the chain up from the newest rotated file.
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    write(
        &path,
        3,
        Rotation {
            bytes: 200,
            age: None,
        },
    );
    let mut files = rotated(&dir, "audit.jsonl");
    assert!(files.len() >= 2, "{files:?}");
    files.push(path.clone());
    let v = verify(&files).unwrap();
    assert_eq!((v.records, v.last_seq, v.broken), (15, Some(15), None));
    // A rotated file left out is records removed.
    let mut gap = files.clone();
    gap.remove(1);
    let (file, _, what) = verify(&gap).unwrap().broken.unwrap();
    assert_eq!(file, files[2]);
    assert!(what.contains("records removed"), "{what}");
    // By age.
    let aged = dir.join("aged.jsonl");
    let (mut f, _) = ChainFile::open(
        &aged,
        Rotation {
            bytes: 0,
            age: Some(Duration::from_millis(30)),
        },
    )
    .unwrap();
    f.append(rec(1)).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    f.append(rec(2)).unwrap();
    f.flush().unwrap();
    let mut files = rotated(&dir, "aged.jsonl");
    assert_eq!(files.len(), 1);
    files.push(aged);
    assert_eq!(verify(&files).unwrap().records, 2);
}

#[test]
fn a_torn_last_line_is_cut_and_the_chain_resumes_before_it() {
    let dir = scratch("torn");
    let path = dir.join("audit.jsonl");
    write(&path, 2, NO_ROTATION);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"seq\":3,\"pre");
    std::fs::write(&path, &bytes).unwrap();
    let (mut f, warning) = ChainFile::open(&path, NO_ROTATION).unwrap();
    assert!(warning.unwrap().contains("13 bytes"));
    f.append(rec(3)).unwrap();
    f.flush().unwrap();
    drop(f);
    let v = verify(&[path]).unwrap();
    assert_eq!((v.records, v.broken), (3, None));
}

#[test]
fn a_file_holding_only_a_torn_record_resumes_from_the_rotated_one() {
    let dir = scratch("alltorn");
    let path = dir.join("audit.jsonl");
    let rotation = Rotation {
        bytes: 100,
        age: None,
    };
    write(&path, 2, rotation);
    // The last flush rotated; then a crash tore the first write.
    std::fs::write(&path, b"{\"seq\":3,\"pr").unwrap();
    let (mut f, warning) = ChainFile::open(&path, NO_ROTATION).unwrap();
    assert!(warning.is_some());
    assert_eq!(f.head().seq, 2);
    f.append(rec(3)).unwrap();
    f.flush().unwrap();
    let mut files = rotated(&dir, "audit.jsonl");
    files.push(path);
    let v = verify(&files).unwrap();
    assert_eq!((v.records, v.broken), (3, None));
}

#[test]
fn a_record_says_who_what_and_how_it_ended() {
    let by = Writer {
        instance: "ab12",
        worker: 1,
        argument_values: false,
    };
    let note = Note {
        tenant: Some("acme".into()),
        subject: Some("alice".into()),
        session: Some("sealed-session-id".into()),
        method: Some("tools/call".into()),
        target: Some("echo".into()),
        request_id: Some(filters::RequestId::Number(7.into())),
        arguments_sha256: Some(super::record::arguments_digest(&json!({"text": "hi"}))),
        arguments: Some(json!({"text": "hi"})),
        ending: Some(Ending::ToolError),
        ..Note::default()
    };
    let now = UNIX_EPOCH + Duration::from_millis(1_790_000_000_123);
    let r = record(
        &note,
        &by,
        "POST",
        Some(200),
        Duration::from_micros(2500),
        now,
    );
    assert_eq!(r["time"], "2026-09-21T14:13:20.123Z");
    assert_eq!(
        (
            &r["decision"],
            &r["outcome"],
            &r["tool"],
            &r["id"],
            &r["duration_ms"]
        ),
        (
            &json!("admitted"),
            &json!("tool-error"),
            &json!("echo"),
            &json!(7),
            &json!(2.5)
        )
    );
    assert_eq!(r["session"].as_str().unwrap().len(), 16);
    assert_eq!(r["args_sha256"].as_str().unwrap().len(), 64);
    assert!(
        r.get("arguments").is_none(),
        "values only when policy says so"
    );
    let with_values = Writer {
        argument_values: true,
        ..by
    };
    let r = record(&note, &with_values, "POST", Some(200), Duration::ZERO, now);
    assert_eq!(r["arguments"], json!({"text": "hi"}));
    // A refusal names its rule and code.
    let refused = Note {
        refusal: Some(("RateLimited".into(), "ratelimit", "tenant-rate", -32029)),
        ..Note::default()
    };
    let r = record(&refused, &by, "POST", Some(429), Duration::ZERO, now);
    assert_eq!(
        (&r["decision"], &r["rule"], &r["code"], &r["method"]),
        (
            &json!("refused"),
            &json!("tenant-rate"),
            &json!(-32029),
            &json!("POST")
        )
    );
    assert_eq!(utc_rfc3339(now), "2026-09-21T14:13:20.123Z");
    assert_eq!(utc_compact(now), "20260921T141320.123000Z");
}

#[test]
fn each_worker_writes_its_own_file() {
    let p = Path::new("/var/log/mcpgate/audit.jsonl");
    assert_eq!(worker_path(p, 0, 1), p);
    assert_eq!(
        worker_path(p, 2, 4),
        Path::new("/var/log/mcpgate/audit-w2.jsonl")
    );
    assert_eq!(worker_path(Path::new("trail"), 1, 2), Path::new("trail-w1"));
}
