use super::*;
use crate::testutil::error_at;
use crate::{parse_policy, Policy, Transport};

fn stdio(src: &str) -> Policy {
    parse_policy("t.toml", src).unwrap_or_else(|e| panic!("{e}"))
}

fn spec(p: &Policy, pool: &str) -> StdioSpec {
    let pool = p.upstreams.iter().find(|u| u.name == pool).unwrap();
    match &pool.endpoints[0].transport {
        Transport::Stdio(s) => (**s).clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_command_makes_a_stdio_pool_with_defaults() {
    let p =
        stdio("[upstreams.files]\ncommand = [\"npx\", \"-y\", \"server-filesystem\", \"/srv\"]\n");
    let s = spec(&p, "files");
    assert_eq!(s.command, ["npx", "-y", "server-filesystem", "/srv"]);
    assert_eq!(s.mode, StdioMode::PerSession);
    assert_eq!((s.min_idle, s.max_workers), (1, 64));
    assert!(s.env.is_empty() && s.env_passthrough.is_empty());
    assert_eq!(s.limits, StdioLimits::default());
    assert_eq!(s.sandbox, Sandbox::None);
    assert_eq!(
        p.upstreams[0].endpoints[0].url,
        "stdio:npx -y server-filesystem /srv"
    );
}

#[test]
fn every_key_is_read() {
    let p = stdio(
        "[upstreams.files]\ncommand = [\"srv\"]\ncwd = \"/tmp\"\nenv_passthrough = [\"PATH\"]\n\
         mode = \"shared\"\nmin_idle = 0\nmax_workers = 3\nidle_timeout_secs = 9\n\
         max_requests_per_worker = 100\nspawn_timeout_ms = 500\nkill_grace_ms = 10\n\
         max_line_bytes = 2048\nsandbox = \"bwrap\"\nsandbox_network = true\nsandbox_writable = [\"/tmp/w\"]\n\
         [upstreams.files.env]\nHOME = \"/nonexistent\"\n\
         [upstreams.files.limits]\nmemory_mb = 512\ncpu_secs = 60\nopen_files = 64\nprocesses = 32\n",
    );
    let s = spec(&p, "files");
    assert_eq!(s.mode, StdioMode::Shared);
    assert_eq!(s.env["HOME"], "/nonexistent");
    assert_eq!(s.env_passthrough, ["PATH"]);
    assert_eq!(s.cwd.as_deref(), Some(std::path::Path::new("/tmp")));
    assert_eq!((s.min_idle, s.max_workers, s.idle_timeout_secs), (0, 3, 9));
    assert_eq!(
        (
            s.max_requests_per_worker,
            s.spawn_timeout_ms,
            s.kill_grace_ms
        ),
        (100, 500, 10)
    );
    assert_eq!(s.max_line_bytes, 2048);
    assert_eq!(
        s.limits,
        StdioLimits {
            memory_mb: Some(512),
            cpu_secs: Some(60),
            open_files: Some(64),
            processes: Some(32)
        }
    );
    assert_eq!(
        s.sandbox,
        Sandbox::Bwrap {
            network: true,
            writable: vec!["/tmp/w".into()]
        }
    );
}

#[test]
fn mistakes_are_errors_with_their_place() {
    let (line, msg) = error_at("[upstreams.x]\ncommand = []\n", "upstreams.x.command");
    assert_eq!(line, 4);
    assert!(msg.contains("must name a program"), "{msg}");
    let (_, msg) = error_at(
        "[upstreams.x]\ncommand = [\"a\"]\nurl = \"http://h/mcp\"\n",
        "upstreams.x.command",
    );
    assert!(msg.contains("not both"), "{msg}");
    let (_, msg) = error_at(
        "[upstreams.x]\ncommand = [\"a\"]\nhttp2 = true\n",
        "upstreams.x.http2",
    );
    assert!(msg.contains("stdio pool"), "{msg}");
    let (_, msg) = error_at(
        "[upstreams.x]\nurl = \"http://h/mcp\"\nmin_idle = 2\n",
        "upstreams.x.min_idle",
    );
    assert!(msg.contains("only a stdio pool"), "{msg}");
    let (_, msg) = error_at(
        "[upstreams.x]\ncommand = [\"a\"]\nmode = \"pooled\"\n",
        "upstreams.x.mode",
    );
    assert!(msg.contains("\"per-session\", \"shared\""), "{msg}");
    let (_, msg) = error_at(
        "[upstreams.x]\ncommand = [\"a\"]\nmin_idle = 5\nmax_workers = 2\n",
        "upstreams.x.min_idle",
    );
    assert!(msg.contains("max_workers"), "{msg}");
    error_at(
        "[upstreams.x]\ncommand = [\"a\"]\n[upstreams.x.limits]\nram = 1\n",
        "upstreams.x.limits.ram",
    );
    error_at(
        "[upstreams.x]\ncommand = [\"a\"]\nsandbox_network = true\n",
        "upstreams.x.sandbox",
    );
}
