//! Starting what a scenario measures: the mock upstream, mcpgate (with the
//! repository's default policy), nginx and the bare pingora passthrough.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::identity::TlsFiles;
use super::procs::{free_port, wait_listening, Proc};

/// Where the binaries and inputs are.
#[derive(Debug, Clone)]
pub struct Rig {
    /// Directory of the binaries (copies of `target/release`'s, taken when
    /// the run starts so a concurrent build cannot swap them mid-run).
    pub bin_dir: PathBuf,
    /// The mcpgate binary (a copy of `target/release/mcpgate` or of `MCPGATE_BIN`).
    pub mcpgate: PathBuf,
    /// Repository root (for `config.example.toml`, `bench/scenarios/`).
    pub repo: PathBuf,
    /// Scratch directory for configs and logs.
    pub work: PathBuf,
    /// Worker processes/threads of every proxy.
    pub proxy_threads: usize,
    /// Tokio threads of the mock upstream.
    pub mock_threads: usize,
}

/// A tenant added to mcpgate's policy for a scenario.
#[derive(Debug, Clone)]
pub struct ExtraTenant {
    pub name: String,
    pub api_key: String,
}

/// A key of the example policy given another value for a scenario (the key
/// must be present in the example, in `section`).
#[derive(Debug, Clone)]
pub struct Override {
    pub section: &'static str,
    pub key: &'static str,
    /// TOML value, e.g. `true` or `200000`.
    pub value: String,
}

impl Override {
    pub fn new(section: &'static str, key: &'static str, value: impl ToString) -> Self {
        Self {
            section,
            key,
            value: value.to_string(),
        }
    }
}

impl Rig {
    /// A binary of the run.
    pub fn bin(&self, name: &str) -> PathBuf {
        if name == "mcpgate" {
            self.mcpgate.clone()
        } else {
            self.bin_dir.join(name)
        }
    }

    /// Copies the binaries a run uses from `built` (and mcpgate from
    /// `MCPGATE_BIN`, when set) into `<work>/bin`, and uses the copies.
    pub fn freeze_binaries(&mut self, built: &Path) -> io::Result<()> {
        let dir = self.work.join("bin");
        fs::create_dir_all(&dir)?;
        for name in ["demo-upstream", "bare-pingora", "loadgen"] {
            fs::copy(built.join(name), dir.join(name))?;
        }
        let mcpgate =
            std::env::var_os("MCPGATE_BIN").map_or_else(|| built.join("mcpgate"), PathBuf::from);
        fs::copy(&mcpgate, dir.join("mcpgate"))?;
        self.bin_dir = dir.clone();
        self.mcpgate = dir.join("mcpgate");
        Ok(())
    }

    /// Starts `demo-upstream` on `port` (0: a free one) with `extra` options.
    pub fn mock(&self, name: &str, port: u16, extra: &[&str]) -> io::Result<(Proc, SocketAddr)> {
        let port = if port == 0 { free_port()? } else { port };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = Command::new(self.bin("demo-upstream"));
        cmd.args(["--listen", &addr.to_string()])
            .args(["--threads", &self.mock_threads.to_string()])
            .args(extra);
        let mut p = Proc::spawn(name, cmd, &self.work)?;
        wait_listening(&mut p, addr, Duration::from_secs(10))?;
        Ok((p, addr))
    }

    /// Writes mcpgate's policy: `config.example.toml` (the documented
    /// defaults) with the listen, upstream and admin addresses replaced,
    /// `tenants` appended and then `extra` (whole TOML tables, such as
    /// `[listen.tls]`).
    pub fn mcpgate_config(
        &self,
        listen: SocketAddr,
        upstreams: &[SocketAddr],
        admin: SocketAddr,
        tenants: &[ExtraTenant],
        overrides: &[Override],
        extra: &str,
    ) -> io::Result<PathBuf> {
        // MCPGATE_CONFIG_TEMPLATE: another base policy (e.g. the example of
        // the commit an MCPGATE_BIN was built from).
        let base = std::env::var_os("MCPGATE_CONFIG_TEMPLATE")
            .map_or_else(|| self.repo.join("config.example.toml"), PathBuf::from);
        self.mcpgate_config_from(&base, listen, upstreams, admin, tenants, overrides, extra)
    }

