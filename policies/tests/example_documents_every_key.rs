//! `config.example.toml` documents every key the loader accepts, and only
//! those, and is itself a valid policy.
//!
//! The accepted keys come from the loader's own list
//! ([`policies::accepted_keys`], what its unknown-key check reads). In the
//! example a key counts as documented when it is set (`key = ...`) or shown
//! commented out (`# key = ...`) under its table's header, itself set or
//! commented out (`# [tenants.demo.paths]`). A header names every table on
//! its path (`[upstream.health]` documents `upstream` and its key `health`);
//! a name the file chooses (a tenant, a pool, a tool, a quoted
//! `"tools/call:GLOB"` rule) documents `*`.

use std::collections::BTreeSet;
use std::path::Path;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.example.toml");

/// `table.key` as written in errors (root keys without a dot).
fn dotted(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    }
}

/// The (table pattern, key) that `key` in table `table` stands for, `None`
/// when the loader does not accept it there.
fn accepted(table: &str, key: &str) -> Option<(String, String)> {
    let keys: Vec<&str> = policies::accepted_keys()
        .filter(|(t, _)| *t == table)
        .map(|(_, k)| k)
        .collect();
    let key = if keys.contains(&key) {
        key
    } else if keys.contains(&"*") {
        "*"
    } else {
        return None;
    };
    Some((table.to_string(), key.to_string()))
}

/// A bare key: letters, digits, `_` and `-`.
fn is_bare_key(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Every (table pattern, key) the example documents; panics on a header or
/// key the loader would refuse.
fn documented(src: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut table = String::new();
    for (n, raw) in src.lines().enumerate() {
        let at = || format!("config.example.toml:{}: {raw}", n + 1);
        let line = raw.trim();
        let line = line.strip_prefix('#').map_or(line, str::trim);
        // `[table]`, or `[[array.of.tables]]`.
        let header = line
            .strip_prefix("[[")
            .and_then(|l| l.strip_suffix("]]"))
            .or_else(|| line.strip_prefix('[').and_then(|l| l.strip_suffix(']')));
        if let Some(header) = header {
            let path: Vec<&str> = header.split('.').collect();
            if !path.iter().all(|k| is_bare_key(k)) {
                continue; // prose in brackets
            }
            for i in 0..path.len() {
                let parent = policies::table_pattern(&path[..i])
                    .unwrap_or_else(|| panic!("{}: not a table the loader reads", at()));
                let pair = accepted(&parent, path[i])
                    .unwrap_or_else(|| panic!("{}: the loader refuses this table", at()));
                out.insert(pair);
            }
            table = policies::table_pattern(&path)
                .unwrap_or_else(|| panic!("{}: not a table the loader reads", at()));
        } else if let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            // A quoted key (`"tools/call:delete_*" = [...]`) names a rule in
            // a table of chosen names; elsewhere it is prose (`"host:port" = ...`).
            let quoted = key.len() > 2
                && key.starts_with('"')
                && key.ends_with('"')
                && accepted(&table, "*").is_some();
            if is_bare_key(key) || quoted {
                let pair = accepted(&table, key).unwrap_or_else(|| {
                    panic!(
                        "{}: `{}` is not a key the loader accepts",
                        at(),
                        dotted(&table, key)
                    )
                });
                out.insert(pair);
            }
        }
    }
    out
}

#[test]
fn the_example_is_a_valid_policy() {
    policies::parse_policy_file(Path::new(EXAMPLE)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_example_documents_every_accepted_key() {
    let src = std::fs::read_to_string(EXAMPLE).unwrap();
    let documented = documented(&src);
    let missing: Vec<String> = policies::accepted_keys()
        .filter(|(t, k)| !documented.contains(&(t.to_string(), k.to_string())))
        .map(|(t, k)| dotted(t, k))
        .collect();
    assert!(
        missing.is_empty(),
        "config.example.toml does not document: {}",
        missing.join(", ")
    );
}

#[test]
fn an_undocumented_key_is_noticed() {
    let src = std::fs::read_to_string(EXAMPLE).unwrap();
    let without = src.replace("grace_secs = 30", "");
    assert!(!documented(&without).contains(&("shutdown".into(), "grace_secs".into())));
    let commented = src.replace("grace_secs = 30", "# grace_secs = 30");
    assert!(documented(&commented).contains(&("shutdown".into(), "grace_secs".into())));
}
