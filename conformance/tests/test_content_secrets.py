"""Secrets and personal data in results and arguments (`[content.secrets]`,
`[content.pii]`) through the real binary.

The upstream is the hostile Python SDK server with `--leaky`: leak_text
returns an AWS access key id, a GitHub token and a private key block as
text, leak_structured a GitHub token in `structuredContent`, leak_pii an
e-mail address and a card number; echo returns what it is sent, and the
server records every request (what reached it). Clients: the official
Python SDK in both revisions, raw HTTP where the wire answer matters.
server-everything's and server-filesystem's real results pass unaltered
with every rule on.
"""

from __future__ import annotations

import hashlib
import json
import re

import anyio
import pytest

import harness
from harness import metric, records

# The hostile server's values, assembled as it assembles them.
AWS_KEY = "AKIA" + "QYLPMN5HFIQR7BXA"
GITHUB_TOKEN = "ghp_" + "x7Hk2mP9qR4tW8yZ3bN6cV1dF5gJ0sLaE2uI"
EMAIL = "jane.doe" + "@example.org"
CARD = "4111 1111 " + "1111 1111"


@pytest.fixture(scope="module")
def hostile():
    upstream, record = harness.start_hostile("--leaky")
    yield upstream, record
    upstream.stop()


gate = harness.start_mcpgate_admin
metrics = harness.scrape


calls = harness.sdk_calls


def text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_secrets_in_results_are_redacted(hostile, mode):
    upstream, _ = hostile
    g, admin = gate(upstream.url, "[content.secrets]\n")
    try:
        leak_text, leak_structured, leak_pii = anyio.run(
            calls, g.url, mode, ("leak_text", {}), ("leak_structured", {}), ("leak_pii", {}))
        m = metrics(admin)
        log = g.proc.log.read_text()
    finally:
        g.stop()
    t = text(leak_text)
    assert "[REDACTED:aws-access-key]" in t and "[REDACTED:github-token]" in t and "[REDACTED:private-key]" in t, t
    assert AWS_KEY not in t and GITHUB_TOKEN not in t and "PRIVATE KEY" not in t and t.endswith("\nend")
    assert leak_structured.structured_content == {"token": "[REDACTED:github-token]", "owner": "platform team"}
    assert GITHUB_TOKEN not in text(leak_structured)
    # Personal data is opt-in.
    assert EMAIL in text(leak_pii) and CARD in text(leak_pii)
    for rule in ("aws-access-key", "github-token", "private-key"):
        assert metric(m, "mcpgate_content_findings_total", guard="secrets", rule=rule, action="redact") >= 1
    assert 'content: tool "leak_text", result/content/0/text: secrets rule github-token (redact)' in log
    assert GITHUB_TOKEN not in log and AWS_KEY not in log, "a secret reached the log"


def test_block_replaces_the_answer_and_allowlists_let_it_through(hostile):
    upstream, _ = hostile
    g, admin = gate(upstream.url, '[content.secrets]\naction = "block"\n'
                                  '[content.secrets.rules.github-token]\nallow_tools = ["leak_structured"]\n')
    try:
        blocked, allowed = anyio.run(calls, g.url, "legacy", ("leak_text", {}), ("leak_structured", {}))
        m = metrics(admin)
    finally:
        g.stop()
    from mcp.shared.exceptions import MCPError
    assert isinstance(blocked, MCPError) and blocked.error.code == -32017, blocked
    assert AWS_KEY not in str(blocked) and GITHUB_TOKEN not in str(blocked)
    assert allowed.structured_content["token"] == GITHUB_TOKEN
    assert metric(m, "mcpgate_content_findings_total", guard="secrets", action="block") >= 1


def test_personal_data_when_opted_in(hostile):
    upstream, _ = hostile
    g, _ = gate(upstream.url, "[content.pii]\n[content.pii.rules.card-number]\naction = \"block\"\n"
                              "[content.pii.rules.email]\nallow_values = [\"nobody@example.org\"]\n")
    g2, _ = gate(upstream.url, "[content.pii]\n")
    try:
        (blocked,) = anyio.run(calls, g.url, "legacy", ("leak_pii", {}))
        (redacted,) = anyio.run(calls, g2.url, "legacy", ("leak_pii", {}))
    finally:
        g.stop()
        g2.stop()
    from mcp.shared.exceptions import MCPError
    assert isinstance(blocked, MCPError) and blocked.error.code == -32017
    assert text(redacted) == "customer [REDACTED:email], card [REDACTED:card-number], notes: none"


def test_secrets_in_arguments(hostile):
    """With in_arguments, a secret a client sends out through a tool is
    redacted before the server sees it, or the call refused."""
    upstream, record = hostile
    payload = f"please store {GITHUB_TOKEN} for me"
    g, _ = gate(upstream.url, "[content.secrets]\nin_arguments = true\n")
    try:
        (echoed,) = anyio.run(calls, g.url, "legacy", ("echo", {"text": payload}))
    finally:
        g.stop()
    assert text(echoed) == "please store [REDACTED:github-token] for me"
    sent = [r for r in records(record) if r["method"] == "tools/call" and r["name"] == "echo"]
    assert sent and sent[-1]["arguments"] == {"text": "please store [REDACTED:github-token] for me"}
    assert not any(GITHUB_TOKEN in json.dumps(r) for r in records(record)), "the secret reached the server"

    g, _ = gate(upstream.url, '[content.secrets]\nin_arguments = true\naction = "block"\n')
    before = len(records(record))
    try:
        (refused,) = anyio.run(calls, g.url, "legacy", ("echo", {"text": payload}))
    finally:
        g.stop()
    from mcp.shared.exceptions import MCPError
    assert isinstance(refused, MCPError) and refused.error.code == -32602
    assert refused.error.data["rule"] == "github-token" and refused.error.data["at"] == "params.arguments/text"
    assert not any(r["method"] == "tools/call" for r in records(record)[before:])


