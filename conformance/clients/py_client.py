#!/usr/bin/env python3
"""Real-client check with the official Python SDK (PyPI mcp 2.3.0, `mcp.Client`).

    .cache/venv/bin/python conformance/clients/py_client.py URL [--mode auto|legacy]

Connects (auto: `server/discover` probe with fallback to `initialize`; legacy: the
initialize handshake), lists tools, then calls whichever of these the upstream has:
  simple     test_simple_text | echo                              (reference | everything, demo)
  progress   test_tool_with_progress | trigger-long-running-operation | progress
  sampling   test_sampling | trigger-sampling-request | sample    (server -> client request,
             or an input_required round trip on 2026-07-28)
  elicitation test_elicitation | trigger-elicitation-request
Prints a JSON summary on stdout; exits 1 on any failure (an expected tool missing
from every candidate list counts as a failure only for `simple`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from mcp import Client
from mcp.types import CreateMessageResult, ElicitResult, ListRootsResult, Root, TextContent

SAMPLED = "sampled-by-py-client"
ECHO = "hello through mcpgate"

SIMPLE = ["test_simple_text", "echo"]
PROGRESS = {
    "test_tool_with_progress": {},
    "trigger-long-running-operation": {"duration": 1, "steps": 3},
    "progress": {"steps": 3, "interval_ms": 20},
}
SAMPLING = ["test_sampling", "trigger-sampling-request", "sample"]
ELICITATION = {"test_elicitation": {"message": "Who are you?"}, "trigger-elicitation-request": {}, "elicit": {"message": "Who are you?"}}


class Calls:
    sampling = 0
    elicitation = 0
    roots = 0


async def on_sampling(context: Any, params: Any) -> CreateMessageResult:
    Calls.sampling += 1
    return CreateMessageResult(
        role="assistant", content=TextContent(type="text", text=SAMPLED), model="py-client-model", stop_reason="endTurn"
    )


async def on_elicitation(context: Any, params: Any) -> ElicitResult:
    Calls.elicitation += 1
    schema = getattr(params, "requested_schema", None) or {}
    content: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        if "default" in prop:
            content[name] = prop["default"]
        elif kind == "boolean":
            content[name] = True
        elif kind in ("integer", "number"):
            content[name] = 1
        elif kind == "string":
            content[name] = prop.get("enum", ["py-client"])[0]
    return ElicitResult(action="accept", content=content)


async def on_roots(context: Any) -> ListRootsResult:
    Calls.roots += 1
    return ListRootsResult(roots=[Root(uri="file:///tmp/py-client", name="py-client")])


def texts(result: Any) -> list[str]:
    return [c.text for c in result.content if getattr(c, "type", None) == "text"]


def args_for_echo(tool: Any) -> dict[str, Any]:
    props = (tool.input_schema or {}).get("properties", {})
    key = "message" if "message" in props else "text"
    return {key: ECHO}


async def run(url: str, mode: str) -> dict[str, Any]:
    out: dict[str, Any] = {"url": url, "mode": mode, "errors": []}
    async with Client(
        url,
        mode=mode,
        sampling_callback=on_sampling,
        elicitation_callback=on_elicitation,
        list_roots_callback=on_roots,
        read_timeout_seconds=30,
    ) as client:
        out["protocol_version"] = client.protocol_version
        info = client.server_info
        out["server"] = info.name if info else None
        tools = {t.name: t for t in (await client.list_tools()).tools}
        out["tools"] = sorted(tools)

        # simple call
        name = next((n for n in SIMPLE if n in tools), None)
        if name is None:
            out["errors"].append(f"no simple tool among {SIMPLE}")
        else:
            args = {} if name == "test_simple_text" else args_for_echo(tools[name])
            res = await client.call_tool(name, args)
            out["simple"] = {"tool": name, "text": texts(res), "is_error": bool(res.is_error)}
            if res.is_error or not texts(res):
                out["errors"].append(f"{name} failed: {res.content}")

        # progress notifications
        name = next((n for n in PROGRESS if n in tools), None)
        if name:
            seen: list[float] = []

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                seen.append(progress)

            res = await client.call_tool(name, PROGRESS[name], progress_callback=on_progress)
            out["progress"] = {"tool": name, "notifications": len(seen), "values": seen, "text": texts(res)}
            if res.is_error or not seen:
                out["errors"].append(f"{name}: {len(seen)} progress notifications, is_error={res.is_error}")
            if seen != sorted(seen):
                out["errors"].append(f"{name}: progress not increasing: {seen}")

        # server -> client sampling (legacy: request on the stream; modern: input_required)
        name = next((n for n in SAMPLING if n in tools), None)
        if name:
            before = Calls.sampling
            res = await client.call_tool(name, {"prompt": "Say hi"})
            out["sampling"] = {"tool": name, "callback_calls": Calls.sampling - before, "text": texts(res)}
            if res.is_error or Calls.sampling == before or not any(SAMPLED in t for t in texts(res)):
                out["errors"].append(f"{name}: sampling round trip failed: {texts(res)}")

        name = next((n for n in ELICITATION if n in tools), None)
        if name:
            before = Calls.elicitation
            res = await client.call_tool(name, ELICITATION[name])
            out["elicitation"] = {"tool": name, "callback_calls": Calls.elicitation - before, "text": texts(res)}
            if res.is_error or Calls.elicitation == before or not any("accept" in t for t in texts(res)):
                out["errors"].append(f"{name}: elicitation round trip failed: {texts(res)}")
    out["ok"] = not out["errors"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--mode", default="auto", choices=("auto", "legacy"))
    ap.add_argument("--timeout", type=float, default=60.0, help="overall seconds")
    args = ap.parse_args()
    try:
        out = asyncio.run(asyncio.wait_for(run(args.url, args.mode), args.timeout))
    except BaseException as e:  # noqa: BLE001 - report anything, incl. ExceptionGroup
        out = {"url": args.url, "mode": args.mode, "ok": False, "errors": [f"{type(e).__name__}: {e!r}"[:2000]]}
    print(json.dumps(out, indent=2))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
