#!/usr/bin/env python3
"""A deliberately hostile MCP upstream written on raw HTTP/1.1 (asyncio), for
what no SDK server will do: answer requests nobody sent, answer twice, send
oversized results and endless streams, and cut its bytes wherever it likes.

    .cache/venv/bin/python conformance/upstreams/raw_hostile_server.py --port N \
        [--record FILE]

It speaks 2025-11-25 only (one session per initialize, `Mcp-Session-Id`), on
any path, with keep-alive. Every JSON-RPC message it receives (requests and
notifications alike) is appended to `--record` as one JSON line
`{"method", "id", "params"}` (and `"trace_headers"`: the W3C `traceparent`
and `tracestate` headers it got, if any), flushed at once; when a stream it is writing is
cut off by its peer it appends `{"method": "(stream closed by peer)",
"tool": NAME, "sent": EVENTS}`.

Tools (`tools/call` params.name; arguments optional):
  echo          JSON body: the `text` argument back.
  stray_sse     SSE: an answer to id "not-yours-1", then the real answer
                ("real answer"), then a second answer to the same id
                ("second answer").
  stray_json    JSON body answering id 424242 instead of the request's.
  big           JSON body whose text is `bytes` (default 65536) bytes of "x".
  big_stream    SSE: one progress notification, then the result, whose text is
                `bytes` (default 65536) bytes of "x".
  chatty        SSE: `events` (default 50) notifications/message, then the
                result "chatty done".
  endless       SSE: a notifications/message every 10 ms until the peer
                closes the stream (or 30 s pass), then the result.
  slow          JSON body, after `ms` (default 1000) milliseconds: `bytes`
                (default 10) bytes of "x".
  split_secret  SSE: a notifications/message whose data carries an AWS access
                key id, then the result, whose text carries a GitHub token and
                a private key block. The JSON is written with line breaks
                between its tokens, so each event has several `data:` lines,
                and every event goes out in 7-byte writes 2 ms apart.
Anything else: JSON-RPC error -32602. tools/list lists the tools above, each
`{"type": "object"}`.

Binds 127.0.0.1 only. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid

VERSION = "2025-11-25"
AWS_KEY = "AKIA" + "QYLPMN5HFIQR7BXA"
GITHUB_TOKEN = "ghp_" + "x7Hk2mP9qR4tW8yZ3bN6cV1dF5gJ0sLaE2uI"
PRIVATE_KEY = ("-----BEGIN RSA PRIVATE KEY-----\n"
               "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
               "-----END RSA PRIVATE KEY-----")
TOOLS = ["echo", "stray_sse", "stray_json", "big", "big_stream", "chatty", "endless", "slow", "split_secret"]

record_path: str | None = None


def record(entry: dict) -> None:
    if record_path:
        with open(record_path, "a") as f:
            f.write(json.dumps(entry) + "\n")


def result(id_, text: str) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "result": {"content": [{"type": "text", "text": text}], "isError": False}}


def log(text) -> dict:
    return {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": text}}


def event(msg: dict, multiline: bool = False) -> bytes:
    data = json.dumps(msg, indent=1) if multiline else json.dumps(msg)
    return b"event: message\n" + b"".join(b"data: " + line.encode() + b"\n" for line in data.split("\n")) + b"\n"


class Closed(Exception):
    pass


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.r, self.w = reader, writer

    async def send(self, data: bytes) -> None:
        try:
            self.w.write(data)
            await self.w.drain()
        except (ConnectionError, OSError) as e:
            raise Closed() from e
        if self.w.is_closing():
            raise Closed()

    async def head(self, status: int, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} {'OK' if status < 300 else 'Error'}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def json(self, msg: dict, sid: str | None = None) -> None:
        body = json.dumps(msg).encode()
        headers = {"content-type": "application/json", "content-length": str(len(body))}
        if sid:
            headers["mcp-session-id"] = sid
        await self.head(200, headers)
        await self.send(body)

    async def sse_start(self) -> None:
        await self.head(200, {"content-type": "text/event-stream", "cache-control": "no-cache",
                              "transfer-encoding": "chunked"})

    async def chunk(self, data: bytes) -> None:
        await self.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    async def sse_end(self) -> None:
        await self.send(b"0\r\n\r\n")


async def call(conn: Conn, id_, name: str, args: dict) -> None:
    if name == "echo":
        return await conn.json(result(id_, str(args.get("text", ""))))
    if name == "stray_json":
        return await conn.json(result(424242, "wrong id"))
    if name == "big":
        return await conn.json(result(id_, "x" * int(args.get("bytes", 65536))))
    if name == "slow":
        await asyncio.sleep(int(args.get("ms", 1000)) / 1000)
        return await conn.json(result(id_, "x" * int(args.get("bytes", 10))))
    await conn.sse_start()
    sent = 0
    try:
        if name == "stray_sse":
            for msg in (result("not-yours-1", "stray"), result(id_, "real answer"), result(id_, "second answer")):
                await conn.chunk(event(msg))
        elif name == "big_stream":
            progress = {"jsonrpc": "2.0", "method": "notifications/progress",
                        "params": {"progressToken": "big", "progress": 1}}
            await conn.chunk(event(progress))
            await conn.chunk(event(result(id_, "x" * int(args.get("bytes", 65536)))))
        elif name == "chatty":
            for i in range(int(args.get("events", 50))):
                await conn.chunk(event(log(f"step {i}")))
                sent += 1
            await conn.chunk(event(result(id_, "chatty done")))
        elif name == "endless":
            loop = asyncio.get_running_loop()
            end = loop.time() + 30
            while loop.time() < end:
                await conn.chunk(event(log(f"tick {sent}")))
                sent += 1
                await asyncio.sleep(0.01)
            await conn.chunk(event(result(id_, "endless done")))
        elif name == "split_secret":
            stream = event(log({"note": "rotating", "key": AWS_KEY}), multiline=True)
            stream += event(result(id_, f"token {GITHUB_TOKEN}\n{PRIVATE_KEY}\nend"), multiline=True)
            for i in range(0, len(stream), 7):
                await conn.chunk(stream[i:i + 7])
                await asyncio.sleep(0.002)
        else:
            err = {"jsonrpc": "2.0", "id": id_, "error": {"code": -32602, "message": f"Unknown tool: {name}"}}
            await conn.chunk(event(err))
        await conn.sse_end()
    except Closed:
        record({"method": "(stream closed by peer)", "tool": name, "sent": sent})
        raise


async def handle(conn: Conn, method: str, headers: dict[str, str], body: bytes) -> None:
    if method == "DELETE":
        await conn.head(200, {"content-length": "0"})
        return
    if method != "POST":
        await conn.head(405, {"content-length": "0", "allow": "POST, DELETE"})
        return
    msg = json.loads(body)
    entry = {"method": msg.get("method"), "id": msg.get("id"), "params": msg.get("params")}
    trace = {k: headers[k] for k in ("traceparent", "tracestate") if k in headers}
    if trace:
        entry["trace_headers"] = trace
    record(entry)
    if "id" not in msg:
        await conn.head(202, {"content-length": "0"})
        return
    id_, m, params = msg["id"], msg.get("method"), msg.get("params") or {}
    if m == "initialize":
        init = {"jsonrpc": "2.0", "id": id_, "result": {
            "protocolVersion": VERSION, "capabilities": {"tools": {}, "logging": {}},
            "serverInfo": {"name": "raw-hostile", "version": "1.0.0"}}}
        return await conn.json(init, sid=uuid.uuid4().hex)
    if m == "tools/list":
        tools = [{"name": t, "description": f"The {t} behaviour.", "inputSchema": {"type": "object"}} for t in TOOLS]
        return await conn.json({"jsonrpc": "2.0", "id": id_, "result": {"tools": tools}})
    if m == "tools/call":
        return await call(conn, id_, params.get("name", ""), params.get("arguments") or {})
    if m == "ping":
        return await conn.json({"jsonrpc": "2.0", "id": id_, "result": {}})
    await conn.json({"jsonrpc": "2.0", "id": id_, "error": {"code": -32601, "message": f"Method not found: {m}"}})


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = Conn(reader, writer)
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            method = line.split(b" ", 1)[0].decode()
            headers: dict[str, str] = {}
            while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                k, _, v = h.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            if "chunked" in headers.get("transfer-encoding", ""):
                body = b""
                while (size := int((await reader.readline()).strip() or b"0", 16)) > 0:
                    body += await reader.readexactly(size)
                    await reader.readline()
                await reader.readline()
            else:
                body = await reader.readexactly(int(headers.get("content-length", "0")))
            await handle(conn, method, headers, body)
    except (Closed, ConnectionError, asyncio.IncompleteReadError):
        pass
    except Exception as e:  # a bug here must show in the test's log
        print(f"raw-hostile: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    finally:
        writer.close()


async def main() -> None:
    global record_path
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--record")
    a = ap.parse_args()
    record_path = a.record
    server = await asyncio.start_server(serve, "127.0.0.1", a.port)
    print(f"raw-hostile listening on 127.0.0.1:{a.port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
