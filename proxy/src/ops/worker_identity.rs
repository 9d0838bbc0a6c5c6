//! Who this process is among mcpgate's workers.

use std::path::{Path, PathBuf};

/// Environment variables the supervisor hands each worker.
pub const ENV_INSTANCE: &str = "MCPGATE_INSTANCE";
pub const ENV_RUNTIME_DIR: &str = "MCPGATE_RUNTIME_DIR";
pub const ENV_SESSION_KEYS: &str = "MCPGATE_SESSION_KEYS";

/// One worker process of one mcpgate instance.
#[derive(Debug, Clone)]
pub struct WorkerIdentity {
    /// Random per supervisor start: session ids name it to find their owner.
    pub instance: [u8; 8],
    pub index: usize,
    pub workers: usize,
    /// Private directory (0700) holding the workers' internal sockets.
    pub runtime_dir: PathBuf,
}

impl WorkerIdentity {
    /// The internal socket of worker `index`, over which other workers hand
    /// it requests for sessions it owns.
    pub fn socket_of(&self, index: usize) -> PathBuf {
        self.runtime_dir.join(format!("worker-{index}.sock"))
    }
}

/// The runtime directories (`mcpgate-<16 hex>`, one per running or
/// crashed instance) in `tmp`: the supervisor creates one, sweeps stale
/// ones, and asks live ones for their sockets on `--takeover`.
pub fn runtime_dirs(tmp: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            name.to_str()
                .and_then(|n| n.strip_prefix("mcpgate-"))
                .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .map(|e| e.path())
        .collect()
}
