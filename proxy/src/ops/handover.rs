//! The public listening sockets, owned by the supervisor and lent to the
//! processes that accept on them.
//!
//! Why: a listening socket that closes loses what the kernel queued on it.
//! With one `SO_REUSEPORT` socket per process, an upgrade (a new instance
//! started with `--takeover`, the old one drained) closed the old sockets
//! while clients were still being hashed to them: those connections were
//! reset or refused. Now the sockets live as long as anyone holds them:
//!
//! - The supervisor binds one socket per worker and hands each worker its
//!   own over a private Unix socket ([`SOCKET`], in the runtime directory,
//!   mode 0700). A worker that restarts gets the same socket, so what
//!   queued meanwhile waits for it instead of being refused.
//! - A new instance started with `--takeover` asks every running instance
//!   on the same address for its sockets. Both then accept from the same
//!   queues, and when the old one closes its copies, nothing queued is lost.
//!
//! The messages: a request line (`worker <index>` or `takeover`), answered
//! by `ok` with the sockets as `SCM_RIGHTS` (through rustix, whose
//! descriptor-passing API hands back owned descriptors without `unsafe`).

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

/// The supervisor's socket in its runtime directory.
pub const SOCKET: &str = "listeners.sock";
/// More sockets than this are never passed in one message (the supervisor
/// has at most 256 workers, so at most that many sockets of its own).
const MAX_SOCKETS: usize = 512;
/// How long either side waits for the other's message.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The public listening sockets of an instance.
pub struct Listeners {
    /// Emptied by [`Listeners::close`].
    sockets: Mutex<Vec<TcpListener>>,
}

impl Listeners {
    /// Keeps the `inherited` sockets (those of an instance being taken
    /// over) and binds more on `addr` (`SO_REUSEPORT`) until there is one
    /// per worker.
    pub fn bind(
        addr: SocketAddr,
        workers: usize,
        inherited: Vec<TcpListener>,
    ) -> std::io::Result<Self> {
        let mut sockets = inherited;
        while sockets.len() < workers {
            sockets.push(crate::accept::lean::bind_reuseport(addr)?);
        }
        Ok(Self {
            sockets: Mutex::new(sockets),
        })
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sockets.lock().len()
    }

    /// Lets go of the sockets: once the workers have closed theirs too (as
    /// they begin to drain), new connections are refused at once rather
    /// than left waiting in a queue nobody serves, unless an instance
    /// taking over holds them. Asked afterwards, this instance hands over
    /// nothing.
    pub fn close(&self) {
        self.sockets.lock().clear();
    }

    /// Worker `index`'s share: every socket is served by exactly one worker.
    fn of_worker(sockets: &[TcpListener], index: usize, workers: usize) -> Vec<BorrowedFd<'_>> {
        sockets
            .iter()
            .enumerate()
            .filter(|(j, _)| workers > 0 && j % workers == index)
            .map(|(_, s)| s.as_fd())
            .collect()
    }

    /// Answers workers and instances taking over on `path`, from a thread of
    /// its own, for as long as the process lives.
    pub fn serve(self: Arc<Self>, path: &Path, workers: usize) -> std::io::Result<()> {
        // Like a worker's private socket, but accepted on by a blocking thread.
        let listener = crate::accept::lean::bind_internal(path)?;
        listener.set_nonblocking(false)?;
        std::thread::Builder::new()
            .name("mcpgate-handover".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    if let Err(e) = self.answer(stream, workers) {
                        tracing::warn!("listening sockets not handed over: {e}");
                    }
                }
            })?;
        Ok(())
    }

    fn answer(&self, mut stream: UnixStream, workers: usize) -> std::io::Result<()> {
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let request = read_line(&mut stream)?;
        let sockets = self.sockets.lock();
        let fds = match (request.as_str(), request.strip_prefix("worker ")) {
            ("takeover", _) => {
                tracing::info!(
                    sockets = sockets.len(),
                    "handing the listening sockets to an instance taking over"
                );
                sockets.iter().map(|s| s.as_fd()).collect()
            }
            (_, Some(i)) => match i.parse::<usize>() {
                Ok(i) if i < workers => Self::of_worker(&sockets, i, workers),
                _ => return Err(invalid(format!("no worker {i:?}"))),
            },
            _ => return Err(invalid(format!("unknown request {request:?}"))),
        };
        send(&stream, &fds)
    }
}

/// Worker `index`'s listening sockets, from its supervisor (non-blocking).
pub fn ask_supervisor(runtime_dir: &Path, index: usize) -> std::io::Result<Vec<TcpListener>> {
    let sockets = ask(&runtime_dir.join(SOCKET), &format!("worker {index}"))?;
    if sockets.is_empty() {
        return Err(invalid("the supervisor handed over no socket".into()));
    }
    sockets
        .into_iter()
        .map(|fd| {
            let l = TcpListener::from(fd);
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .collect()
}

/// The listening sockets on `addr` of every running instance whose runtime
/// directory is in `tmp` (`mcpgate-<hex>/`), each socket once.
pub fn take_over(tmp: &Path, addr: SocketAddr) -> Vec<TcpListener> {
    let mut taken: Vec<TcpListener> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for path in instance_sockets(tmp) {
        let sockets = match ask(&path, "takeover") {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(socket = %path.display(), "no sockets from there: {e}");
                continue;
            }
        };
        for fd in sockets {
            let Ok(stat) = rustix::fs::fstat(&fd) else {
                continue;
            };
            let listener = TcpListener::from(fd);
            let same_address = listener.local_addr().is_ok_and(|a| a == addr);
            if same_address && seen.insert((stat.st_dev, stat.st_ino)) {
                taken.push(listener);
            }
        }
    }
    taken
}

/// The handover sockets of the runtime directories in `tmp`.
fn instance_sockets(tmp: &Path) -> Vec<PathBuf> {
    crate::ops::worker_identity::runtime_dirs(tmp)
        .into_iter()
        .map(|dir| dir.join(SOCKET))
        .filter(|p| p.exists())
        .collect()
}

fn ask(path: &Path, request: &str) -> std::io::Result<Vec<OwnedFd>> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    receive(&stream)
}

/// Reads one request line (at most 64 bytes).
fn read_line(stream: &mut UnixStream) -> std::io::Result<String> {
    let mut line = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while line.len() < 64 {
        if stream.read(&mut byte)? == 0 || byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    String::from_utf8(line).map_err(|_| invalid("a request that is not text".into()))
}

fn send(stream: &UnixStream, fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    if fds.len() > MAX_SOCKETS {
        return Err(invalid(format!("{} sockets: too many", fds.len())));
    }
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(invalid("control buffer too small".into()));
    }
    sendmsg(
        stream,
        &[IoSlice::new(b"ok\n")],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// One answer: `ok` and the sockets passed with it (close-on-exec).
fn receive(stream: &UnixStream) -> std::io::Result<Vec<OwnedFd>> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut text = [0u8; 16];
    let got = recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut text)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if got.flags.contains(ReturnFlags::CTRUNC) {
        return Err(invalid("sockets lost: control message truncated".into()));
    }
    if &text[..got.bytes] != b"ok\n" {
        return Err(invalid("unexpected answer".into()));
    }
    Ok(fds)
}

fn invalid(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

#[cfg(test)]
mod tests;
