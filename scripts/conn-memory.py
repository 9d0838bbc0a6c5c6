#!/usr/bin/env python3
"""Per-connection RSS of mcpgate, bare pingora and nginx, measured in one run.

`make conn-memory` (writes evidence/connection-memory.json). Each proxy runs
with one worker process in front of the demo upstream; for each, N client
connections are opened and held (a) idle, before any request, (b) after one
keep-alive 4 KB tools/call each, (c) each holding an open legacy GET stream
(after its own initialize handshake) and (d) each holding an open 2026-07-28
`subscriptions/listen` stream; the RSS delta of the proxy's worker process is
divided by N. For mcpgate also (e): legacy GET streams accepted by the worker
that does not own their session (2 workers), relayed from the owner over its
private socket; RSS delta of both workers / N. Streams are opened by `loadgen hold`. "mcpgate-h2" is mcpgate
with `[upstream] http2 = true` (streams multiplexed on HTTP/2 upstream
connections; the demo upstream speaks h2c). "mcpgate-tls" and "nginx-tls"
terminate TLS with the same certificate (an ECDSA P-256 leaf for localhost and
127.0.0.1 under a CA, both made for the run): their clients complete the
handshake (Python's ssl module, verifying against that CA) and are held (a)
idle and (b) after one request; CONN_MEMORY_TLS_N connections per cell
(default N; the Python client's handshakes are the slow part). Loopback only, bounded, stops by
itself.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "target/release"
N = int(os.environ.get("CONN_MEMORY_N", "5000"))
# Subsets for a quick look while working (the evidence run measures all).
OTHER_WORKER = os.environ.get("CONN_MEMORY_OTHER_WORKER", "1") == "1"
KINDS = os.environ.get("CONN_MEMORY_KINDS", "mcpgate,mcpgate-h2,bare-pingora,nginx,mcpgate-tls,nginx-tls").split(",")
# TLS connections per cell (default N): each is a full handshake made by this
# (Python) client, one after another (5,000 took 8-9 s on 2 busy cores); all
# must be open within the proxies' 60 s first-request timeout, or the cell
# fails (the proxy's descriptor count is checked).
TLS_N = int(os.environ.get("CONN_MEMORY_TLS_N", str(N)))
TLS_KINDS = ("mcpgate-tls", "nginx-tls")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} never opened")


def rss_result(before_kib: int, after_kib: int, n: int = N) -> dict:
    """One cell: RSS before and after holding n connections, and the delta per connection."""
    return {"connections_count": n, "rss_before_bytes": before_kib * 1024, "rss_after_bytes": after_kib * 1024,
            "rss_per_connection_bytes": round((after_kib - before_kib) * 1024 / n, 1)}


def fds_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "payload", "arguments": {"size": 4096},
                              "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                        "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
REQ = (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
       b"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n"
       b"Mcp-Method: tools/call\r\nMcp-Name: payload\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY


def one_request(s: socket.socket) -> None:
    s.sendall(REQ)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("closed")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.split(b"\r\n")[0].split()[1] == b"200", head[:200]
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length"))
    while len(rest) < length:
        rest += s.recv(65536)


MODES = os.environ.get("CONN_MEMORY_MODES", "idle,after_one_request,legacy_get_stream,listen_stream").split(",")
TLS_MODES = [m for m in MODES if m in ("idle", "after_one_request")]


def hold_streams(port: int, era: str) -> subprocess.Popen:
    """Opens N streams of `era` with `loadgen hold`; returns the holder (kill it to close them)."""
    holder = subprocess.Popen([BIN / "loadgen", "hold", "--url", f"http://127.0.0.1:{port}/mcp", "--era", era,
                               "--threads", "1", "--parallel", "64", "--timeout-ms", "30000"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    holder.stdin.write(f"open {N}\n")
    holder.stdin.flush()
    status = json.loads(holder.stdout.readline())
    if status["open_count"] != N:
        os.killpg(holder.pid, signal.SIGKILL)
        raise RuntimeError(f"{era} streams: {status}")
    return holder


def measure(port: int, worker: int, mode: str) -> dict:
    time.sleep(0.5)
    before = rss_kib(worker)
    if mode in ("legacy_get_stream", "listen_stream"):
        holder = hold_streams(port, "legacy" if mode == "legacy_get_stream" else "modern")
        time.sleep(1.5)
        after = rss_kib(worker)
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
        return rss_result(before, after)
    socks = []
    for _ in range(N):
        s = socket.create_connection(("127.0.0.1", port))
        socks.append(s)
        if mode == "after_one_request":
            one_request(s)
    time.sleep(1.5)
    after = rss_kib(worker)
    for s in socks:
        s.close()
    return rss_result(before, after)


def make_certificates(tmp: Path) -> dict[str, Path]:
    """A CA and an ECDSA P-256 leaf it signs for localhost and 127.0.0.1 (PEM files in tmp)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("conn-memory test CA")).issuer_name(name("conn-memory test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    files = {"ca": tmp / "tls-ca.pem", "cert": tmp / "tls-cert.pem", "key": tmp / "tls-key.pem"}
    files["ca"].write_bytes(ca.public_bytes(pem))
    files["cert"].write_bytes(leaf.public_bytes(pem))
    files["key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return files


def measure_tls(port: int, worker: int, mode: str, ctx: ssl.SSLContext) -> dict:
    """TLS_N connections, each with its handshake complete (and one request
    for after_one_request), held while the worker's RSS is read."""
    time.sleep(0.5)
    before, fds_before = rss_kib(worker), fds_count(worker)
    socks = []
    began = time.monotonic()
    try:
        for _ in range(TLS_N):
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
            socks.append(s)
            if mode == "after_one_request":
                one_request(s)
        opened_s = time.monotonic() - began
        time.sleep(1.5)
        after, fds_after = rss_kib(worker), fds_count(worker)
        if fds_after - fds_before < TLS_N:
            raise RuntimeError(f"only {fds_after - fds_before} of {TLS_N} TLS connections open at the proxy")
        version, cipher = socks[0].version(), socks[0].cipher()[0]
    finally:
        for s in socks:
            s.close()
    return rss_result(before, after, TLS_N) | {
        "tls_version": version, "tls_cipher": cipher, "open_s": round(opened_s, 1),
        "proxy_fds_delta_count": fds_after - fds_before}


def read_head(f) -> dict[str, str]:
    status = f.readline().split()[1]
    headers = {":status": status.decode()}
    while (line := f.readline()) not in (b"\r\n", b""):
        k, v = line.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return headers


def post(f, s: socket.socket, body: bytes, extra: str = "") -> dict[str, str]:
    s.sendall((f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Accept: application/json, text/event-stream\r\n{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body)
    h = read_head(f)
    if "content-length" in h:
        f.read(int(h["content-length"]))
    return h


INIT = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "conn-memory", "version": "1"}}}).encode()
INITIALIZED = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()


def measure_other_worker(port: int, workers: list[int]) -> dict:
    """Legacy GET streams that land on the worker not owning their session:
    the stream is relayed through the accepting worker from the owner.
    RSS delta of both workers / streams."""
    time.sleep(0.5)
    before = sum(rss_kib(w) for w in workers)
    held = []
    while len(held) < N:
        a = socket.create_connection(("127.0.0.1", port))
        fa = a.makefile("rb")
        h = post(fa, a, INIT)
        assert "mcp-session-id" in h, h
        owner, sid = h["x-mcpgate-worker"], h["mcp-session-id"]
        sess = f"MCP-Protocol-Version: 2025-11-25\r\nMcp-Session-Id: {sid}\r\n"
        post(fa, a, INITIALIZED, sess)
        fa.close()
        a.close()
        for _ in range(100):
            b = socket.create_connection(("127.0.0.1", port))
            fb = b.makefile("rb")
            b.sendall(f"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{sess}\r\n".encode())
            h = read_head(fb)
            if h[":status"] == "200" and h.get("x-mcpgate-worker") != owner:
                held.append((b, fb))
                break
            fb.close()
            b.close()
    time.sleep(1.5)
    after = sum(rss_kib(w) for w in workers)
    for b, fb in held:
        fb.close()
        b.close()
    return rss_result(before, after) | {
        "note": "2 workers; each stream's session is owned by the other worker than the one accepting the GET; "
                "RSS of both workers"}


def start(kind: str, port: int, upstream: int, tmp: Path, workers: int = 1,
          certs: dict[str, Path] | None = None) -> tuple[subprocess.Popen, list[int]]:
    if kind in ("mcpgate", "mcpgate-h2", "mcpgate-tls"):
        cfg = tmp / f"{kind}.toml"
        h2 = "http2 = true\n" if kind == "mcpgate-h2" else ""
        tls = (f'[listen.tls]\ncert_file = "{certs["cert"]}"\nkey_file = "{certs["key"]}"\n'
               if kind == "mcpgate-tls" else "")
        cfg.write_text(f'[listen]\naddress = "127.0.0.1:{port}"\nexpose_worker_header = true\n{tls}'
                       f'[upstream]\nurl = "http://127.0.0.1:{upstream}/mcp"\n{h2}'
                       f'[sessions]\nmax_sessions = 100000\n[admission]\nmax_streams = 100000\n')
        p = subprocess.Popen([BIN / "mcpgate", "run", "--config", cfg, "--workers", str(workers)], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port, p)
        time.sleep(0.5)
        return p, children(p.pid)
    if kind == "bare-pingora":
        p = subprocess.Popen([BIN / "bare-pingora", "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{upstream}",
                              "--threads", "1"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port, p)
        return p, [p.pid]
    prefix = tmp / "nginx"
    prefix.mkdir(exist_ok=True)
    conf = (ROOT / ("bench/scenarios/nginx-tls.conf" if kind == "nginx-tls" else "bench/scenarios/nginx.conf")).read_text()
    user = "user root;" if os.geteuid() == 0 else ""
    fields = {"WORKERS": "1", "PREFIX": str(prefix), "USER_LINE": user, "UPSTREAM": f"127.0.0.1:{upstream}",
              "LISTEN": f"127.0.0.1:{port}"}
    if kind == "nginx-tls":
        fields |= {"CERT": str(certs["cert"]), "KEY": str(certs["key"])}
    for k, v in fields.items():
        conf = conf.replace("{{" + k + "}}", v)
    (prefix / "nginx.conf").write_text(conf)
    nginx = "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "nginx"
    p = subprocess.Popen([nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(prefix / "nginx.conf")],
                         start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p)
    time.sleep(0.3)
    return p, children(p.pid)


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "evidence/connection-memory.json")
    tmp = Path(tempfile.mkdtemp(prefix="conn-memory-"))
    up_port = free_port()
    # Room for every session and stream of every mode (sessions outlive their
    # client connections until they idle out).
    upstream = subprocess.Popen([BIN / "demo-upstream", "--listen", f"127.0.0.1:{up_port}", "--threads", "1",
                                 "--max-sessions", "1000000", "--max-streams", "1000000"],
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = {}
    certs, ctx = None, None
    if any(k in TLS_KINDS for k in KINDS):
        certs = make_certificates(tmp)
        ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    try:
        wait_port(up_port, upstream)
        for kind in KINDS:
            results[kind] = {}
            tls = kind in TLS_KINDS
            modes = TLS_MODES if tls else MODES
            other_worker = kind in ("mcpgate", "mcpgate-h2") and OTHER_WORKER
            for mode in modes + (["legacy_get_stream_other_worker"] if other_worker else []):
                port = free_port()
                other = mode == "legacy_get_stream_other_worker"
                proc, workers = start(kind, port, up_port, tmp, 2 if other else 1, certs)
                try:
                    if other:
                        results[kind][mode] = measure_other_worker(port, workers)
                    elif tls:
                        results[kind][mode] = measure_tls(port, workers[0], mode, ctx)
                    else:
                        results[kind][mode] = measure(port, workers[0], mode)
                finally:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                print(f"{kind:13} {mode:31} {results[kind][mode]['rss_per_connection_bytes']:>9.0f} B/connection", flush=True)
    finally:
        os.killpg(upstream.pid, signal.SIGKILL)
        # The proxies' configurations and the run's TLS key: nothing to keep.
        shutil.rmtree(tmp, ignore_errors=True)
    doc = {
        "command": "make conn-memory",
        "finished_unix_s": int(time.time()),
        "machine": {"cores_count": os.cpu_count(), "kernel": platform.release()},
        "method": "RSS delta of the proxy's worker process (VmRSS) divided by the connections held; one worker "
                  "process per proxy, in front of demo-upstream; each proxy freshly started per mode; stream modes "
                  "hold one open stream per client connection (legacy: its own initialize handshake first); "
                  "TLS kinds: each connection's handshake completed by the client before the RSS is read",
        "results": results,
    }
    if certs is not None:
        doc["tls"] = {
            "kinds": [k for k in KINDS if k in TLS_KINDS],
            "connections_count": TLS_N,
            "certificate": "ECDSA P-256 leaf (SAN localhost, 127.0.0.1) signed by a P-256 CA, both made for the run; "
                           "the same pair for mcpgate ([listen.tls], rustls defaults) and nginx "
                           "(bench/scenarios/nginx-tls.conf, nginx defaults)",
            "client": f"Python {platform.python_version()} ssl ({ssl.OPENSSL_VERSION}), verifying against the CA, "
                      "SNI localhost, one handshake per connection, no resumption",
        }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
