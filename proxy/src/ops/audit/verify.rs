//! `mcpgate audit verify FILE...`: checks one chain across its files,
//! oldest first (rotated files, then the current one).
//!
//! Every line must be a record whose `seq` is one more than the line
//! before's and whose `prev` is that line's SHA-256. The first line that
//! breaks either is reported with what it means: a record changed (the
//! hash it carries of the line before does not match), records removed
//! (`seq` jumps) or reordered (`seq` goes back). The first record of the
//! first file may start mid-chain (older files not given); a chain that
//! starts at `seq` 1 must start from the genesis hash. What no chain can
//! show: records cut from the end of the newest file.

use std::io::BufRead;
use std::path::PathBuf;

use serde_json::Value;

use super::chain::{line_hash, GENESIS};

/// What a verification found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The first break: file, line (1-based), what.
    pub broken: Option<(PathBuf, u64, String)>,
}

/// Verifies `files` as one chain, in the order given.
pub(crate) fn verify(files: &[PathBuf]) -> std::io::Result<Verdict> {
    let mut v = Verdict {
        records: 0,
        first_seq: None,
        last_seq: None,
        broken: None,
    };
    // The line before: (seq, hash, file, line number).
    let mut before: Option<(u64, String, PathBuf, u64)> = None;
    for file in files {
        let reader = std::io::BufReader::new(std::fs::File::open(file)?);
        for (i, line) in reader.split(b'\n').enumerate() {
            let line = line?;
            let at = i as u64 + 1;
            let fail = |what: String| Some((file.clone(), at, what));
            let Some((seq, prev)) = fields(&line) else {
                v.broken = fail("not an audit record (no seq and prev)".into());
                return Ok(v);
            };
            match &before {
                None if seq == 1 && prev != GENESIS => {
                    v.broken = fail(
                        "the chain's first record does not start from the genesis hash".into(),
                    );
                    return Ok(v);
                }
                None => {}
                Some((last, hash, bfile, bline)) => {
                    if seq > last + 1 {
                        v.broken = fail(format!(
                            "records removed or reordered: seq {seq} follows seq {last} ({} missing here)",
                            seq - last - 1
                        ));
                        return Ok(v);
                    }
                    if seq <= *last {
                        v.broken = fail(format!(
                            "records reordered or repeated: seq {seq} follows seq {last}"
                        ));
                        return Ok(v);
                    }
                    if prev != *hash {
                        v.broken = Some((
                            bfile.clone(),
                            *bline,
                            format!(
                                "record seq {last} was changed: its hash is not the one seq {seq} ({}:{at}) carries",
                                file.display()
                            ),
                        ));
                        return Ok(v);
                    }
                }
            }
            v.records += 1;
            v.first_seq.get_or_insert(seq);
            v.last_seq = Some(seq);
            before = Some((seq, line_hash(&line), file.clone(), at));
        }
    }
    Ok(v)
}

/// A record's `seq` and `prev`, if it is one.
fn fields(line: &[u8]) -> Option<(u64, String)> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let seq = v.get("seq")?.as_u64()?;
    let prev = v.get("prev")?.as_str()?;
    (prev.len() == 64 && prev.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| (seq, prev.to_string()))
}

/// The command: prints the verdict; exit 0 when intact, 1 when broken, 2
/// when a file cannot be read.
pub fn run(files: &[PathBuf]) -> std::process::ExitCode {
    if files.is_empty() {
        eprintln!("error: name the trail's files, oldest first");
        return std::process::ExitCode::from(2);
    }
    match verify(files) {
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
        Ok(Verdict {
            broken: Some((file, line, what)),
            ..
        }) => {
            println!("BROKEN {}:{line}: {what}", file.display());
            std::process::ExitCode::from(1)
        }
        Ok(v) => {
            match (v.first_seq, v.last_seq) {
                (Some(first), Some(last)) => println!(
                    "ok: {} records in {} files, seq {first} to {last}, chain intact{}",
                    v.records,
                    files.len(),
                    if first == 1 {
                        ""
                    } else {
                        " (it starts mid-chain: older files not given)"
                    }
                ),
                _ => println!("ok: no records"),
            }
            std::process::ExitCode::SUCCESS
        }
    }
}