    /// [`Self::mcpgate_config`] from another example policy.
    #[allow(clippy::too_many_arguments)]
    pub fn mcpgate_config_from(
        &self,
        base: &Path,
        listen: SocketAddr,
        upstreams: &[SocketAddr],
        admin: SocketAddr,
        tenants: &[ExtraTenant],
        overrides: &[Override],
        extra: &str,
    ) -> io::Result<PathBuf> {
        let src = fs::read_to_string(base)?;
        let mut out = String::with_capacity(src.len() + 512);
        // Keys each section sets: an override of a key the base does not
        // set (one shown commented out) is added under the section's header.
        let mut present: Vec<(String, String)> = Vec::new();
        let mut section = String::new();
        for line in src.lines() {
            let t = line.trim_start();
            if t.starts_with('[') {
                section = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
            } else if t.contains('=') && !t.starts_with('#') {
                present.push((
                    section.clone(),
                    t.split('=').next().unwrap_or("").trim().to_owned(),
                ));
            }
        }
        let mut section = String::new();
        for line in src.lines() {
            let t = line.trim_start();
            if t.starts_with('[') {
                section = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
                out.push_str(line);
                out.push('\n');
                for o in overrides.iter().filter(|o| o.section == section) {
                    if !present.iter().any(|(s, k)| s == o.section && k == o.key) {
                        out.push_str(&format!("{} = {}\n", o.key, o.value));
                    }
                }
                continue;
            }
            let key = t.split('=').next().unwrap_or("").trim();
            let overridden = overrides
                .iter()
                .find(|o| o.section == section && o.key == key && t.contains('='))
                .map(|o| format!("{} = {}", o.key, o.value));
            let replaced = overridden.or_else(|| match (section.as_str(), key) {
                ("listen", "address") if t.contains('=') => Some(format!("address = \"{listen}\"")),
                ("listen", "threads") if t.contains('=') => {
                    Some(format!("threads = {}", self.proxy_threads))
                }
                ("upstream", "url") if t.contains('=') => Some(match upstreams {
                    [one] => format!("url = \"http://{one}/mcp\""),
                    many => format!(
                        "endpoints = [{}]",
                        many.iter()
                            .map(|a| format!("\"http://{a}/mcp\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
                ("admin", "address") if t.contains('=') => Some(format!("address = \"{admin}\"")),
                _ => None,
            });
            out.push_str(replaced.as_deref().unwrap_or(line));
            out.push('\n');
        }
        for t in tenants {
            let hash = hex::encode(Sha256::digest(t.api_key.as_bytes()));
            out.push_str(&format!(
                "\n[tenants.{}]\napi_keys_sha256 = [\"{hash}\"]\n",
                t.name
            ));
        }
        out.push_str(extra);
        let path = self.work.join(format!("mcpgate-{}.toml", listen.port()));
        fs::write(&path, out)?;
        Ok(path)
    }

    /// A default mock upstream with mcpgate (example policy) in front of it:
    /// `(mock, mock address, mcpgate, mcpgate address)`.
    pub fn mock_behind_mcpgate(&self) -> Result<(Proc, SocketAddr, Proc, SocketAddr), String> {
        let (mock, mock_addr) = self.mock("mock", 0, &[]).map_err(|e| e.to_string())?;
        let (gate, gate_addr) = self
            .mcpgate("mcpgate", mock_addr, &[])
            .map_err(|e| e.to_string())?;
        Ok((mock, mock_addr, gate, gate_addr))
    }

    /// Starts mcpgate in front of `upstream` with as many workers as the
    /// other proxies. Returns the process and the MCP address.
    pub fn mcpgate(
        &self,
        name: &str,
        upstream: SocketAddr,
        tenants: &[ExtraTenant],
    ) -> io::Result<(Proc, SocketAddr)> {
        self.mcpgate_with(name, &[upstream], self.proxy_threads, tenants, &[])
    }

    /// Starts mcpgate with `workers` worker processes (where the binary has
    /// `--workers`) in front of one or several upstream endpoints.
    pub fn mcpgate_with(
        &self,
        name: &str,
        upstreams: &[SocketAddr],
        workers: usize,
        tenants: &[ExtraTenant],
        overrides: &[Override],
    ) -> io::Result<(Proc, SocketAddr)> {
        self.mcpgate_extra(name, upstreams, workers, tenants, overrides, "")
    }

    /// [`Rig::mcpgate_with`] with `extra` TOML tables added to the policy.
    pub fn mcpgate_extra(
        &self,
        name: &str,
        upstreams: &[SocketAddr],
        workers: usize,
        tenants: &[ExtraTenant],
        overrides: &[Override],
        extra: &str,
    ) -> io::Result<(Proc, SocketAddr)> {
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let config = self.mcpgate_config(listen, upstreams, admin, tenants, overrides, extra)?;
        let mut cmd = Command::new(self.bin("mcpgate"));
        cmd.arg("run").arg("--config").arg(&config);
        if self.mcpgate_has_workers() {
            cmd.args(["--workers", &workers.to_string()]);
        }
        let mut p = Proc::spawn(name, cmd, &self.work)?;
        wait_listening(&mut p, listen, Duration::from_secs(20))?;
        Ok((p, listen))
    }

    /// `mcpgate pin` of `upstream`'s catalogue into `work/<name>.lock`; the
    /// lock file's path.
    pub fn pin(&self, name: &str, upstream: SocketAddr) -> io::Result<PathBuf> {
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let config = self.mcpgate_config(listen, &[upstream], admin, &[], &[], "")?;
        let lock = self.work.join(format!("{name}.lock"));
        let out = Command::new(self.bin("mcpgate"))
            .arg("pin")
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&lock)
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "mcpgate pin failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(lock)
    }

    /// Starts another mcpgate `binary` in front of `upstream`, under the
    /// example policy `template` (its own commit's), addresses replaced.
    pub fn mcpgate_from(
        &self,
        name: &str,
        binary: &Path,
        template: &Path,
        upstream: SocketAddr,
        workers: usize,
    ) -> io::Result<(Proc, SocketAddr)> {
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let config =
            self.mcpgate_config_from(template, listen, &[upstream], admin, &[], &[], "")?;
        let mut cmd = Command::new(binary);
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .args(["--workers", &workers.to_string()]);
        let mut p = Proc::spawn(name, cmd, &self.work)?;
        wait_listening(&mut p, listen, Duration::from_secs(20))?;
        Ok((p, listen))
    }

    /// Whether this mcpgate runs worker processes (`run --workers`).
    pub fn mcpgate_has_workers(&self) -> bool {
        Command::new(self.bin("mcpgate"))
            .args(["run", "--help"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--workers"))
    }

    /// Starts the bare pingora passthrough in front of `upstream`.
    pub fn bare_pingora(&self, name: &str, upstream: SocketAddr) -> io::Result<(Proc, SocketAddr)> {
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let mut cmd = Command::new(self.bin("bare-pingora"));
        cmd.args(["--listen", &listen.to_string()])
            .args(["--upstream", &upstream.to_string()])
            .args(["--threads", &self.proxy_threads.to_string()]);
        let mut p = Proc::spawn(name, cmd, &self.work)?;
        wait_listening(&mut p, listen, Duration::from_secs(20))?;
        Ok((p, listen))
    }

    /// Starts nginx (from `PATH` or `/usr/sbin`) as a reverse proxy in front
    /// of `upstream`, with `bench/scenarios/nginx.conf`.
    pub fn nginx(&self, name: &str, upstream: SocketAddr) -> io::Result<(Proc, SocketAddr)> {
        self.nginx_conf(name, upstream, "nginx.conf", None)
    }

    /// nginx terminating TLS with the run's certificate
    /// (`bench/scenarios/nginx-tls.conf`).
    pub fn nginx_tls(
        &self,
        name: &str,
        upstream: SocketAddr,
        tls: &TlsFiles,
    ) -> io::Result<(Proc, SocketAddr)> {
        self.nginx_conf(name, upstream, "nginx-tls.conf", Some(tls))
    }

    fn nginx_conf(
        &self,
        name: &str,
        upstream: SocketAddr,
        template: &str,
        tls: Option<&TlsFiles>,
    ) -> io::Result<(Proc, SocketAddr)> {
        let nginx = nginx_binary().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "nginx not installed (apt-get install -y nginx)",
            )
        })?;
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let prefix = self.work.join(format!("nginx-{}", listen.port()));
        fs::create_dir_all(&prefix)?;
        let template = fs::read_to_string(self.repo.join("bench/scenarios").join(template))?;
        let user_line = if is_root() { "user root;" } else { "" };
        let (cert, key) = tls.map_or((String::new(), String::new()), |t| {
            (
                t.cert.to_string_lossy().into_owned(),
                t.key.to_string_lossy().into_owned(),
            )
        });
        let conf = template
            .replace("{{CERT}}", &cert)
            .replace("{{KEY}}", &key)
            .replace("{{PREFIX}}", &prefix.to_string_lossy())
            .replace("{{WORKERS}}", &self.proxy_threads.to_string())
            .replace("{{UPSTREAM}}", &upstream.to_string())
            .replace("{{LISTEN}}", &listen.to_string())
            .replace("{{USER_LINE}}", user_line);
        let conf_path = prefix.join("nginx.conf");
        fs::write(&conf_path, conf)?;
        let mut cmd = Command::new(nginx);
        cmd.arg("-p")
            .arg(&prefix)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .arg("-c")
            .arg(&conf_path);
        let mut p = Proc::spawn(name, cmd, &self.work)?;
        wait_listening(&mut p, listen, Duration::from_secs(10))?;
        Ok((p, listen))
    }
}

/// The nginx binary, if installed.
pub fn nginx_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// `nginx -v` output, e.g. `nginx/1.22.1`.
pub fn nginx_version() -> Option<String> {
    let out = Command::new(nginx_binary()?).arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Some(text.rsplit(": ").next().unwrap_or(&text).to_owned())
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next().map(|u| u == "0"))
        .unwrap_or(false)
}

/// The repository root: the nearest ancestor of `start` with `config.example.toml`.
pub fn find_repo(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join("config.example.toml").is_file())
        .map(Path::to_path_buf)
}
