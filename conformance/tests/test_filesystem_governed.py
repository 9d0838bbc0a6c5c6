"""Tool governance in front of npm `@modelcontextprotocol/server-filesystem`
(a stdio server, run as mcpgate's own workers): its real catalogue pinned
with `mcpgate pin`, per-tenant visibility through the Python and TypeScript
SDK clients, and every one of its tools called with valid arguments under
argument validation and the lock (0 false refusals), invalid ones refused
before the server sees them.

Tenants: `writer` may use every tool; `reader` only the ones that read
(`write_file`, `edit_file`, `create_directory` and `move_file` are hidden
from it and answer as unknown tools).
"""

from __future__ import annotations

import hashlib
import json
import subprocess

import anyio
import pytest

import harness
from raw_session import RawSession

KEYS = {"writer": "writer-key", "reader": "reader-key"}
WRITES = {"write_file", "edit_file", "create_directory", "move_file"}
# A 1x1 PNG for read_media_file.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082")


def tenants_toml() -> str:
    return "".join(f'[tenants.{n}]\napi_keys_sha256 = ["{hashlib.sha256(k.encode()).hexdigest()}"]\n'
                   for n, k in KEYS.items())


ACCESS = """
[access]
default = "deny"

[[access.rules]]
tenants = ["writer"]
tools = ["*"]
action = "allow"

[[access.rules]]
tenants = ["reader"]
tools = ["write_file", "edit_file", "create_directory", "move_file"]
action = "deny"

[[access.rules]]
tenants = ["reader"]
tools = ["*"]
action = "allow"
"""


def valid_arguments(root) -> dict[str, dict]:
    """Valid arguments for each of server-filesystem's tools."""
    r = str(root)
    return {
        "read_file": {"path": f"{r}/notes.txt"},
        "read_text_file": {"path": f"{r}/notes.txt", "head": 1},
        "read_media_file": {"path": f"{r}/pixel.png"},
        "read_multiple_files": {"paths": [f"{r}/notes.txt", f"{r}/more.txt"]},
        "write_file": {"path": f"{r}/written.txt", "content": "written"},
        "edit_file": {"path": f"{r}/more.txt", "edits": [{"oldText": "more", "newText": "MORE"}]},
        "create_directory": {"path": f"{r}/made"},
        "list_directory": {"path": r},
        "list_directory_with_sizes": {"path": r, "sortBy": "size"},
        "directory_tree": {"path": r},
        "move_file": {"source": f"{r}/to-move.txt", "destination": f"{r}/moved.txt"},
        "search_files": {"path": r, "pattern": "*.txt"},
        "get_file_info": {"path": f"{r}/notes.txt"},
        "list_allowed_directories": {},
    }


