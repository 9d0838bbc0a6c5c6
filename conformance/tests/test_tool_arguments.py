"""Tool arguments against each tool's own inputSchema (`[tools]
validate_arguments`), against the real npm server-everything (2025-11-25).

After a `tools/list` through mcpgate, the gate knows every tool's schema:
every tool called with arguments built from its schema passes mcpgate (no
false refusal: only mcpgate's own `arguments-schema` refusals count, a tool
may still fail on the server's side), and `get-sum` with a string where the
schema wants a number is refused by mcpgate itself (400, -32602,
`error.data.rule == "arguments-schema"`) without reaching the server. With
validation off, the same call reaches the server, which answers it its own
way.

One worker per gate: each worker learns the schemas from the listings it
relays, so the listing and the calls must meet the same worker.
"""

from __future__ import annotations

import httpx
import pytest

import harness
from raw_session import RawSession

VALIDATE = '[tools]\nvalidate_arguments = true\n'

# A URI that satisfies `format: "uri"` and that no server fetches over the
# network (gzip-file-as-resource's default is a GitHub URL).
DATA_URI = "data:text/plain;base64,eA=="


class Session(RawSession):
    """A raw 2025-11-25 session through one gate."""

    def tools(self) -> list[dict]:
        return self.list_all("tools/list", "tools")


def sample(schema: dict) -> object:
    """A minimal value satisfying `schema`: an enum's first value, strings
    "x", numbers 1, booleans false, objects with their properties filled the
    same way, arrays empty (or their minimum of items)."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return sample(schema[combinator][0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "string":
        return DATA_URI if schema.get("format") in ("uri", "url", "uri-reference") else "x"
    if kind in ("number", "integer"):
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    if kind == "array":
        return [sample(schema.get("items") or {"type": "string"}) for _ in range(schema.get("minItems", 0))]
    # Every property, not only the required ones: defaults can be slow
    # (trigger-long-running-operation runs 10 s) or fetch from the network.
    return {name: sample(sub) for name, sub in (schema.get("properties") or {}).items()}


def refused_by_mcpgate(r: httpx.Response, answer: dict) -> bool:
    data = (answer.get("error") or {}).get("data") or {}
    return isinstance(data, dict) and str(data.get("rule", "")).startswith("arguments-schema")


@pytest.fixture(scope="module")
def gates():
    upstream = harness.start_everything()
    checked = harness.start_mcpgate(upstream.url, extra_toml=VALIDATE, workers=1)
    plain = harness.start_mcpgate(upstream.url, workers=1)
    yield checked, plain
    checked.stop()
    plain.stop()
    upstream.stop()


def test_every_tool_called_by_its_schema_passes(gates):
    checked, _ = gates
    s = Session(checked.url)
    tools = s.tools()
    names = {t["name"] for t in tools}
    assert {"echo", "get-sum", "get-env"} <= names, names
    false_refusals, outcomes = [], {}
    for tool in tools:
        args = sample(tool["inputSchema"])
        try:
            r, answer = s.request("tools/call", {"name": tool["name"], "arguments": args})
        except httpx.TimeoutException:
            # Only mcpgate's refusals count, and those come before any upstream
            # contact, at once: a call that waits is the server's.
            outcomes[tool["name"]] = "timeout"
            continue
        if refused_by_mcpgate(r, answer):
            false_refusals.append((tool["name"], args, answer["error"]))
        outcomes[tool["name"]] = "error" if "error" in answer else "result"
    print(f"{len(tools)} tools called, {len(false_refusals)} refused by mcpgate: {outcomes}")
    assert false_refusals == [], false_refusals
    assert len(outcomes) == len(tools)
    assert outcomes["get-sum"] == "result" and outcomes["echo"] == "result"


def test_invalid_arguments_are_refused_before_the_server(gates):
    checked, _ = gates
    s = Session(checked.url)
    s.tools()
    r, answer = s.request("tools/call", {"name": "get-sum", "arguments": {"a": "two", "b": 3}})
    assert r.status_code == 400, r.text
    assert answer["error"]["code"] == -32602
    assert answer["error"]["message"] == "Invalid params"
    data = answer["error"]["data"]
    assert data == {"rule": "arguments-schema", "at": "params.arguments/a", "pointer": "/a", "keyword": "type"}
    # mcpgate's answer, not the server's: the value is never echoed.
    assert "two" not in r.text
    # A missing required argument, and missing arguments altogether.
    r, answer = s.request("tools/call", {"name": "get-sum", "arguments": {"a": 1}})
    assert r.status_code == 400 and answer["error"]["data"]["keyword"] == "required"
    r, answer = s.request("tools/call", {"name": "echo"})
    assert r.status_code == 400 and answer["error"]["data"]["rule"] == "arguments-schema"
    # The session is intact: a valid call goes through.
    r, answer = s.request("tools/call", {"name": "get-sum", "arguments": {"a": 2, "b": 3}})
    assert r.status_code == 200 and "5" in answer["result"]["content"][0]["text"], answer


def test_an_unlisted_tool_passes_to_the_server(gates):
    checked, _ = gates
    s = Session(checked.url)
    s.tools()
    r, answer = s.request("tools/call", {"name": "no-such-tool", "arguments": {"a": "two"}})
    assert r.status_code == 200, r.text
    assert not refused_by_mcpgate(r, answer)


def test_without_validation_the_bad_call_reaches_the_server(gates):
    _, plain = gates
    s = Session(plain.url)
    s.tools()
    r, answer = s.request("tools/call", {"name": "get-sum", "arguments": {"a": "two", "b": 3}})
    # The server's own answer (an isError result or its own -32602), not mcpgate's.
    assert r.status_code == 200, r.text
    assert not refused_by_mcpgate(r, answer), answer
    assert answer.get("result", {}).get("isError") is True or answer.get("error", {}).get("code") == -32602, answer


def test_shadow_mode_lets_the_bad_call_through_and_counts_it():
    import re

    upstream = harness.start_everything()
    admin = harness.free_port()
    gate = harness.start_mcpgate(upstream.url, workers=1, admin=admin, extra_toml=(
        f'[admin]\naddress = "127.0.0.1:{admin}"\n[tools]\nvalidate_arguments = true\nmode = "shadow"\n'))
    try:
        s = Session(gate.url)
        s.tools()
        r, answer = s.request("tools/call", {"name": "get-sum", "arguments": {"a": "two", "b": 3}})
        assert r.status_code == 200, r.text
        assert not refused_by_mcpgate(r, answer), answer
        m = httpx.get(f"http://127.0.0.1:{admin}/metrics", timeout=5).text
        assert re.search(r'mcpgate_shadow_total\{[^}]*filter="tool-schema"[^}]*rule="arguments-schema"[^}]*\} 1\b', m), m
    finally:
        gate.stop()
        upstream.stop()
