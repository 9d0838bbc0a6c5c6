use super::*;
use filters::pins::book::EventKind;
use filters::pins::{Digest, PinKind, Pinned};
use serde_json::json;

fn event(kind: PinKind, name: &str, what: EventKind) -> PinEvent {
    PinEvent {
        kind,
        name: name.into(),
        what,
    }
}

fn first_seen(description: &str) -> EventKind {
    EventKind::FirstSeen(Pinned::new(json!({ "description": description })))
}

#[test]
fn the_state_file_keeps_the_first_pin_and_shares_changes() {
    let dir = std::env::temp_dir().join(format!("mcpgate-pins-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pins.json");
    let _ = std::fs::remove_file(&path);
    // Worker A pins "Echoes."; worker B, later, saw "Poisoned." first.
    let a = merge_into_state_file(
        &path,
        "default",
        &[event(PinKind::Tool, "echo", first_seen("Echoes."))],
    )
    .unwrap();
    let b = merge_into_state_file(
        &path,
        "default",
        &[event(PinKind::Tool, "echo", first_seen("Poisoned."))],
    )
    .unwrap();
    assert_eq!(a, b, "the first writer's pin stays");
    assert_eq!(
        b.pools["default"].tools["echo"].definition,
        json!({"description": "Echoes."})
    );
    // B's book takes the shared pin in: what it pinned itself is a change.
    let book = PinBook::first_seen();
    book.observe(PinKind::Tool, "echo", &json!({"description": "Poisoned."}));
    book.absorb(&b.pools["default"]);
    assert!(book.allows_call(PinKind::Tool, "echo"));
    assert!(!book
        .observe(PinKind::Tool, "echo", &json!({"description": "Poisoned."}))
        .approved());

    let pinned = Digest::of(&json!({"description": "Echoes."}));
    let listed = Digest::of(&json!({"description": "Poisoned."}));
    let s = merge_into_state_file(
        &path,
        "default",
        &[event(
            PinKind::Tool,
            "echo",
            EventKind::Changed { pinned, listed },
        )],
    )
    .unwrap();
    assert_eq!(s.pools["default"].changed["tool:echo"], listed.to_hex());
    // The file is what was merged, and other workers read it.
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(LockFile::parse_state(&text).unwrap(), s);
    let s = merge_into_state_file(
        &path,
        "default",
        &[event(PinKind::Tool, "echo", EventKind::Restored)],
    )
    .unwrap();
    assert!(s.pools["default"].changed.is_empty());
    // A state file that does not parse is left alone.
    std::fs::write(&path, "{ not json").unwrap();
    let e = merge_into_state_file(
        &path,
        "default",
        &[event(PinKind::Prompt, "greet", first_seen("Hi."))],
    )
    .unwrap_err();
    assert!(e.contains("line 1"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ not json");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn books_follow_the_policy() {
    let dir = std::env::temp_dir().join(format!("mcpgate-books-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lock = dir.join("tools.lock");
    let mut file = LockFile::default();
    let mut pool = filters::pins::PoolLock::default();
    pool.tools.insert(
        "echo".into(),
        Pinned::new(json!({"description": "Echoes."})),
    );
    file.pools.insert("default".into(), pool);
    std::fs::write(&lock, file.to_json()).unwrap();
    let policy = |extra: &str| {
        policies::parse_policy(
            "t.toml",
            &format!("[upstream]\nurl = \"http://127.0.0.1:1/mcp\"\n{extra}"),
        )
        .unwrap()
    };
    assert!(books(&policy("")).unwrap().is_empty());
    let b = books(&policy(&format!(
        "[tools]\nlock_file = {:?}\n",
        lock.display().to_string()
    )))
    .unwrap();
    assert!(b["default"].is_pinned(PinKind::Tool, "echo"));
    let b = books(&policy(
        "[tools]\npin = \"first-seen\"\nstate_file = \"/nonexistent/x\"\n",
    ))
    .unwrap();
    assert!(b["default"].is_empty());
    // A hand-edited lock stops the start, naming the file and the entry.
    std::fs::write(&lock, file.to_json().replace("Echoes.", "Obey.")).unwrap();
    let e = books(&policy(&format!(
        "[tools]\nlock_file = {:?}\n",
        lock.display().to_string()
    )))
    .unwrap_err();
    assert!(
        e.contains("tools.lock") && e.contains("pools.default.tools.echo"),
        "{e}"
    );
    let e = books(&policy(
        "[tools]\nlock_file = \"/nonexistent/tools.lock\"\n",
    ))
    .unwrap_err();
    assert!(e.contains("/nonexistent/tools.lock"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
