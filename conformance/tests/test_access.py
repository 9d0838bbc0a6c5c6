"""Tool governance, visibility and access (`[access]`), against real servers.

npm @modelcontextprotocol/server-everything (2025-11-25) behind mcpgate with
per-tenant rules: the official Python SDK client sees exactly the catalogue its
tenant may see, a hidden tool answers exactly as the server answers a tool it
does not know (so its existence does not leak) and is never run, capabilities
follow what a tenant may use, shadow rules change nothing and are counted. The
Rust demo upstream (2026-07-28) shows `cacheScope: "private"` on filtered lists.
"""

from __future__ import annotations

import hashlib
import json
import re

import httpx
import pytest

import harness
from negative.cases import modern, modern_headers
from raw_session import RawSession, messages

KEYS = {"alpha": "alpha-key", "beta": "beta-key", "gamma": "gamma-key"}


def tenants_toml() -> str:
    out = []
    for name, key in KEYS.items():
        out.append(f'[tenants.{name}]\napi_keys_sha256 = ["{hashlib.sha256(key.encode()).hexdigest()}"]\n')
    return "\n".join(out)


ACCESS = """
[access]
default = "deny"

[[access.rules]]
tenants = ["alpha"]
tools = ["get-env"]
action = "deny"

[[access.rules]]
tenants = ["alpha"]
tools = ["*"]
prompts = ["*"]
resources = ["*"]
action = "allow"

[[access.rules]]
tenants = ["beta"]
tools = ["echo", "get-sum"]
action = "allow"

[[access.rules]]
tenants = ["gamma"]
tools = ["*"]
action = "deny"
mode = "shadow"

[[access.rules]]
tenants = ["gamma"]
tools = ["*"]
prompts = ["*"]
resources = ["*"]
action = "allow"
"""


class Gate:
    def __init__(self, url: str, admin: int):
        self.url = url
        self.admin = admin
        self.http = httpx.Client(timeout=15)

    def metrics(self) -> str:
        return self.http.get(f"http://127.0.0.1:{self.admin}/metrics").text

    def session(self, tenant: str) -> "Session":
        return Session(self.url, KEYS[tenant], self.http)


class Session(RawSession):
    """A raw 2025-11-25 session through mcpgate, as one tenant."""

    def names(self, method: str, member: str, key: str = "name") -> list[str]:
        return [e[key] for e in self.list_all(method, member)]


@pytest.fixture(scope="module")
def everything():
    upstream = harness.start_everything()
    admin = harness.free_port()
    gate = harness.start_mcpgate(upstream.url, extra_toml=f'[admin]\naddress = "127.0.0.1:{admin}"\n'
                                 + tenants_toml() + ACCESS, admin=admin)
    # The same server with no [access]: the catalogue as the server lists it.
    plain = harness.start_mcpgate(upstream.url, extra_toml=tenants_toml())
    yield Gate(gate.url, admin), Gate(plain.url, 0)
    gate.stop()
    plain.stop()
    upstream.stop()


def test_each_tenant_sees_only_its_catalogue(everything):
    gate, plain = everything
    every_tool = plain.session("alpha").names("tools/list", "tools")
    assert {"echo", "get-env", "get-sum"} <= set(every_tool)
    alpha = gate.session("alpha")
    assert alpha.names("tools/list", "tools") == [t for t in every_tool if t != "get-env"]
    beta = gate.session("beta")
    assert beta.names("tools/list", "tools") == [t for t in every_tool if t in ("echo", "get-sum")]
    # Prompts and resources: alpha sees all, beta none.
    every_prompt = plain.session("alpha").names("prompts/list", "prompts")
    assert every_prompt and alpha.names("prompts/list", "prompts") == every_prompt
    assert beta.names("prompts/list", "prompts") == []
    every_resource = plain.session("alpha").names("resources/list", "resources", "uri")
    assert alpha.names("resources/list", "resources", "uri") == every_resource
    assert beta.names("resources/list", "resources", "uri") == []


def test_capabilities_follow_what_a_tenant_may_use(everything):
    gate, plain = everything
    full = plain.session("alpha").init_result["capabilities"]
    assert {"tools", "prompts", "resources"} <= set(full)
    assert gate.session("alpha").init_result["capabilities"] == full
    beta = gate.session("beta").init_result["capabilities"]
    assert "tools" in beta and "prompts" not in beta and "resources" not in beta
    assert {k: v for k, v in full.items() if k not in ("prompts", "resources")} == beta


def same_answer(a: dict, a_name: str, b: dict, b_name: str) -> bool:
    """The two answers are the same, member order included, but for their
    ids and the name each quotes."""
    a, b = dict(a), dict(b)
    a["id"] = b["id"] = 0
    same = json.dumps(a).replace(a_name, "NAME") == json.dumps(b).replace(b_name, "NAME")
    assert same, (a, b)
    return same


