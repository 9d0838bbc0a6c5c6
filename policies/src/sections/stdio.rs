//! Stdio upstreams: `[upstreams.NAME] command = [...]` and the keys that
//! only such a pool takes.
//!
//! Most MCP servers speak only stdio. A pool with `command` instead of `url`
//! is a pool of worker processes mcpgate spawns itself: the command comes
//! from policy only (never from a client), runs with an empty environment
//! (plus `env` and the `env_passthrough` names), in its own process group,
//! under `[upstreams.NAME.limits]`, and optionally inside bubblewrap
//! (`sandbox = "bwrap"`).
//!
//! ```toml
//! [upstreams.files]
//! command = ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/data"]
//! env_passthrough = ["PATH", "HOME"]
//! mode = "per-session"
//! min_idle = 2
//! [upstreams.files.limits]
//! memory_mb = 1024
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use toml_edit::TableLike;

use crate::reader::{join, Reader};

/// How client sessions map to worker processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioMode {
    /// One worker per legacy client session: the client's `initialize` is
    /// the worker's, and the session ends with the worker.
    PerSession,
    /// Long-lived workers mcpgate initialized itself, multiplexed by
    /// rewriting request ids (also legacy sessions).
    Shared,
}

/// Resource limits of one worker (`setrlimit`); `None`: inherited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StdioLimits {
    /// Address space (`RLIMIT_AS`), MiB.
    pub memory_mb: Option<u64>,
    /// CPU time (`RLIMIT_CPU`), seconds.
    pub cpu_secs: Option<u64>,
    /// Open descriptors (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// Processes of the user (`RLIMIT_NPROC`).
    pub processes: Option<u64>,
}

/// Where a worker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    /// A plain child process (limits, process group, empty environment).
    None,
    /// Inside bubblewrap: read-only root, new namespaces, no network unless
    /// `network`, only `writable` paths bound read-write.
    Bwrap {
        network: bool,
        writable: Vec<PathBuf>,
    },
}

/// How mcpgate runs the workers of one stdio pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioSpec {
    /// Program and arguments (the program is looked up in `PATH` as given
    /// by `env` or `env_passthrough`).
    pub command: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// Variables set for the worker.
    pub env: BTreeMap<String, String>,
    /// Names copied from mcpgate's own environment.
    pub env_passthrough: Vec<String>,
    pub mode: StdioMode,
    /// Workers kept started (and, when shared, initialized) ahead of demand.
    pub min_idle: usize,
    /// Most workers at once (per mcpgate worker process).
    pub max_workers: usize,
    /// A worker unused this long is stopped (per-session: its session ends).
    pub idle_timeout_secs: u64,
    /// Requests after which a shared worker is replaced (0: never).
    pub max_requests_per_worker: u64,
    /// How long a new worker may take to start and answer `initialize`.
    pub spawn_timeout_ms: u64,
    /// Between SIGTERM and SIGKILL when a worker is stopped.
    pub kill_grace_ms: u64,
    /// Longest line (one JSON-RPC message) a worker may write to stdout; a
    /// longer one counts as garbage and the worker is replaced.
    pub max_line_bytes: usize,
    pub limits: StdioLimits,
    pub sandbox: Sandbox,
}

impl StdioSpec {
    /// The command as one line, for logs and the endpoint's name.
    pub fn display(&self) -> String {
        format!("stdio:{}", self.command.join(" "))
    }
}

const MODES: [(&str, StdioMode); 2] = [
    ("per-session", StdioMode::PerSession),
    ("shared", StdioMode::Shared),
];

const SANDBOXES: [(&str, bool); 2] = [("none", false), ("bwrap", true)];

/// Keys only a stdio pool takes: in the schema of `upstream`, `command` and
/// every key after it.
fn stdio_keys() -> impl Iterator<Item = &'static str> {
    crate::schema::keys("upstream")
        .unwrap_or_default()
        .iter()
        .copied()
        .skip_while(|k| *k != "command")
}

/// Keys only a URL pool takes.
const HTTP_ONLY: [&str; 3] = ["http2", "http2_max_streams", "auth"];

