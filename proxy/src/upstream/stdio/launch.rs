//! How a stdio worker is started: the command line, its environment, and
//! the launcher that applies its limits.
//!
//! mcpgate does not fork into the server directly: `#![forbid(unsafe_code)]`
//! rules out code between fork and exec. It starts itself instead, as
//! `mcpgate stdio-exec [limits] -- PROGRAM ARGS...`, a tiny launcher that
//! sets the limits (`setrlimit`) and the parent-death signal on itself and
//! then replaces itself with the program (`exec`), which inherits both.
//! Around it: an empty environment plus `env` and `env_passthrough`, a new
//! process group (stopped whole), stdin/stdout/stderr piped and no other
//! descriptor (the standard library opens everything close-on-exec), and,
//! with `sandbox = "bwrap"`, bubblewrap outside the launcher.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use policies::{Sandbox, StdioLimits, StdioSpec};

/// The launcher's name on mcpgate's command line.
pub(crate) const SUBCOMMAND: &str = "stdio-exec";

/// Where bubblewrap is looked for.
const BWRAP_DIRS: [&str; 3] = ["/usr/bin", "/bin", "/usr/local/bin"];

/// Names the bubblewrap binary to use instead of looking in [`BWRAP_DIRS`].
pub(crate) const BWRAP_ENV: &str = "MCPGATE_BWRAP";

/// The bubblewrap binary, if installed.
pub(crate) fn bwrap_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(BWRAP_ENV) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    BWRAP_DIRS
        .iter()
        .map(|d| Path::new(d).join("bwrap"))
        .find(|p| p.is_file())
}

/// Why a pool's workers cannot be started on this machine, if they cannot
/// (for `mcpgate check` and `run`).
pub(crate) fn unavailable(spec: &StdioSpec) -> Option<String> {
    match &spec.sandbox {
        Sandbox::Bwrap { .. } if bwrap_path().is_none() => Some(
            "sandbox = \"bwrap\" asks for bubblewrap, which is not installed (Debian package `bubblewrap`; looked in /usr/bin, /bin, /usr/local/bin, or $MCPGATE_BWRAP)"
                .into(),
        ),
        _ => None,
    }
}

/// The launcher's arguments for `limits`, before `--`.
fn limit_args(limits: &StdioLimits) -> Vec<String> {
    let mut out = Vec::new();
    for (flag, v) in [
        ("--memory-mb", limits.memory_mb),
        ("--cpu-secs", limits.cpu_secs),
        ("--open-files", limits.open_files),
        ("--processes", limits.processes),
    ] {
        if let Some(v) = v {
            out.push(flag.to_string());
            out.push(v.to_string());
        }
    }
    out
}

/// The full command line of a worker: `[bwrap ...] mcpgate stdio-exec
/// [limits] -- PROGRAM ARGS`.
pub(crate) fn argv(spec: &StdioSpec, mcpgate: &Path) -> Vec<OsString> {
    let mut argv: Vec<OsString> = Vec::new();
    if let Sandbox::Bwrap { network, writable } = &spec.sandbox {
        argv.push(bwrap_path().unwrap_or_else(|| "bwrap".into()).into());
        // The whole root read-only, /tmp included: the server and mcpgate
        // itself may live there. Scratch space is a private tmpfs at
        // /var/tmp, where TMPDIR points.
        for a in [
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/var/tmp",
            "--setenv",
            "TMPDIR",
            "/var/tmp",
            "--unshare-all",
            "--die-with-parent",
        ] {
            argv.push(a.into());
        }
        if *network {
            argv.push("--share-net".into());
        }
        for p in writable {
            argv.extend(["--bind".into(), p.clone().into(), p.clone().into()]);
        }
        if let Some(cwd) = &spec.cwd {
            argv.extend(["--chdir".into(), cwd.clone().into()]);
        }
        argv.push("--".into());
    }
    argv.push(mcpgate.into());
    argv.push(SUBCOMMAND.into());
    argv.extend(limit_args(&spec.limits).into_iter().map(OsString::from));
    argv.push("--".into());
    argv.extend(spec.command.iter().map(OsString::from));
    argv
}

/// The worker's command, ready to spawn.
pub(crate) fn command(spec: &StdioSpec) -> std::io::Result<tokio::process::Command> {
    let mcpgate = std::env::current_exe()?;
    let argv = argv(spec, &mcpgate);
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own: stopping the worker stops what it started.
        .process_group(0)
        .kill_on_drop(true);
    for name in &spec.env_passthrough {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    cmd.envs(&spec.env);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    Ok(cmd)
}

/// The launcher's limits, as parsed from its command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LaunchArgs {
    pub limits: StdioLimits,
    pub program: Vec<OsString>,
}

/// Parses `stdio-exec`'s arguments (after the subcommand).
pub(crate) fn parse_launch(args: &[OsString]) -> Result<LaunchArgs, String> {
    let mut out = LaunchArgs::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            out.program = it.cloned().collect();
            if out.program.is_empty() {
                return Err("no program after --".into());
            }
            return Ok(out);
        }
        let value = it
            .next()
            .and_then(|v| v.to_str()?.parse::<u64>().ok())
            .ok_or_else(|| format!("{a} needs a number"))?;
        let slot = match a.as_ref() {
            "--memory-mb" => &mut out.limits.memory_mb,
            "--cpu-secs" => &mut out.limits.cpu_secs,
            "--open-files" => &mut out.limits.open_files,
            "--processes" => &mut out.limits.processes,
            other => return Err(format!("unknown option {other}")),
        };
        *slot = Some(value);
    }
    Err("missing -- PROGRAM".into())
}

/// `mcpgate stdio-exec`: applies the limits to this process, asks to be
/// killed with its parent, and becomes the program. Returns only on error.
pub(crate) fn exec(args: &[OsString]) -> String {
    use nix::sys::resource::{setrlimit, Resource};
    use std::os::unix::process::CommandExt;
    let parsed = match parse_launch(args) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let l = &parsed.limits;
    for (resource, v) in [
        (
            Resource::RLIMIT_AS,
            l.memory_mb.map(|mb| mb.saturating_mul(1024 * 1024)),
        ),
        (Resource::RLIMIT_CPU, l.cpu_secs),
        (Resource::RLIMIT_NOFILE, l.open_files),
        (Resource::RLIMIT_NPROC, l.processes),
    ] {
        if let Some(v) = v {
            if let Err(e) = setrlimit(resource, v, v) {
                return format!("setrlimit {resource:?} = {v}: {e}");
            }
        }
    }
    // mcpgate gone (even killed): the worker goes too.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        return format!("prctl(PR_SET_PDEATHSIG): {e}");
    }
    let err = std::process::Command::new(&parsed.program[0])
        .args(&parsed.program[1..])
        .exec();
    format!("{}: {err}", parsed.program[0].to_string_lossy())
}