def test_a_hidden_tool_answers_like_an_unknown_one_and_never_runs(everything):
    gate, _ = everything
    alpha = gate.session("alpha")
    hidden = alpha.call("tools/call", {"name": "get-env", "arguments": {}})
    unknown = alpha.call("tools/call", {"name": "no-such-tool", "arguments": {}})
    assert same_answer(hidden, "get-env", unknown, "no-such-tool")
    # server-everything answers an unknown tool with an isError result.
    assert hidden["result"]["isError"] is True
    assert "get-env" in hidden["result"]["content"][0]["text"]
    assert "PATH" not in json.dumps(hidden), "the hidden tool ran"
    # Same for a tenant whose default is deny, and for prompts and resources.
    beta = gate.session("beta")
    hidden = beta.call("prompts/get", {"name": "simple-prompt"})
    unknown = beta.call("prompts/get", {"name": "no-such-prompt"})
    assert same_answer(hidden, "simple-prompt", unknown, "no-such-prompt")
    assert hidden["error"]["code"] == -32602
    # The log and metrics say why.
    m = gate.metrics()
    assert re.search(r'mcpgate_access_hidden_total\{[^}]*kind="tool"[^}]*rule="access.rules\[1\]"[^}]*\} [1-9]', m), m
    assert re.search(r'mcpgate_access_hidden_total\{[^}]*kind="prompt"[^}]*rule="access.default"[^}]*\} [1-9]', m), m


def test_allowed_tools_work_as_before(everything):
    gate, _ = everything
    for tenant in ("alpha", "beta"):
        a = gate.session(tenant).call("tools/call", {"name": "echo", "arguments": {"message": "hi"}})
        assert a["result"]["content"][0]["text"] == "Echo: hi", a
        a = gate.session(tenant).call("tools/call", {"name": "get-sum", "arguments": {"a": 2, "b": 3}})
        assert "5" in a["result"]["content"][0]["text"], a


def test_shadow_rules_change_nothing_and_are_counted(everything):
    gate, plain = everything
    gamma = gate.session("gamma")
    assert gamma.names("tools/list", "tools") == plain.session("gamma").names("tools/list", "tools")
    a = gamma.call("tools/call", {"name": "echo", "arguments": {"message": "shadow"}})
    assert a["result"]["content"][0]["text"] == "Echo: shadow"
    m = gate.metrics()
    assert re.search(r'mcpgate_shadow_total\{[^}]*filter="access"[^}]*rule="access.rules\[4\]"[^}]*\} [1-9]', m), m


def test_the_python_sdk_sees_the_filtered_catalogue(everything):
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    gate, _ = everything

    async def run(key: str) -> tuple[list[str], object]:
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
                async with Client(streamable_http_client(gate.url, http_client=http), mode="auto") as c:
                    tools = [t.name for t in (await c.list_tools()).tools]
                    hidden = await c.call_tool("get-env", {})
                    return tools, hidden

    tools, hidden = anyio.run(run, KEYS["beta"])
    assert sorted(tools) == ["echo", "get-sum"]
    assert hidden.is_error and "get-env" in hidden.content[0].text


@pytest.fixture(scope="module")
def demo():
    upstream = harness.start_demo_upstream()
    if upstream is None:
        pytest.skip("demo-upstream not built")
    gate = harness.start_mcpgate(upstream.url, extra_toml=tenants_toml() + """
[access]
default = "allow"

[[access.rules]]
tenants = ["beta"]
tools = ["get-env"]
action = "deny"
""")
    yield gate
    gate.stop()
    upstream.stop()


def test_modern_lists_are_private_to_the_caller(demo):
    h = dict(modern_headers("tools/list"))
    h["authorization"] = f"Bearer {KEYS['beta']}"
    r = httpx.post(demo.url, json=modern("tools/list"), headers=h, timeout=10)
    assert r.status_code == 200, r.text
    result = messages(r)[-1]["result"]
    names = [t["name"] for t in result["tools"]]
    assert "echo" in names and "get-env" not in names
    assert result["cacheScope"] == "private"


def test_the_typescript_sdk_sees_the_filtered_catalogue(everything):
    from conftest import run_json

    gate, _ = everything
    rc, data, err = run_json([harness.NODE22, harness.CLIENTS / "ts_governed.mjs", gate.url, KEYS["beta"], "get-env"])
    assert rc == 0, (data, err)
    assert sorted(data["tools"]) == ["echo", "get-sum"]
    # The hidden tool answers as server-everything answers any unknown tool.
    assert data["call"]["isError"] is True and "get-env" in data["call"]["text"][0], data
