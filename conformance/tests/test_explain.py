"""`mcpgate explain`: the chain run offline on one message, by the real binary.

Exit 0 when the message passes, 1 when refused (the wire answer printed),
2 on unusable input; each filter's decision listed; --response runs the
response phase, --tools gives argument validation its schemas.
"""

from __future__ import annotations

import json
import subprocess

import harness

POLICY = """
[upstream]
url = "http://127.0.0.1:9/mcp"
[auth]
anonymous_tenant = "anonymous"
[tenants.alpha]
api_keys_sha256 = ["c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c"]
[access]
default = "allow"
[[access.rules]]
tenants = ["alpha"]
tools = ["get-env"]
action = "deny"
[tools]
validate_arguments = true
"""

TOOLS = {"jsonrpc": "2.0", "id": 6, "result": {"nextCursor": "2", "tools": [
    {"name": "echo", "inputSchema": {"type": "object"}},
    {"name": "get-env", "inputSchema": {"type": "object"}},
    {"name": "get-sum", "inputSchema": {"type": "object", "required": ["a", "b"],
                                        "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}},
]}}


def explain(*args: str, message: dict, response: dict | None = None, tools: dict | None = None,
            policy: str = POLICY):
    config = harness.write_config_text(policy)
    files = []
    for doc in (message, response, tools):
        if doc is None:
            files.append(None)
            continue
        fd, path = harness.scratch_file("explain-", ".json")
        with open(fd, "w") as f:
            json.dump(doc, f)
        files.append(str(path))
    cmd = [str(harness.mcpgate_bin()), "explain", "--config", str(config), *args]
    if files[2]:
        cmd += ["--tools", files[2]]
    if files[1]:
        cmd += ["--response", files[1]]
    cmd.append(files[0])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def call(tool: str, arguments: dict) -> dict:
    return {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}


def test_a_passing_message_lists_every_filter_and_exits_0():
    r = explain(message=call("echo", {"message": "hi"}))
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("envelope", "era", "access", "tool-schema", "path_traversal", "ssrf", "init_gate"):
        assert f"  {name}" in r.stdout and "pass" in r.stdout
    assert "passed: forwarded upstream" in r.stdout


def test_a_refusal_names_the_filter_and_rule_and_prints_the_wire_answer():
    r = explain(message={"jsonrpc": "2.0", "id": 4, "method": "resources/read",
                         "params": {"uri": "file:///srv/../etc/passwd"}})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "path_traversal   REFUSED: rule dot-dot-segment at params.uri" in r.stdout
    assert "refused: HTTP 400 JSON-RPC -32602" in r.stdout
    answer = json.loads(r.stdout.strip().splitlines()[-1])
    assert answer["id"] == 4 and answer["error"]["data"] == {"rule": "dot-dot-segment", "at": "params.uri"}


def test_arguments_are_checked_against_the_given_listing():
    r = explain(message=call("get-sum", {"a": "two", "b": 3}), tools=TOOLS)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "tool-schema      REFUSED: rule arguments-schema at params.arguments/a" in r.stdout
    assert explain(message=call("get-sum", {"a": 2, "b": 3}), tools=TOOLS).returncode == 0


def test_a_hidden_tool_is_concealed_and_lists_are_filtered():
    r = explain("--tenant", "alpha", message=call("get-env", {}))
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'concealed: tool "get-env" is hidden by access.rules[1]' in r.stdout
    r = explain("--tenant", "alpha", message={"jsonrpc": "2.0", "id": 6, "method": "tools/list"}, response=TOOLS)
    assert r.returncode == 0 and "response: rewritten" in r.stdout, r.stdout
    listed = json.loads(r.stdout.strip().splitlines()[-1])
    assert [t["name"] for t in listed["result"]["tools"]] == ["echo", "get-sum"]
    assert listed["result"]["nextCursor"] == "2"
    # The anonymous tenant sees everything: nothing to rewrite.
    r = explain(message={"jsonrpc": "2.0", "id": 6, "method": "tools/list"}, response=TOOLS)
    assert "response: unchanged" in r.stdout, r.stdout


def test_unusable_input_exits_2():
    r = explain("--tenant", "nobody", message=call("echo", {}))
    assert r.returncode == 2 and "no tenant named" in r.stderr


def test_results_are_held_to_the_listed_output_schema_and_their_cap():
    policy = POLICY + "[content.output_schema]\n[content.limits.tools.count]\nmax_result_bytes = 200\n"
    tools = {"jsonrpc": "2.0", "id": 6, "result": {"tools": [
        {"name": "count", "inputSchema": {"type": "object"},
         "outputSchema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}]}}

    def answer(structured, text="", id_=5):
        return {"jsonrpc": "2.0", "id": id_, "result": {"content": [{"type": "text", "text": text}],
                                                       "structuredContent": structured}}

    def outcome(response):
        r = explain(message=call("count", {}), response=response, tools=tools, policy=policy)
        assert r.returncode == 0, r.stdout + r.stderr
        lines = r.stdout.splitlines()
        at = next(i for i, x in enumerate(lines) if x.startswith("response: "))
        return lines[at], lines[at + 1] if at + 1 < len(lines) else ""

    assert outcome(answer({"n": 3}))[0] == "response: unchanged"
    line, sent = outcome(answer({"n": "three"}))
    assert line == "response: replaced (rule output-schema)", sent
    assert json.loads(sent)["error"]["data"]["pointer"] == "/n"
    line, sent = outcome(answer({"n": 3}, text="x" * 300))
    assert line == "response: replaced (rule result-too-large)", sent
    assert json.loads(sent)["error"]["data"]["limit"] == 200
    assert outcome(answer({"n": 3}, id_=9))[0] == "response: replaced (rule unsolicited-response)"
