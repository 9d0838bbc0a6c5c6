#!/usr/bin/env python3
"""An MCP server over stdio (PyPI `mcp` 2.3.0) for tests of mcpgate's stdio
workers: it reports what it was started with, and misbehaves on request.

    .cache/venv/bin/python conformance/upstreams/stdio_server.py [--name NAME]

Tools:
- `echo {text}`: the text back; `add {a, b}`: the sum (integers).
- `whoami`: JSON of what the process sees: pid, process group, environment
  variable names, the descriptors open when it started, and the limits of
  `/proc/self/limits` mcpgate sets (address space, CPU, open files, processes).
- `progress {steps}`: reports progress `steps` times, then answers.
- `sample {prompt}`: asks the client for an LLM sample (`sampling/createMessage`)
  and answers with its text.
- `elicit {message}`: asks the client for input (`elicitation/create`) and
  answers with the action and content.
- `slow {seconds}`: sleeps, then answers (cancellation: a cancelled call never
  answers; the count of cancellations is in `whoami`).
- `crash {code}`: exits at once with `code`, without answering.
- `garbage`: writes a line that is not JSON-RPC to stdout.
- `long_line {bytes}`: writes one line of that many bytes to stdout.
- `hang`: blocks the whole process (no answer, no further reading).
- `log_stderr {lines}`: writes that many lines to stderr.
- `try_write {path}`: writes a file; answers `written` or the error.
- `try_connect {port}`: opens a TCP connection to 127.0.0.1:port; answers
  `connected` or the error (a sandbox without network refuses it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import SamplingMessage, TextContent

def open_fds() -> dict[int, str]:
    """The process's open descriptors and what they point to (without the
    one listing them)."""
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass  # the directory listing's own descriptor, closed by now
    return {fd: t for fd, t in out.items() if not t.startswith("/proc/")}


# What the process was started with, before the SDK opened anything.
START_FDS = open_fds()
# The protocol pipe itself: the SDK diverts fd 1 to stderr while it serves
# (stray prints must not corrupt the wire); misbehaving tools write here.
WIRE = os.dup(1)
server = MCPServer("mcpgate-stdio-test-server", version="0.1.0")
CANCELLED = {"count": 0}


def limits() -> dict[str, str]:
    wanted = {"Max address space", "Max cpu time", "Max open files", "Max processes"}
    out = {}
    with open("/proc/self/limits") as f:
        for line in f:
            for name in wanted:
                if line.startswith(name):
                    out[name] = line[len(name):].split()[0]
    return out


@server.tool(description="Echoes the text back.")
def echo(text: str) -> str:
    return text


@server.tool(description="Adds two integers.")
def add(a: int, b: int) -> str:
    return str(a + b)


@server.tool(description="What the process sees of its environment, descriptors and limits.")
def whoami() -> str:
    return json.dumps({
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "env": sorted(os.environ),
        "start_fds": sorted(START_FDS),
        "limits": limits(),
        "cancelled": CANCELLED["count"],
    })


@server.tool(description="Reports progress, then answers.")
async def progress(steps: int, ctx: Context) -> str:
    for i in range(steps):
        await ctx.report_progress(i + 1, steps, f"step {i + 1}")
        await anyio.sleep(0.05)
    return f"done {steps}"


@server.tool(description="Asks the client for an LLM sample.")
async def sample(prompt: str, ctx: Context) -> str:
    msg = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
    result = await ctx.session.create_message(messages=[msg], max_tokens=50, related_request_id=ctx.request_id)
    return f"sampled: {getattr(result.content, 'text', '')}"


@server.tool(description="Asks the client for input.")
async def elicit(message: str, ctx: Context) -> str:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    result = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
    return f"elicited: {result.action} {json.dumps(result.content)}"


@server.tool(description="Sleeps, then answers.")
async def slow(seconds: float) -> str:
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        CANCELLED["count"] += 1
        raise
    return "slept"


@server.tool(description="Exits at once.")
def crash(code: int = 3) -> str:
    sys.stdout.flush()
    os._exit(code)


@server.tool(description="Writes garbage to stdout.")
def garbage() -> str:
    os.write(WIRE, b"this is not JSON-RPC\n")
    return "wrote garbage"


@server.tool(description="Writes one very long line to stdout.")
def long_line(bytes: int) -> str:
    line = b'{"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": "' + b"x" * bytes + b'"}}\n'
    while line:
        line = line[os.write(WIRE, line):]
    return "wrote a long line"


@server.tool(description="Blocks the whole process.")
async def hang() -> str:
    # Blocking inside the event loop: nothing else is read or answered.
    time.sleep(3600)
    return "woke"


@server.tool(description="Writes lines to stderr.")
def log_stderr(lines: int) -> str:
    for i in range(lines):
        print(f"stderr line {i}", file=sys.stderr, flush=True)
    return f"wrote {lines}"


@server.tool(description="Writes a file.")
def try_write(path: str) -> str:
    try:
        with open(path, "w") as f:
            f.write("probe\n")
        return "written"
    except OSError as e:
        return f"error: {e.strerror}"


@server.tool(description="Opens a TCP connection to 127.0.0.1.")
def try_connect(port: int) -> str:
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return "connected"
    except OSError as e:
        return f"error: {e.strerror or e}"


@server.prompt(description="Greets someone.")
def greet(name: str) -> str:
    return f"Hello, {name}!"


@server.resource("test://static", description="A static resource.")
def static() -> str:
    return "static content"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="stdio-test", help="a marker for the command line (tests find leftovers by it)")
    ap.parse_args()
    server.run("stdio")


if __name__ == "__main__":
    main()