EVERY_RULE = '[content.secrets]\nin_arguments = true\n[content.pii]\nin_arguments = true\n'
EVERYTHING_CALLS = [
    ("echo", {"message": "hello from the content guard test"}),
    ("get-sum", {"a": 19, "b": 23}),
    ("get-annotated-message", {"messageType": "success", "includeImage": False}),
    ("get-structured-content", {"location": "Chicago"}),
    ("get-resource-links", {"count": 5}),
    ("get-resource-reference", {"resourceType": "Text", "resourceId": 3}),
    ("get-tiny-image", {}),
]


async def dump(url: str, tool_calls: list, reads: list[str]) -> list:
    from mcp import Client

    out = []
    async with Client(url, mode="legacy") as c:
        await c.list_tools()
        for name, args in tool_calls:
            r = await c.call_tool(name, args)
            out.append(r.model_dump(mode="json", exclude_none=True))
        for uri in reads:
            r = await c.read_resource(uri)
            out.append(r.model_dump(mode="json", exclude_none=True))
    return out


def test_real_results_pass_unaltered_with_every_rule_on(tmp_path):
    everything = harness.start_everything()
    try:
        g, admin = gate(everything.url, EVERY_RULE)
        try:
            direct = anyio.run(dump, everything.url, EVERYTHING_CALLS, [])
            through = anyio.run(dump, g.url, EVERYTHING_CALLS, [])
            m = metrics(admin)
        finally:
            g.stop()
    finally:
        everything.stop()
    # server-everything stamps dynamic resources with the time of day.
    stamp = re.compile(r"\d{1,2}:\d{2}:\d{2} [AP]M")
    assert stamp.sub("<time>", json.dumps(direct)) == stamp.sub("<time>", json.dumps(through))
    assert "[REDACTED:" not in json.dumps(through)
    assert metric(m, "mcpgate_content_findings_total") == 0, m

    # server-filesystem (a stdio worker) reading this repository's own
    # documents and listing its folders.
    root = harness.ROOT
    files = ["README.md", "config.example.toml", "Makefile", "filters/src/lib.rs", "conformance/harness.py"]
    fs_calls = [("read_text_file", {"path": str(root / f)}) for f in files]
    fs_calls += [("list_directory", {"path": str(root / d)}) for d in ("", "proxy/src", "conformance/tests")]
    fs_calls += [("get_file_info", {"path": str(root / "README.md")})]
    port, admin = harness.free_port(), harness.free_port()
    command = [str(harness.NODE22), str(harness.SERVER_FILESYSTEM), str(root)]
    toml = (f'[listen]\naddress = "127.0.0.1:{port}"\n[admin]\naddress = "127.0.0.1:{admin}"\n'
            f'[upstreams.default]\ncommand = {json.dumps(command)}\nenv_passthrough = ["PATH", "HOME"]\n'
            f'{EVERY_RULE}')
    g = harness.start_mcpgate_with(harness.write_config_text(toml), port, workers=1, admin=admin)
    try:
        through = anyio.run(dump, g.url, fs_calls, [])
        m = metrics(admin)
    finally:
        g.stop()
    # Each file arrives exactly as it is on disk.
    for f, r in zip(files, through):
        got = "".join(c.get("text", "") for c in r.get("content", []))
        assert got == (root / f).read_text(), f
    assert metric(m, "mcpgate_content_findings_total") == 0, m


def test_structured_results_are_held_to_their_output_schema(hostile):
    """[content.output_schema]: a result whose structuredContent breaks the
    tool's outputSchema is replaced by -32017 (block) or passes, counted
    (flag). Raw HTTP: the SDK client would validate it itself."""
    from raw_session import RawSession

    upstream, _ = hostile
    answers = {}
    for action in ("block", "flag"):
        g, admin = gate(upstream.url, f'[content.output_schema]\naction = "{action}"\n')
        try:
            s = RawSession(g.url)
            s.list_all("tools/list", "tools")
            answers[action] = {t: s.call("tools/call", {"name": t, "arguments": {}})
                               for t in ("contract_ok", "contract_broken", "leak_text")}
            answers[action + "-metrics"] = metrics(admin)
        finally:
            g.stop()
    block = answers["block"]
    assert block["contract_ok"]["result"]["structuredContent"] == {"n": 3}
    err = block["contract_broken"]["error"]
    assert err["code"] == -32017 and err["data"]["rule"] == "output-schema", err
    assert err["data"]["pointer"] == "/n" and err["data"]["keyword"] == "type" and "three" not in json.dumps(err)
    assert "result" in block["leak_text"], "a tool without outputSchema is not judged"
    assert answers["flag"]["contract_broken"]["result"]["structuredContent"] == {"n": "three"}
    for action in ("block", "flag"):
        assert metric(answers[action + "-metrics"], "mcpgate_content_findings_total",
                      guard="output-schema", rule="output-schema", action=action) == 1
