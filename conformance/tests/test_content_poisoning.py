"""Poisoned definitions (`[content.poisoning]`) through the real binary.

The upstream is the hostile Python SDK server with `--poisoned`: besides its
clean tools it lists definitions written as published attacks write them
(Invariant Labs' <IMPORTANT> tool, instructions smuggled as Unicode tag
characters, a zero-width space, ANSI escapes hiding a sentence, orders about
the echo tool on a later page, a prompt asking for .env), two per page.
Clients: the official Python SDK (both revisions) and TypeScript SDK.
server-everything and server-filesystem list unchanged with every rule on.
The committed corpora (conformance/corpora/definitions-*.json) go through
`mcpgate explain`: every poisoned definition found, no benign one.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import anyio
import pytest

import harness
from harness import metric, records
from conftest import run_json

CLEAN_TOOLS = ["echo", "add", "pick", "rug_pull", "add_tool", "reset"]
POISONED_TOOLS = ["sidenote_add", "weather", "notes", "status", "colors", "formatter"]
KEY = "content-test-key"
CORPORA = harness.ROOT / "conformance" / "corpora"


def calls_of(path: Path, tool: str) -> int:
    return sum(1 for r in records(path) if r["method"] == "tools/call" and r["name"] == tool)


@pytest.fixture(scope="module")
def hostile():
    upstream, record = harness.start_hostile("--poisoned")
    yield upstream, record
    upstream.stop()


def gate(upstream_url: str, content: str):
    admin = harness.free_port()
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    toml = (f'[admin]\naddress = "127.0.0.1:{admin}"\n[auth]\nanonymous_tenant = "anonymous"\n'
            f'[tenants.ts]\napi_keys_sha256 = ["{digest}"]\n{content}')
    g = harness.start_mcpgate(upstream_url, extra_toml=toml, admin=admin)
    return g, admin


metrics = harness.scrape


async def listing(c) -> tuple[dict, dict]:
    """Every tool and prompt (all pages): name -> description."""
    tools, prompts, cursor = {}, {}, None
    while True:
        page = await c.list_tools(cursor=cursor)
        tools.update({t.name: t.description for t in page.tools})
        cursor = page.next_cursor
        if not cursor:
            break
    while True:
        page = await c.list_prompts(cursor=cursor)
        prompts.update({p.name: p.description for p in page.prompts})
        cursor = page.next_cursor
        if not cursor:
            break
    return tools, prompts


def test_flag_passes_everything_and_logs_each_rule(hostile):
    from mcp import Client

    upstream, _ = hostile
    g, admin = gate(upstream.url, "[content.poisoning]\naction = \"flag\"\n")

    async def run():
        async with Client(g.url, mode="legacy") as c:
            return await listing(c)

    try:
        tools, prompts = anyio.run(run)
        m = metrics(admin)
        log = g.proc.log.read_text()
    finally:
        g.stop()
    assert sorted(tools) == sorted(CLEAN_TOOLS + POISONED_TOOLS)
    assert "\u200b" in tools["notes"] and "\x1b[8m" in tools["status"], "flag must not change a definition"
    expected = {
        "sidenote_add": ["instruction-tags", "instruction-phrases", "secret-references"],
        "weather": ["invisible-characters", "instruction-phrases"],
        "notes": ["invisible-characters"],
        "status": ["terminal-escapes", "tool-shadowing"],
        "colors": ["terminal-escapes"],
        "formatter": ["tool-shadowing"],
    }
    for tool, rules in expected.items():
        for rule in rules:
            assert f'content: tool "{tool}"' in log and f"poisoning rule {rule} (flag)" in log, (tool, rule)
            assert metric(m, "mcpgate_content_findings_total", guard="poisoning", rule=rule, action="flag") >= 1
    assert 'content: prompt "review"' in log
    for clean in CLEAN_TOOLS:
        assert f'content: tool "{clean}"' not in log, f"false positive on {clean}"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_hide_and_strip_for_the_python_sdk(hostile, mode):
    from mcp import Client
    from mcp.shared.exceptions import MCPError

    upstream, record = hostile
    content = ('[content.poisoning]\naction = "hide"\n'
               '[content.poisoning.rules.invisible-characters]\naction = "strip"\n'
               '[content.poisoning.rules.terminal-escapes]\naction = "strip"\n')
    g, admin = gate(upstream.url, content)

    async def run():
        got = {}
        async with Client(g.url, mode=mode) as c:
            got["tools"], got["prompts"] = await listing(c)
            before = calls_of(record, "sidenote_add")
            # The hostile server answers an unknown tool with -32602.
            with pytest.raises(MCPError) as e:
                await c.call_tool("sidenote_add", {"a": 1, "b": 2, "sidenote": "x"})
            got["hidden_call"] = (e.value.error.code, e.value.error.message)
            got["reached"] = calls_of(record, "sidenote_add") - before
            got["notes"] = (await c.call_tool("notes", {})).content[0].text
            with pytest.raises(MCPError) as e:
                await c.get_prompt("review", {})
            got["review_error"] = e.value.error.code
        return got

    try:
        got = anyio.run(run)
        m = metrics(admin)
    finally:
        g.stop()
    # Hidden: the <IMPORTANT> tool, the smuggled and the escaped instructions
    # (a text rule hides what stripping alone would only have cleaned) and
    # the shadowing tool. Stripped: the zero-width space, the colour codes.
    assert sorted(got["tools"]) == sorted(CLEAN_TOOLS + ["notes", "colors"]), got["tools"]
    assert got["tools"]["notes"] == "Lists notes."
    assert got["tools"]["colors"] == "Shows red text."
    assert "review" not in got["prompts"] and "greet" in got["prompts"]
    # A call of a hidden tool is answered as a call of an unknown one, and
    # never reaches the server.
    assert got["reached"] == 0
    assert got["hidden_call"] == (-32602, "Unknown tool: sidenote_add"), got["hidden_call"]
    assert got["notes"] == "ran notes"
    assert got["review_error"] == -32602
    assert metric(m, "mcpgate_content_findings_total", rule="instruction-tags", action="hide") >= 1
    assert metric(m, "mcpgate_content_findings_total", rule="invisible-characters", action="strip") >= 1


def test_hide_for_the_typescript_sdk(hostile):
    upstream, record = hostile
    g, _ = gate(upstream.url, '[content.poisoning]\naction = "hide"\n')
    try:
        before = calls_of(record, "formatter")
        rc, data, err = run_json([harness.NODE22, harness.CLIENTS / "ts_governed.mjs", g.url, KEY, "formatter"])
        reached = calls_of(record, "formatter") - before
    finally:
        g.stop()
    assert rc == 0, err
    assert sorted(data["tools"]) == sorted(CLEAN_TOOLS), data["tools"]
    assert reached == 0
    call = data["call"]
    assert call.get("isError") or call.get("thrown"), call
    assert "formatter" in json.dumps(call)


def test_shadow_mode_changes_nothing(hostile):
    from mcp import Client

    upstream, record = hostile
    g, admin = gate(upstream.url, '[content.poisoning]\naction = "hide"\nmode = "shadow"\n')

    async def run():
        async with Client(g.url, mode="legacy") as c:
            tools, _ = await listing(c)
            text = (await c.call_tool("sidenote_add", {"a": 1, "b": 2})).content[0].text
            return tools, text

    try:
        tools, text = anyio.run(run)
        m = metrics(admin)
    finally:
        g.stop()
    assert sorted(tools) == sorted(CLEAN_TOOLS + POISONED_TOOLS)
    assert text == "ran sidenote_add"
    assert metric(m, "mcpgate_content_findings_total", action="shadow-hide") >= 5
    assert metric(m, "mcpgate_content_findings_total", action="hide") == 0


EVERY_RULE_HIDES = '[content.poisoning]\naction = "hide"\n'


async def full_listing(url: str) -> dict:
    from mcp import Client
    from mcp.shared.exceptions import MCPError

    out = {}
    async with Client(url, mode="legacy") as c:
        for kind in ("tools", "prompts", "resources", "resource_templates"):
            entries, cursor = [], None
            for _ in range(50):
                try:
                    page = await getattr(c, f"list_{kind}")(cursor=cursor)
                except MCPError as e:
                    assert e.error.code == -32601, e  # a kind the server does not serve
                    break
                entries += [e.model_dump(mode="json", exclude_none=True) for e in getattr(page, kind)]
                cursor = page.next_cursor
                if not cursor:
                    break
            out[kind] = entries
    return out


def test_real_servers_list_unchanged_with_every_rule_on(tmp_path):
    """server-everything (Streamable HTTP) and server-filesystem (a stdio
    worker): every definition they list passes unchanged and unflagged."""
    everything = harness.start_everything()
    root = tmp_path / "root"
    root.mkdir()
    try:
        g, admin = gate(everything.url, EVERY_RULE_HIDES)
        try:
            direct = anyio.run(full_listing, everything.url)
            through = anyio.run(full_listing, g.url)
            m = metrics(admin)
        finally:
            g.stop()
    finally:
        everything.stop()
    assert direct == through and len(direct["tools"]) >= 10
    assert metric(m, "mcpgate_content_findings_total") == 0, m

    port, admin = harness.free_port(), harness.free_port()
    command = [str(harness.NODE22), str(harness.SERVER_FILESYSTEM), str(root)]
    toml = (f'[listen]\naddress = "127.0.0.1:{port}"\n[admin]\naddress = "127.0.0.1:{admin}"\n'
            f'[upstreams.default]\ncommand = {json.dumps(command)}\nenv_passthrough = ["PATH", "HOME"]\n'
            f'{EVERY_RULE_HIDES}')
    g = harness.start_mcpgate_with(harness.write_config_text(toml), port, workers=1, admin=admin)
    try:
        through = anyio.run(full_listing, g.url)
        m = metrics(admin)
    finally:
        g.stop()
    assert len(through["tools"]) >= 10
    assert metric(m, "mcpgate_content_findings_total") == 0, m


# --- the corpora, through `mcpgate explain` ----------------------------------

KINDS = {"tool": ("tools/list", "tools"), "prompt": ("prompts/list", "prompts"),
         "resource": ("resources/list", "resources"),
         "resourceTemplate": ("resources/templates/list", "resourceTemplates")}
NOUNS = {"tool": "tool", "prompt": "prompt", "resource": "resource", "resourceTemplate": "resource template"}


def explain_listing(kind: str, entries: list[dict], tools: list[dict] | None = None) -> dict[str, set[str]]:
    """`mcpgate explain` of one listing answer (with `tools` as what the
    server lists besides, `--tools`): the name of each entry a rule fired
    on, as Rust's Debug writes it, -> those rules."""
    method, member = KINDS[kind]
    config = harness.write_config_text('[upstream]\nurl = "http://127.0.0.1:9/mcp"\n[content.poisoning]\n')
    paths = []
    for doc in ({"jsonrpc": "2.0", "id": 1, "method": method},
                {"jsonrpc": "2.0", "id": 1, "result": {member: entries}},
                {"jsonrpc": "2.0", "id": 1, "result": {"tools": tools or []}}):
        fd, path = harness.scratch_file("corpus-", ".json")
        with open(fd, "w") as f:
            json.dump(doc, f)
        paths.append(str(path))
    r = subprocess.run([str(harness.mcpgate_bin()), "explain", "--config", str(config),
                        "--tools", paths[2], "--response", paths[1], paths[0]],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    fired: dict[str, set[str]] = {}
    line_re = re.compile(r'^content: ' + re.escape(NOUNS[kind]) + r' "((?:[^"\\]|\\.)*)" .*: poisoning rule (\S+) \((\S+)\)$')
    for line in r.stdout.splitlines():
        m = line_re.match(line)
        if m:
            fired.setdefault(m.group(1), set()).add(m.group(2))
    return fired


def corpus(name: str) -> dict:
    return json.loads((CORPORA / f"definitions-{name}.json").read_text())


def test_every_poisoned_corpus_definition_is_found(capsys):
    data = corpus("poisoned")
    found, expected_rules, matched_rules = 0, 0, 0
    missed, unfired = [], []
    for e in data["entries"]:
        # The tools listed beside it: on the same page for a tool, listed
        # before for a prompt or resource (what tool-shadowing knows).
        stubs = [{"name": n, "description": "A tool.", "inputSchema": {"type": "object"}}
                 for n in e.get("listed_with", [])]
        page = [e["definition"], *stubs] if e["kind"] == "tool" else [e["definition"]]
        fired = explain_listing(e["kind"], page, tools=stubs)
        # Every finding but a stub's is the entry's (its name may need escapes).
        stub_names = {st["name"] for st in stubs}
        rules = set().union(*[r for name, r in fired.items() if name not in stub_names])
        assert not any(name in stub_names for name in fired), f"{e['id']}: a stub was flagged: {fired}"
        expected_rules += len(e["expect"])
        matched_rules += len(rules & set(e["expect"]))
        unfired += [f"{e['id']}: {r}" for r in sorted(set(e["expect"]) - rules)]
        if rules:
            found += 1
        else:
            missed.append(e["id"])
    total = len(data["entries"])
    with capsys.disabled():
        print(f"\npoisoned corpus: detected {found}/{total} definitions; expected rules fired "
              f"{matched_rules}/{expected_rules}" + "".join(f"\n  expected, not fired: {u}" for u in unfired))
    assert not missed, f"not detected: {missed}"


def test_no_benign_corpus_definition_is_flagged(capsys):
    data = corpus("benign")
    by_source: dict[tuple[str, str], list[dict]] = {}
    for e in data["entries"]:
        by_source.setdefault((e["source"], e["kind"]), []).append(e["definition"])
    flagged = {}
    for (source, kind), entries in by_source.items():
        tools = by_source.get((source, "tool"), []) if kind != "tool" else None
        for name, rules in explain_listing(kind, entries, tools=tools).items():
            flagged[f"{source} {kind} {name}"] = sorted(rules)
    total = len(data["entries"])
    with capsys.disabled():
        print(f"\nbenign corpus: false positives {len(flagged)}/{total} definitions "
              f"from {len({s for s, _ in by_source})} servers")
    assert not flagged, flagged
