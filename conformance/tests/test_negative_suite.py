"""Table-driven negative suite against the real mcpgate binary.

mcpgate runs in front of the demo upstream started with `--record`, which
appends one JSON line per HTTP request it receives. For every case the test
checks the answer and that the record file did not grow: no byte of a
rejected message reached the upstream.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402
from negative.cases import CASES, LEGACY, LEGACY_H, POST_HEADERS, Case, init, note, req  # noqa: E402

KEYS = {"acme": "acme-key", "beta": "beta-key"}


def tenants_toml(extra: str = "") -> str:
    out = '\n[auth]\nanonymous_tenant = "anon"\n'
    for name, key in KEYS.items():
        out += f'\n[tenants.{name}]\napi_keys_sha256 = ["{hashlib.sha256(key.encode()).hexdigest()}"]\n'
    return out + extra


class Recorded:
    """The demo upstream with its record file, and mcpgate in front of it."""

    def __init__(self, tmp: Path, gate_toml: str, workers: int | None = None):
        self.record = tmp / "record.jsonl"
        self.record.touch()
        port = harness.free_port()
        self.upstream = harness.Proc(
            "demo-upstream-recording",
            [harness.demo_upstream_bin(), "--listen", f"127.0.0.1:{port}", "--record", self.record],
        )
        try:
            self.upstream.wait_port(port)
            self.gate = harness.start_mcpgate(f"http://127.0.0.1:{port}/mcp", extra_toml=gate_toml, workers=workers)
        except BaseException:
            self.upstream.stop()  # a failed setup leaves nothing running
            raise
        self.url = self.gate.url
        self.client = httpx.Client(timeout=10)

    def count(self) -> int:
        return len(self.record.read_text().splitlines())

    def stop(self) -> None:
        self.client.close()
        self.gate.stop()
        self.upstream.stop()

    def post(self, body, headers, session: str | None = None, key: str | None = None) -> httpx.Response:
        h = list(headers)
        if session:
            h.append(("mcp-session-id", session))
        if key:
            h.append(("authorization", f"Bearer {key}"))
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        return self.client.post(self.url, content=data, headers=h)

    def session(self, state: str, key: str | None = None) -> str:
        """A session id in `state` (see negative/cases.py)."""
        if state == "unknown":
            return "f" * 64
        r = self.post(init(), POST_HEADERS, key=key)
        assert r.status_code == 200, r.text
        sid = r.headers["mcp-session-id"]
        if state == "awaiting":
            return sid
        r = self.post(note("notifications/initialized"), LEGACY_H, sid, key)
        assert r.status_code == 202, r.text
        if state == "ended":
            r = self.client.delete(self.url, headers=[("mcp-session-id", sid), ("mcp-protocol-version", LEGACY)])
            assert r.status_code in (200, 204), r.text
        return sid


@pytest.fixture(scope="module")
def rec():
    r = Recorded(harness.scratch_dir(), tenants_toml("\n[sessions]\nmax_in_flight_per_session = 3\n"))
    yield r
    r.stop()


def assert_untouched(rec: Recorded, before: int) -> None:
    time.sleep(0.05)
    assert rec.count() == before, "the upstream received the rejected message"


# `error.data` holds only names mcpgate defines: a kebab-case rule, a place
# (JSON path of the message, `header:NAME`, or one of a few fixed words) and,
# for version refusals, the versions mcpgate supports. Nothing the client sent.
RULE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_SEG = r"[A-Za-z_][A-Za-z0-9_-]*"
_IDX = r"\[\d+\]"
_PATH = rf'{_SEG}(?:\.{_SEG}|{_IDX}|\["[A-Za-z0-9_./-]*"\])*'
AT = re.compile(rf"^(?:(?:{_IDX})+\.?)?(?:header:[a-z0-9-]+|headers|head|request-line|path|method|body|{_PATH})?$")
# `requested`: the version a client asked for, echoed (when it has a version's
# shape) because the 2026-07-28 transport requires it (SEP-2575).
DATA_KEYS = {"rule", "at", "supported", "requested"}


def check_error_data(name: str, error: dict, offending: str | None = None) -> dict:
    """Asserts `error.data` names a rule (and where) and echoes nothing."""
    data = error.get("data")
    assert isinstance(data, dict), f"{name}: error without data: {error}"
    rule = data.get("rule")
    assert isinstance(rule, str) and RULE.match(rule), f"{name}: data.rule {rule!r}"
    assert set(data) <= DATA_KEYS, f"{name}: unexpected data members {sorted(set(data) - DATA_KEYS)}"
    if "at" in data:
        assert isinstance(data["at"], str) and data["at"] and AT.match(data["at"]), f"{name}: data.at {data['at']!r}"
    if "supported" in data:
        assert all(isinstance(v, str) for v in data["supported"]), f"{name}: {data}"
    if "requested" in data:
        # The one client string echoed, by the 2026-07-28 transport's rule,
        # and only when it has a version's shape.
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,32}", data["requested"]), f"{name}: {data}"
    if offending:
        text = json.dumps({k: v for k, v in data.items() if k != "requested"}, ensure_ascii=False)
        assert offending not in text, f"{name}: data echoes the input {offending!r}: {text}"
        assert offending not in error["message"], f"{name}: message echoes the input {offending!r}"
    return data


def check_answer(case: Case, r: httpx.Response) -> None:
    assert r.status_code == case.status, f"{case.name}: {r.status_code} {r.text[:300]}"
    if case.code is None:
        assert r.content == b"", f"{case.name}: expected a bare status, got {r.text[:200]}"
    else:
        body = r.json()
        assert body["jsonrpc"] == "2.0"
        assert body["error"]["code"] == case.code, f"{case.name}: {body}"
        if case.echo_id is not None:
            assert body["id"] == case.echo_id
        data = check_error_data(case.name, body["error"], case.offending)
        if case.rule is not None:
            assert data["rule"] == case.rule, f"{case.name}: rule {data['rule']!r}, expected {case.rule!r}"
        if case.at is not None:
            assert data.get("at") == case.at, f"{case.name}: at {data.get('at')!r}, expected {case.at!r}"
    for k, v in case.expect_headers.items():
        assert r.headers.get(k) == v, f"{case.name}: header {k}={r.headers.get(k)!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rejection(rec: Recorded, case: Case):
    sid = None
    key = None
    if case.session != "none":
        owner = KEYS["acme"] if case.session == "foreign" else None
        sid = rec.session(case.session, key=owner)
        if case.session == "foreign":
            key = KEYS["beta"]
    headers = list(case.headers)
    if sid:
        headers.append(("mcp-session-id", sid))
    if key:
        headers.append(("authorization", f"Bearer {key}"))
    before = rec.count()
    r = rec.client.request(case.method, rec.url.replace("/mcp", case.path), content=case.payload(), headers=headers)
    check_answer(case, r)
    assert_untouched(rec, before)


def test_control_an_accepted_message_reaches_the_upstream(rec: Recorded):
    """Guards the suite itself: the record file does grow for a good message."""
    sid = rec.session("ready")
    before = rec.count()
    r = rec.post(req("tools/list", 9), LEGACY_H, sid)
    assert r.status_code == 200
    assert "echo" in r.text
    time.sleep(0.05)
    assert rec.count() == before + 1


def test_chunked_body_over_limit(rec: Recorded):
    before = rec.count()

    def chunks():
        yield b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"'
        for _ in range(5):
            yield b"x" * (1024 * 1024)
        yield b'"}}'

    r = rec.client.post(rec.url, content=chunks(), headers=POST_HEADERS)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == -32600
    assert check_error_data("chunked-over-limit", r.json()["error"], "xxxx")["rule"] == "payload-too-large"
    assert_untouched(rec, before)


def slow_call(rec: Recorded, sid: str, id_: int, results: list) -> threading.Thread:
    body = req("tools/call", id_, {"name": "payload", "arguments": {"size": 16, "delay_ms": 1500}})
    t = threading.Thread(target=lambda: results.append(rec.post(body, LEGACY_H, sid)))
    t.start()
    return t


def wait_recorded(rec: Recorded, n: int) -> None:
    deadline = time.monotonic() + 5
    while rec.count() < n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rec.count() >= n


def test_duplicate_in_flight_id(rec: Recorded):
    sid = rec.session("ready")
    results: list = []
    before = rec.count()
    t = slow_call(rec, sid, 7, results)
    wait_recorded(rec, before + 1)
    r = rec.post(req("tools/list", 7), LEGACY_H, sid)
    assert r.status_code == 400 and r.json()["error"]["code"] == -32600 and r.json()["id"] == 7
    data = check_error_data("duplicate-in-flight", r.json()["error"])
    assert (data["rule"], data.get("at")) in (("request-id-in-flight", "id"), ("request-id-in-flight", None)), data
    assert_untouched(rec, before + 1)
    t.join()
    assert results[0].status_code == 200
    r = rec.post(req("tools/list", 7), LEGACY_H, sid)
    assert r.status_code == 200, "the id is free again once answered"


def test_in_flight_cap_sheds_with_retry_after(rec: Recorded):
    sid = rec.session("ready")
    results: list = []
    before = rec.count()
    threads = [slow_call(rec, sid, 100 + i, results) for i in range(3)]
    wait_recorded(rec, before + 3)
    r = rec.post(req("tools/list", 200), LEGACY_H, sid)
    assert r.status_code == 503 and r.json()["error"]["code"] == -32013
    assert check_error_data("in-flight-cap", r.json()["error"])["rule"] == "overloaded"
    assert r.headers.get("retry-after") == "1"
    assert_untouched(rec, before + 3)
    for t in threads:
        t.join()
    assert [x.status_code for x in results] == [200, 200, 200]


def test_session_table_full(tmp_path):
    # One worker: with two, each holds its share of the cap (1 and 0).
    r = Recorded(tmp_path, "\n[sessions]\nmax_sessions = 1\n", workers=1)
    try:
        r.session("ready")
        before = r.count()
        resp = r.post(init(), POST_HEADERS)
        assert resp.status_code == 503 and resp.headers.get("retry-after") == "1"
        assert resp.json()["error"]["code"] == -32013 and resp.json()["id"] == 0
        assert check_error_data("session-table-full", resp.json()["error"])["rule"] == "overloaded"
        assert_untouched(r, before)
    finally:
        r.stop()


def test_suite_size():
    """Prints the case count for the closing note; at least one case per path."""
    pinned = sum(1 for c in CASES if c.rule is not None)
    print(f"\nnegative suite: {len(CASES)} table cases ({pinned} with a pinned error.data.rule) + 5 dynamic cases")
    assert len(CASES) >= 45
    assert pinned >= 12
