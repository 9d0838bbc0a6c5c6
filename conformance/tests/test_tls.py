"""TLS termination on the real binary (issue 11, "TLS termination" and mTLS modes).

Certificates are made here with `cryptography` (a CA, server pairs for SNI, client
certificates with a SPIFFE URI SAN). Checked with the official Python SDK, curl and
Python's ssl module:

- the Python `mcp` client and curl reach the demo upstream through mcpgate over TLS;
- the certificate is chosen by SNI; min_version 1.3 refuses a TLS 1.2 client;
- plain HTTP, garbage and a client that never finishes its handshake are closed,
  counted by outcome, and leave no descriptor behind;
- a new pair is picked up without a restart, a broken one keeps the old pair;
- client_auth off / optional / required with and without a client certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402
from negative.cases import modern, modern_headers  # noqa: E402

NOW = datetime.datetime.now(datetime.timezone.utc)


class Pki:
    """A CA and the pairs it signs, as PEM files in `dir`."""

    def __init__(self, dir: Path, name: str = "mcpgate test CA"):
        self.dir = dir
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = dir / f"{name.replace(' ', '-')}.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, file: str, dns: list[str] = (), ips: list[str] = (), uris: list[str] = (), cn: str = "leaf",
              kind: str = "ec", client: bool = False) -> tuple[Path, Path]:
        key = {"ec": lambda: ec.generate_private_key(ec.SECP256R1()),
               "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
               "ed25519": ed25519.Ed25519PrivateKey.generate}[kind]()
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips] + \
               [x509.UniformResourceIdentifier(u) for u in uris]
        usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())  # signed by the (EC) CA
        c, k = self.dir / f"{file}.pem", self.dir / f"{file}.key"
        c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
        return c, k


@pytest.fixture(scope="module")
def pki():
    return Pki(harness.scratch_dir())


@pytest.fixture(scope="module")
def upstream():
    port = harness.free_port()
    with harness.Proc("demo-upstream-tls", [harness.demo_upstream_bin(), "--listen", f"127.0.0.1:{port}"]) as p:
        p.wait_port(port)
        yield f"http://127.0.0.1:{port}/mcp"


class TlsGate:
    def __init__(self, upstream: str, tls_toml: str, workers: int = 2):
        self.port, self.admin = harness.free_port(), harness.free_port()
        cfg = harness.write_config_text(
            f'[listen]\naddress = "127.0.0.1:{self.port}"\n{tls_toml}\n'
            f'[upstream]\nurl = "{upstream}"\n[admin]\naddress = "127.0.0.1:{self.admin}"\n'
        )
        self.proc = harness.Proc("mcpgate-tls", [harness.mcpgate_bin(), "run", "--config", cfg, "--workers", str(workers)])
        self.proc.wait_port(self.port, timeout=20)
        self.proc.wait_port(self.admin, timeout=20)
        self.url = f"https://127.0.0.1:{self.port}/mcp"

    def stop(self):
        self.proc.stop()

    def counter(self, outcome: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.admin}/metrics", timeout=5).text
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                   if l.startswith("mcpgate_tls_handshakes_total{") and f'outcome="{outcome}"' in l)

    def worker_fds(self) -> int:
        total = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"worker" in cmd and any(str(self.port).encode() in Path(c.decode()).read_bytes()
                                            for c in cmd if c.endswith(b".toml")):
                    total += len(os.listdir(f"/proc/{pid}/fd"))
            except OSError:
                continue
        return total


def tls_section(cert: Path, key: Path, extra: str = "") -> str:
    return f'\n[listen.tls]\ncert_file = "{cert}"\nkey_file = "{key}"\nhandshake_timeout_ms = 700\n{extra}'


def client_context(pki: Pki, cert: tuple[Path, Path] | None = None, server_name_check: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    ctx.check_hostname = server_name_check
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def call(url: str, ctx: ssl.SSLContext | bool, id_: int = 1) -> httpx.Response:
    with httpx.Client(verify=ctx, timeout=10) as c:
        return c.post(url, json=modern("tools/list", id_=id_), headers=modern_headers("tools/list"))


@pytest.fixture(scope="module")
def server_pair(pki):
    return pki.issue("server", dns=["localhost"], ips=["127.0.0.1"], cn="mcpgate")


@pytest.fixture(scope="module")
def gate(upstream, pki, server_pair):
    b = pki.issue("sni-b", dns=["b.example.test"], cn="b", kind="rsa")
    c = pki.issue("sni-c", dns=["x.c.example.test"], cn="c", kind="ed25519")
    g = TlsGate(upstream, tls_section(*server_pair) +
                f'\n[[listen.tls.certificates]]\nserver_names = ["b.example.test"]\ncert_file = "{b[0]}"\nkey_file = "{b[1]}"\n'
                f'\n[[listen.tls.certificates]]\nserver_names = ["*.c.example.test"]\ncert_file = "{c[0]}"\nkey_file = "{c[1]}"\n')
    yield g
    g.stop()


def test_python_sdk_client_over_tls(gate, pki):
    env = dict(os.environ, SSL_CERT_FILE=str(pki.ca_file))
    r = subprocess.run([str(harness.VENV_PY), str(harness.CLIENTS / "py_client.py"), gate.url, "--mode", "auto"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(r.stdout)
    assert summary["ok"] and summary.get("tools"), summary


def test_curl_over_tls(gate, pki):
    body = json.dumps(modern("tools/list"))
    headers = sum((["-H", f"{k}: {v}"] for k, v in modern_headers("tools/list")), [])
    r = subprocess.run(["curl", "-sS", "--cacert", str(pki.ca_file), gate.url, "-d", body, *headers],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["result"]["tools"]


def peer_cn(port: int, pki: Pki, sni: str | None) -> str:
    ctx = client_context(pki, server_name_check=False)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            cert = x509.load_der_x509_certificate(s.getpeercert(binary_form=True))
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_certificate_chosen_by_sni(gate, pki):
    assert peer_cn(gate.port, pki, "b.example.test") == "b"
    assert peer_cn(gate.port, pki, "x.c.example.test") == "c"
    assert peer_cn(gate.port, pki, "unknown.example.test") == "mcpgate"
    assert peer_cn(gate.port, pki, None) == "mcpgate"


def test_bad_clients_are_closed_counted_and_leave_no_descriptor(gate, pki):
    time.sleep(0.5)
    fds_before = gate.worker_fds()
    before = {o: gate.counter(o) for o in ("not_tls", "timeout", "failed")}
    for _ in range(10):
        # Plain HTTP to the TLS port.
        with socket.create_connection(("127.0.0.1", gate.port), timeout=5) as s:
            s.sendall(b"GET /mcp HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 400 ") and b"TLS" in answer, answer
        # Garbage after a handshake record type.
        with socket.create_connection(("127.0.0.1", gate.port), timeout=5) as s:
            s.sendall(b"\x16\x03\x01\x00\x05garbagegarbage")
            try:
                s.recv(100)
            except ConnectionResetError:
                pass
    # Truncated handshakes: a record header and then silence.
    slow = [socket.create_connection(("127.0.0.1", gate.port), timeout=5) for _ in range(5)]
    for s in slow:
        s.sendall(b"\x16\x03\x01\x02\x00\x01")
    t0 = time.monotonic()
    for s in slow:
        assert s.recv(100) == b"", "closed at the handshake deadline"
        s.close()
    assert time.monotonic() - t0 < 5, "handshake_timeout_ms = 700 closes them well before 5 s"
    time.sleep(0.5)
    assert gate.counter("not_tls") - before["not_tls"] == 10
    assert gate.counter("failed") - before["failed"] == 10
    assert gate.counter("timeout") - before["timeout"] == 5
    assert gate.worker_fds() <= fds_before, "no descriptor left behind"
    # Still serving.
    assert call(gate.url, client_context(pki)).status_code == 200


def test_min_version_1_3_refuses_tls_1_2(upstream, pki, server_pair):
    g = TlsGate(upstream, tls_section(*server_pair, 'min_version = "1.3"\n'), workers=1)
    try:
        old = client_context(pki)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(httpx.ConnectError):
            call(g.url, old)
        assert call(g.url, client_context(pki)).status_code == 200
    finally:
        g.stop()


def test_certificates_are_reloaded_without_restart(upstream, pki):
    cert, key = pki.issue("reloadable", ips=["127.0.0.1"], cn="first")
    g = TlsGate(upstream, tls_section(cert, key), workers=2)
    try:
        assert peer_cn(g.port, pki, None) == "first"
        # A broken pair (key of another certificate) keeps the old one.
        _, other_key = pki.issue("other", ips=["127.0.0.1"], cn="other")
        good_key = key.read_bytes()
        key.write_bytes(other_key.read_bytes())
        time.sleep(5)
        assert peer_cn(g.port, pki, None) == "first"
        assert "not reloaded" in g.proc.log_tail(200)
        # A new, matching pair is taken within a few seconds.
        new_cert, new_key = pki.issue("reloadable-2", ips=["127.0.0.1"], cn="second")
        key.write_bytes(new_key.read_bytes())
        cert.write_bytes(new_cert.read_bytes())
        deadline = time.monotonic() + 10
        while peer_cn(g.port, pki, None) != "second" and time.monotonic() < deadline:
            time.sleep(0.3)
        # Every worker serves the new pair.
        assert all(peer_cn(g.port, pki, None) == "second" for _ in range(10))
        assert good_key  # (the first key is no longer on disk)
    finally:
        g.stop()


@pytest.mark.parametrize("mode", ["off", "optional", "required"])
def test_client_auth_modes(upstream, pki, server_pair, mode):
    clients = Pki(harness.scratch_dir(), name=f"client CA {mode}")
    client = clients.issue(f"client-{mode}", uris=["spiffe://example.org/ns/a/sa/agent"], cn="agent", client=True)
    stranger = Pki(harness.scratch_dir(), name=f"stranger CA {mode}").issue(f"stranger-{mode}", cn="x", client=True)
    g = TlsGate(upstream, tls_section(*server_pair, f'client_auth = "{mode}"\nclient_ca_file = "{clients.ca_file}"\n'),
                workers=1)
    try:
        def ok(cert) -> bool:
            try:
                return call(g.url, client_context(pki, cert)).status_code == 200
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
                return False
        assert ok(client), "a certificate signed by client_ca_file is accepted"
        assert ok(None) == (mode != "required"), "no certificate"
        assert ok(stranger) == (mode == "off"), "a certificate from another CA"
        # curl, as an operator would test it.
        args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(pki.ca_file), g.url,
                "-d", json.dumps(modern("tools/list"))] + sum((["-H", f"{k}: {v}"] for k, v in modern_headers("tools/list")), [])
        with_cert = subprocess.run(args + ["--cert", str(client[0]), "--key", str(client[1])], capture_output=True, text=True)
        without = subprocess.run(args, capture_output=True, text=True)
        assert with_cert.stdout == "200", with_cert.stderr
        assert (without.stdout == "200") == (mode != "required"), without.stderr
    finally:
        g.stop()
