//! What the `stdio-workers` scenario runs: the real stdio servers that
//! `scripts/bootstrap.sh` installs under `.cache/`, mcpgate in front of one
//! of them, and the two bridges users reach for instead (npm
//! `supergateway`, PyPI `mcp-proxy`).

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::scenario::procs::{free_port, wait_listening, Proc};
use crate::scenario::rig::Rig;

/// One stdio server: a name for the results and the command that runs it.
#[derive(Debug, Clone)]
pub struct Server {
    pub name: &'static str,
    pub command: Vec<String>,
}

/// Where `scripts/bootstrap.sh` puts things.
struct Cache(PathBuf);

impl Cache {
    fn path(&self, rel: &str) -> Option<String> {
        let p = self.0.join(rel);
        p.exists().then(|| p.display().to_string())
    }
}

const EVERYTHING: &str =
    "npm/server-everything-2026.8.31/node_modules/@modelcontextprotocol/server-everything/dist/index.js";
const FILESYSTEM: &str =
    "npm/server-filesystem-2026.8.31/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js";
const SUPERGATEWAY: &str = "npm/supergateway-4.0.0/node_modules/supergateway/dist/index.js";
const MCP_PROXY: &str = "venv-mcp-proxy/bin/mcp-proxy";

/// The servers present on this machine: the Python SDK test server
/// (`conformance/upstreams/stdio_server.py`, PyPI `mcp`), npm
/// `server-everything` and `server-filesystem` (rooted at an empty scratch
/// directory), and the names of those missing.
pub fn find(rig: &Rig) -> (Vec<Server>, Vec<&'static str>) {
    let cache = Cache(rig.repo.join(".cache"));
    let node = cache.path("bin/node22");
    let python = cache.path("venv/bin/python");
    let script = rig.repo.join("conformance/upstreams/stdio_server.py");
    let root = rig.work.join("filesystem-root");
    let _ = fs::create_dir_all(&root);
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let mut add = |name, command: Option<Vec<String>>| match command {
        Some(command) => found.push(Server { name, command }),
        None => missing.push(name),
    };
    add(
        "python-sdk",
        python
            .clone()
            .filter(|_| script.exists())
            .map(|py| vec![py, script.display().to_string()]),
    );
    add(
        "server-everything",
        node.clone()
            .zip(cache.path(EVERYTHING))
            .map(|(n, js)| vec![n, js, "stdio".into()]),
    );
    add(
        "server-filesystem",
        node.zip(cache.path(FILESYSTEM))
            .map(|(n, js)| vec![n, js, root.display().to_string()]),
    );
    (found, missing)
}

/// How mcpgate runs a stdio pool for one measurement.
pub struct GateSetup<'a> {
    pub server: &'a Server,
    pub shared: bool,
    pub min_idle: usize,
    pub max_workers: usize,
}

/// Starts mcpgate (one worker process: stdio pools are per process) with
/// one stdio pool and otherwise the policy's defaults. Returns it and its
/// MCP address.
pub fn mcpgate(rig: &Rig, name: &str, setup: &GateSetup<'_>) -> io::Result<(Proc, SocketAddr)> {
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let admin: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let command = serde_json::to_string(&setup.server.command).map_err(io::Error::other)?;
    let policy = format!(
        "[listen]\naddress = \"{listen}\"\n[admin]\naddress = \"{admin}\"\n\
         [upstreams.default]\ncommand = {command}\nenv_passthrough = [\"PATH\", \"HOME\"]\n\
         mode = \"{}\"\nmin_idle = {}\nmax_workers = {}\nidle_timeout_secs = 3600\n",
        if setup.shared {
            "shared"
        } else {
            "per-session"
        },
        setup.min_idle,
        setup.max_workers,
    );
    let path = rig.work.join(format!("{name}.toml"));
    fs::write(&path, policy)?;
    let mut cmd = Command::new(rig.bin("mcpgate"));
    cmd.arg("run").arg("--config").arg(&path);
    if rig.mcpgate_has_workers() {
        cmd.args(["--workers", "1"]);
    }
    let mut p = Proc::spawn(name, cmd, &rig.work)?;
    wait_listening(&mut p, listen, Duration::from_secs(30))?;
    Ok((p, listen))
}

/// A bridge from Streamable HTTP to one stdio server, as users run it.
pub enum Bridge {
    /// npm `supergateway --stateful`: a server process per session.
    Supergateway,
    /// PyPI `mcp-proxy`: one server process for every session.
    McpProxy,
}

impl Bridge {
    pub fn name(&self) -> &'static str {
        match self {
            Bridge::Supergateway => "supergateway",
            Bridge::McpProxy => "mcp-proxy",
        }
    }

    /// Starts the bridge in front of `server` on a free port; `None` when it
    /// is not installed (`scripts/bootstrap.sh bridges`).
    pub fn start(&self, rig: &Rig, server: &Server) -> Option<io::Result<(Proc, SocketAddr)>> {
        let cache = Cache(rig.repo.join(".cache"));
        let port = match free_port() {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let mut cmd = match self {
            Bridge::Supergateway => {
                let (node, js) = cache.path("bin/node22").zip(cache.path(SUPERGATEWAY))?;
                let mut c = Command::new(node);
                c.arg(js)
                    .args(["--stdio", &shell_words(&server.command)])
                    .args(["--outputTransport", "streamableHttp", "--stateful"])
                    .args(["--port", &port.to_string(), "--logLevel", "none"]);
                c
            }
            Bridge::McpProxy => {
                let bin = cache.path(MCP_PROXY)?;
                let mut c = Command::new(bin);
                c.args(["--port", &port.to_string(), "--log-level", "WARNING", "--"])
                    .args(&server.command);
                c
            }
        };
        cmd.current_dir(&rig.work);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        Some(Proc::spawn(self.name(), cmd, &rig.work).and_then(|mut p| {
            wait_listening(&mut p, addr, Duration::from_secs(60))?;
            Ok((p, addr))
        }))
    }
}

/// `command` as one shell line (supergateway runs `--stdio` through a shell).
fn shell_words(command: &[String]) -> String {
    command
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `path` exists (for the parameters).
pub fn installed(rig: &Rig, rel: &str) -> bool {
    Path::new(&rig.repo.join(".cache").join(rel)).exists()
}

pub const SUPERGATEWAY_PATH: &str = SUPERGATEWAY;
pub const MCP_PROXY_PATH: &str = MCP_PROXY;