/// Reads the stdio keys of a pool that has `command`; reports stdio keys
/// on a pool that does not, and URL-only keys on one that does.
pub(crate) fn read_stdio(r: &mut Reader, t: &dyn TableLike, path: &str) -> Option<StdioSpec> {
    if t.get("command").is_none() {
        for key in stdio_keys() {
            if t.get(key).is_some() {
                r.error(
                    Reader::span_of(t, key),
                    &join(path, key),
                    "only a stdio pool (one with `command`) takes this key",
                );
            }
        }
        return None;
    }
    for key in HTTP_ONLY {
        if t.get(key).is_some() {
            r.error(
                Reader::span_of(t, key),
                &join(path, key),
                "a stdio pool (`command`) does not take this key",
            );
        }
    }
    let command: Vec<String> = r
        .strings(t, "command", path)
        .unwrap_or_default()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    if command.is_empty() || command[0].is_empty() {
        r.error(
            Reader::span_of(t, "command"),
            &join(path, "command"),
            "must name a program: [\"program\", \"arg\", ...]",
        );
    }
    let mut env = BTreeMap::new();
    let env_path = join(path, "env");
    if let Some(e) = r.table(t, "env", path) {
        for (k, _) in e.iter() {
            if let Some(v) = r.opt_string(e, k, &env_path) {
                env.insert(k.to_string(), v);
            }
        }
    }
    let env_passthrough = r
        .strings(t, "env_passthrough", path)
        .unwrap_or_default()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let limits_path = join(path, "limits");
    let empty = toml_edit::Table::new();
    let l = r.table(t, "limits", path).unwrap_or(&empty);
    r.deny_unknown(l, &limits_path, "upstream.limits");
    let mut limit = |key: &str, max: i64| {
        l.get(key)
            .is_some()
            .then(|| r.integer(l, key, &limits_path, 1, 1..=max) as u64)
    };
    let limits = StdioLimits {
        memory_mb: limit("memory_mb", 1 << 30),
        cpu_secs: limit("cpu_secs", 1 << 40),
        open_files: limit("open_files", 1 << 20),
        processes: limit("processes", 1 << 22),
    };
    let bwrap = r.choice(t, "sandbox", path, "none", &SANDBOXES);
    let network = r.boolean(t, "sandbox_network", path, false);
    let writable: Vec<PathBuf> = r
        .strings(t, "sandbox_writable", path)
        .unwrap_or_default()
        .into_iter()
        .map(|(s, _)| PathBuf::from(s))
        .collect();
    if !bwrap && (t.get("sandbox_network").is_some() || t.get("sandbox_writable").is_some()) {
        r.error(
            Reader::span_of(t, "sandbox_network")
                .or_else(|| Reader::span_of(t, "sandbox_writable")),
            &join(path, "sandbox"),
            "sandbox_network and sandbox_writable need sandbox = \"bwrap\"",
        );
    }
    let spec = StdioSpec {
        command,
        cwd: r.opt_string(t, "cwd", path).map(PathBuf::from),
        env,
        env_passthrough,
        mode: r.choice(t, "mode", path, "per-session", &MODES),
        min_idle: r.integer(t, "min_idle", path, 1, 0..=1_000) as usize,
        max_workers: r.integer(t, "max_workers", path, 64, 1..=100_000) as usize,
        idle_timeout_secs: r.integer(t, "idle_timeout_secs", path, 300, 1..=604_800) as u64,
        max_requests_per_worker: r.integer(t, "max_requests_per_worker", path, 0, 0..=i64::MAX)
            as u64,
        spawn_timeout_ms: r.integer(t, "spawn_timeout_ms", path, 10_000, 100..=600_000) as u64,
        kill_grace_ms: r.integer(t, "kill_grace_ms", path, 2_000, 0..=600_000) as u64,
        max_line_bytes: r.integer(
            t,
            "max_line_bytes",
            path,
            4 * 1024 * 1024,
            1024..=256 * 1024 * 1024,
        ) as usize,
        limits,
        sandbox: if bwrap {
            Sandbox::Bwrap { network, writable }
        } else {
            Sandbox::None
        },
    };
    if spec.min_idle > spec.max_workers {
        r.error(
            Reader::span_of(t, "min_idle"),
            &join(path, "min_idle"),
            "must not exceed max_workers",
        );
    }
    Some(spec)
}

#[cfg(test)]
mod tests;