@pytest.fixture(scope="module")
def governed():
    root = harness.scratch_dir() / "governed-root"
    root.mkdir()
    (root / "notes.txt").write_text("line one\nline two\n")
    (root / "more.txt").write_text("more text\n")
    (root / "to-move.txt").write_text("moving\n")
    (root / "pixel.png").write_bytes(PNG)
    pool = (f'[upstreams.default]\ncommand = {json.dumps([str(harness.NODE22), str(harness.SERVER_FILESYSTEM), str(root)])}\n')
    lock = harness.scratch_dir() / "filesystem.lock"
    # `mcpgate pin` spawns the stdio server itself, like the gate will.
    plain = harness.write_config_text(f'[listen]\naddress = "127.0.0.1:{harness.free_port()}"\n{pool}')
    out = subprocess.run([str(harness.mcpgate_bin()), "pin", "--config", str(plain), "--out", str(lock)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    port = harness.free_port()
    config = harness.write_config_text(
        f'[listen]\naddress = "127.0.0.1:{port}"\n{pool}{tenants_toml()}{ACCESS}'
        f'[tools]\nvalidate_arguments = true\nlock_file = "{lock}"\non_change = "block"\n')
    gate = harness.start_mcpgate_with(config, port, workers=1)
    yield gate, root, lock, out.stdout, plain
    gate.stop()


def test_pin_locks_the_real_catalogue(governed):
    _, _, lock, stdout, plain = governed
    # Both revisions: 2026-07-28 as mcpgate maps it onto the stdio server.
    assert "14 tools, 0 prompts, listed in 2026-07-28 and 2025-11-25" in stdout, stdout
    tools = json.loads(lock.read_text())["pools"]["default"]["tools"]
    assert set(valid_arguments("/x")) == set(tools), sorted(tools)
    assert tools["read_text_file"]["definition"]["inputSchema"]["properties"]["path"]["type"] == "string"
    check = subprocess.run([str(harness.mcpgate_bin()), "pin", "--config", str(plain), "--check", "--lock", str(lock)],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_each_tenant_sees_its_tools_through_the_python_sdk(governed, mode):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    gate, root, _, _, _ = governed

    async def run(key: str, tool: str, args: dict) -> tuple[list[str], object]:
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
                async with Client(streamable_http_client(gate.url, http_client=http), mode=mode) as c:
                    tools = sorted(t.name for t in (await c.list_tools()).tools)
                    return tools, await c.call_tool(tool, args)

    writer_tools, allowed = anyio.run(run, KEYS["writer"], "list_allowed_directories", {})
    reader_tools, hidden = anyio.run(run, KEYS["reader"], "write_file", {"path": f"{root}/nope.txt", "content": "x"})
    assert not allowed.is_error and str(root) in allowed.content[0].text
    assert set(writer_tools) == set(valid_arguments(root))
    assert set(reader_tools) == set(valid_arguments(root)) - WRITES
    # server-filesystem's own answer for a tool it does not know.
    assert hidden.is_error and "write_file" in hidden.content[0].text, hidden
    assert not (root / "nope.txt").exists()


def test_each_tenant_sees_its_tools_through_the_typescript_sdk(governed):
    from conftest import run_json

    gate, root, _, _, _ = governed
    rc, data, err = run_json([harness.NODE22, harness.CLIENTS / "ts_governed.mjs", gate.url, KEYS["reader"], "create_directory"])
    assert rc == 0, (data, err)
    assert set(data["tools"]) == set(valid_arguments(root)) - WRITES
    assert data["call"]["isError"] is True and "create_directory" in data["call"]["text"][0], data
    rc, data, err = run_json([harness.NODE22, harness.CLIENTS / "ts_governed.mjs", gate.url, KEYS["writer"], "list_allowed_directories"])
    assert rc == 0, (data, err)
    assert set(data["tools"]) == set(valid_arguments(root))
    assert data["call"]["isError"] is False and str(root) in data["call"]["text"][0], data


def test_every_tool_passes_with_valid_arguments_and_invalid_ones_are_refused(governed):
    gate, root, _, _, _ = governed
    s = RawSession(gate.url, api_key=KEYS["writer"])
    listed = [t["name"] for t in s.list_all("tools/list", "tools")]
    cases = valid_arguments(root)
    assert set(listed) == set(cases)
    refused = []
    for tool in listed:
        r, a = s.request("tools/call", {"name": tool, "arguments": cases[tool]})
        data = (a.get("error") or {}).get("data") or {}
        if isinstance(data, dict) and data.get("rule") in ("arguments-schema", "tool-pin", "access-denied"):
            refused.append((tool, data))
        else:
            assert "result" in a and not a["result"].get("isError"), (tool, a)
    print(f"server-filesystem: {len(listed)} tools called with valid arguments, {len(refused)} refused by mcpgate")
    assert refused == []
    assert (root / "written.txt").read_text() == "written" and (root / "moved.txt").exists()
    invalid = [("read_text_file", {"path": 5}, "/path", "type"),
               ("read_text_file", {"path": f"{root}/notes.txt", "head": "one"}, "/head", "type"),
               ("read_multiple_files", {"paths": f"{root}/notes.txt"}, "/paths", "type"),
               ("write_file", {"path": f"{root}/w2.txt"}, "", "required"),
               ("move_file", {"source": f"{root}/moved.txt"}, "", "required")]
    for tool, args, pointer, keyword in invalid:
        r, a = s.request("tools/call", {"name": tool, "arguments": args})
        assert r.status_code == 400 and a["error"]["code"] == -32602, (tool, r.text)
        assert a["error"]["data"]["pointer"] == pointer and a["error"]["data"]["keyword"] == keyword, (tool, a)
    assert not (root / "w2.txt").exists()
