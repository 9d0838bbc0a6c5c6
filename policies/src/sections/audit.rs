//! `[audit]`: the audit trail, one JSON line per request's decision.
//!
//! Each worker appends to its own file (`path`, with `-wN` before the
//! extension when there are several workers), each record carrying the
//! SHA-256 of the one before, so `mcpgate audit verify` finds the first
//! record that was changed, removed or reordered. Writing never blocks a
//! request unless `on_full = "block"`: a bounded queue per worker, records
//! over it dropped and counted. Off when the table is absent.

use std::path::PathBuf;

use toml_edit::TableLike;

use crate::reader::{join, Reader};

/// What a request does when its worker's audit queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFull {
    /// The record is dropped and counted; the request goes on.
    #[default]
    Drop,
    /// The request waits for room in the queue.
    Block,
}

/// What a record says of a `tools/call`'s arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditArguments {
    /// Their SHA-256 (of the JSON as sent), so a call can be matched to a
    /// known input without the trail holding it.
    #[default]
    Digest,
    /// The arguments themselves, and the digest.
    Values,
}

/// The compiled `[audit]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPolicy {
    /// The trail's file (each worker's, see the module doc).
    pub path: PathBuf,
    pub on_full: OnFull,
    /// Records each worker's queue holds.
    pub queue: usize,
    /// A file over this many bytes is rotated (0: never by size).
    pub rotate_bytes: u64,
    /// A file older than this is rotated (0: never by age).
    pub rotate_secs: u64,
    pub arguments: AuditArguments,
}

const ON_FULL: [(&str, OnFull); 2] = [("drop", OnFull::Drop), ("block", OnFull::Block)];
const ARGUMENTS: [(&str, AuditArguments); 2] = [
    ("digest", AuditArguments::Digest),
    ("values", AuditArguments::Values),
];

/// Reads `[audit]` (`None` when absent; `path` is required).
pub(crate) fn read_audit(r: &mut Reader, t: Option<&dyn TableLike>) -> Option<AuditPolicy> {
    const P: &str = "audit";
    let t = t?;
    r.deny_unknown(t, P, P);
    let path = r.opt_string(t, "path", P);
    if path.as_deref().is_none_or(str::is_empty) && t.get("path").is_none() {
        r.error(None, &join(P, "path"), "required: the audit trail's file");
    }
    let policy = AuditPolicy {
        path: PathBuf::from(path.clone().unwrap_or_default()),
        on_full: r.choice(t, "on_full", P, "drop", &ON_FULL),
        queue: r.integer(t, "queue", P, 8192, 1..=1 << 20) as usize,
        rotate_bytes: r.integer(t, "rotate_bytes", P, 100 << 20, 0..=1 << 40) as u64,
        rotate_secs: r.integer(t, "rotate_secs", P, 0, 0..=366 * 86_400) as u64,
        arguments: r.choice(t, "arguments", P, "digest", &ARGUMENTS),
    };
    if path.as_deref() == Some("") {
        r.error(
            Reader::span_of(t, "path"),
            &join(P, "path"),
            "must name a file",
        );
    }
    path.filter(|p| !p.is_empty()).map(|_| policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{error_at, ok};

    fn settings(a: &AuditPolicy) -> (OnFull, usize, u64, u64, AuditArguments) {
        (
            a.on_full,
            a.queue,
            a.rotate_bytes,
            a.rotate_secs,
            a.arguments,
        )
    }

    #[test]
    fn absent_is_off_and_defaults_are_bounded() {
        assert!(ok("").audit.is_none());
        let a = ok("[audit]\npath = \"/var/log/mcpgate/audit.jsonl\"\n")
            .audit
            .unwrap();
        assert_eq!(a.path, PathBuf::from("/var/log/mcpgate/audit.jsonl"));
        assert_eq!(
            settings(&a),
            (OnFull::Drop, 8192, 100 << 20, 0, AuditArguments::Digest)
        );
        let a = ok(
            "[audit]\npath = \"a.jsonl\"\non_full = \"block\"\nqueue = 16\n\
                    rotate_bytes = 0\nrotate_secs = 3600\narguments = \"values\"\n",
        )
        .audit
        .unwrap();
        assert_eq!(
            settings(&a),
            (OnFull::Block, 16, 0, 3600, AuditArguments::Values)
        );
    }

    #[test]
    fn errors_name_line_and_key() {
        let (_, msg) = error_at("[audit]\non_full = \"drop\"\n", "audit.path");
        assert!(msg.contains("required"), "{msg}");
        let (line, _) = error_at("[audit]\npath = \"\"\n", "audit.path");
        assert_eq!(line, 4);
        let (line, _) = error_at(
            "[audit]\npath = \"a\"\non_full = \"wait\"\n",
            "audit.on_full",
        );
        assert_eq!(line, 5);
        let (line, _) = error_at("[audit]\npath = \"a\"\nqueue = 0\n", "audit.queue");
        assert_eq!(line, 5);
        let (line, _) = error_at("[audit]\npath = \"a\"\nfile = 1\n", "audit.file");
        assert_eq!(line, 5);
    }
}
