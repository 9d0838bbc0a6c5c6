//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and every
//! regression case (`fuzz/regressions/<target>/<name>`, one file per crash
//! the fuzzer found, named after it) through the same entry points as the
//! fuzz targets, on stable Rust in a normal `cargo test`.

use std::fs;
use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 9] = [
    ("envelope", filters::fuzzing::envelope),
    ("sse", filters::fuzzing::sse),
    ("path_canon", filters::fuzzing::path_canon),
    ("header_guard", filters::fuzzing::header_guard),
    ("policy", policies::fuzzing::policy),
    ("chain", filters::fuzzing::chain_bytes),
    ("jwt", filters::fuzzing::jwt_bytes),
    ("jwks", filters::fuzzing::jwks),
    ("listing", filters::fuzzing::listing),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    out.retain(|p| p.is_file());
    out.sort();
    out
}

fn replay(kind: &str) -> usize {
    let mut n = 0;
    for (name, target) in TARGETS {
        for file in files(&fuzz_dir().join(kind).join(name)) {
            let data = fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let result = std::panic::catch_unwind(|| target(&data));
            assert!(result.is_ok(), "{name}: {} panicked", file.display());
            n += 1;
        }
    }
    n
}

#[test]
fn corpus_replays_without_panic() {
    for (name, _) in TARGETS {
        assert!(
            !files(&fuzz_dir().join("corpus").join(name)).is_empty(),
            "fuzz/corpus/{name} is empty"
        );
    }
    assert!(replay("corpus") > 0);
}

#[test]
fn regressions_replay_without_panic() {
    replay("regressions");
}
