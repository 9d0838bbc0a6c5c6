//! Processes a scenario starts: each in its own process group, stopped by its
//! group id (never by name), with CPU, RSS and descriptor counts read from
//! `/proc`.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A started server process (and its children, e.g. nginx workers).
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
    stopped: bool,
}

impl Proc {
    /// Starts `cmd` in a new process group, output to `<logdir>/<name>.log`.
    pub fn spawn(name: &str, mut cmd: Command, logdir: &Path) -> io::Result<Self> {
        let log = logdir.join(format!("{name}.log"));
        let out = fs::File::create(&log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("{name}: {:?}: {e}", cmd.get_program()))
        })?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
            stopped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Whether the process is still running (without reaping it).
    pub fn alive_ref(&self) -> bool {
        std::path::Path::new(&format!("/proc/{}/stat", self.pid())).exists()
            && stat_state(self.pid()) != Some('Z')
    }

    /// Exit status, once it has exited.
    pub fn exit_status(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| s.to_string())
    }

    /// User + system CPU time of the process and its descendants, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        tree_cpu_ticks(self.pid())
    }

    /// Resident memory of the process and its descendants, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        group_rss(self.pid())
    }

    /// Open descriptors of the process and its descendants.
    pub fn fd_count(&self) -> u64 {
        self.fd_counts().iter().sum()
    }

    /// Open descriptors of the process and of each descendant.
    pub fn fd_counts(&self) -> Vec<u64> {
        group_pids(self.pid())
            .iter()
            .map(|p| {
                fs::read_dir(format!("/proc/{p}/fd"))
                    .map(|d| d.count() as u64)
                    .unwrap_or(0)
            })
            .collect()
    }

    /// The process and its descendants (a supervisor and its workers, say).
    pub fn process_count(&self) -> u64 {
        group_pids(self.pid()).len() as u64
    }

    /// Last `n` lines of the process's output.
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .map(|l| l.chars().take(300).collect())
            .collect()
    }

    /// SIGINT to the whole group, then SIGKILL after 3 s.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let group = format!("-{}", self.pid());
        if self.alive() {
            let _ = Command::new("kill").args(["-INT", "--", &group]).status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && self.alive() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The leader may be gone while children (nginx workers) linger.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }

    /// SIGKILL to the group at once (a crash, for the breaker scenario).
    pub fn kill_now(&mut self) {
        let group = format!("-{}", self.pid());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        self.stopped = true;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stat_state(pid: u32) -> Option<char> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 2..].chars().next()
}

struct StatFields {
    ppid: u32,
    utime: u64,
    stime: u64,
}

fn stat_fields(pid: u32) -> Option<StatFields> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // rest[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
    Some(StatFields {
        ppid: f.get(1)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
    })
}

/// `root` and every process descended from it. By ancestry, not by process
/// group: mcpgate's supervisor puts each worker in a group of its own (so a
/// terminal's Ctrl-C reaches only the supervisor), which a group-based count
/// would miss.
pub fn group_pids(root: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return vec![root];
    };
    let parents: Vec<(u32, u32)> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat_fields(pid)?.ppid)))
        .collect();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(pid, ppid)| *ppid == parent && *pid != root)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    tree.retain(|pid| *pid != root || parents.iter().any(|(p, _)| p == pid));
    tree
}

/// The descendants of `root` whose parent is named `parent_comm` and who
/// are not named so themselves: the servers a supervisor started (mcpgate's
/// stdio workers: a launcher that execs the server, so a child of mcpgate
/// under another name), without their own children.
pub fn children_exec_d(root: u32, parent_comm: &str) -> Vec<u32> {
    group_pids(root)
        .into_iter()
        .filter(|pid| *pid != root)
        .filter(|pid| comm_of(*pid) != parent_comm)
        .filter(|pid| stat_fields(*pid).is_some_and(|f| comm_of(f.ppid) == parent_comm))
        .collect()
}

/// Resident memory of the processes named `comm` in `root`'s tree, in bytes.
pub fn rss_named(root: u32, comm: &str) -> u64 {
    group_pids(root)
        .into_iter()
        .filter(|p| comm_of(*p) == comm)
        .map(rss_of)
        .sum()
}

/// User + system CPU ticks of `pid` and its descendants.
pub fn tree_cpu_ticks(pid: u32) -> u64 {
    group_pids(pid)
        .iter()
        .filter_map(|p| stat_fields(*p))
        .map(|f| f.utime + f.stime)
        .sum()
}

/// Proportional set size of one process (`/proc/<pid>/smaps_rollup`): its
/// private memory plus its share of pages it shares with others, so the
/// PSS of many workers adds up to what they cost together (their RSS
/// counts every shared library page once per worker). 0 when gone.
pub fn pss_of(pid: u32) -> u64 {
    kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

/// PSS of `root` and its descendants, in bytes.
pub fn group_pss(root: u32) -> u64 {
    group_pids(root).iter().map(|p| pss_of(*p)).sum()
}

/// `/proc/<pid>/comm` (empty when gone).
pub fn comm_of(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// `MemAvailable` of this machine, in bytes.
pub fn mem_available_bytes() -> u64 {
    kib_field("/proc/meminfo", "MemAvailable:")
}

/// The `NAME:   123 kB` line of a `/proc` file starting with `name`, in
/// bytes (0 when the file or the line is missing).
pub fn kib_field(path: &str, name: &str) -> u64 {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Resident memory of `pgid` and its descendants, in bytes.
pub fn group_rss(pgid: u32) -> u64 {
    group_pids(pgid).iter().map(|p| rss_of(*p)).sum()
}

/// VmRSS of one process, in bytes (0 when gone).
pub fn rss_of(pid: u32) -> u64 {
    kib_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when unknown).
pub fn clock_ticks_per_s() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// A loopback port free right now.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until `addr` accepts connections, or the process dies, or `limit`.
pub fn wait_listening(proc: &mut Proc, addr: SocketAddr, limit: Duration) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if !proc.alive() {
            return Err(io::Error::other(format!(
                "{} exited before listening on {addr}: {}",
                proc.name,
                proc.log_tail(5).join(" | ")
            )));
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} not listening on {addr} after {limit:?}", proc.name),
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
