"""A raw 2025-11-25 session over HTTP (httpx), for tests that must see the
exact JSON-RPC messages a gate answers: the JSON body, or every `data:` of an
SSE answer."""

from __future__ import annotations

import json
import re

import httpx

from negative.cases import LEGACY, POST_HEADERS, init, note, req


def messages(r: httpx.Response) -> list[dict]:
    """The JSON-RPC messages of a JSON or SSE answer."""
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        out = []
        for event in re.split(r"\r?\n\r?\n", r.text):
            data = "\n".join(line[5:].lstrip(" ") for line in event.splitlines() if line.startswith("data:"))
            if data.strip():
                out.append(json.loads(data))
        return out
    return [r.json()]


class RawSession:
    """`initialize` + `notifications/initialized` at `url`, as the caller of
    `api_key` (none: anonymous); then requests on the session."""

    def __init__(self, url: str, api_key: str | None = None, http: httpx.Client | None = None):
        self.url = url
        self.api_key = api_key
        self.http = http or httpx.Client(timeout=30)
        r = self.post(init(), in_session=False)
        assert r.status_code == 200, r.text
        self.init_result = messages(r)[-1]["result"]
        self.sid = r.headers["mcp-session-id"]
        assert self.post(note("notifications/initialized")).status_code == 202
        self.next_id = 10

    def headers(self, in_session: bool = True) -> dict[str, str]:
        h = dict(POST_HEADERS)
        if self.api_key:
            h["authorization"] = f"Bearer {self.api_key}"
        if in_session:
            h["mcp-protocol-version"] = LEGACY
            h["mcp-session-id"] = self.sid
        return h

    def post(self, body: dict, in_session: bool = True) -> httpx.Response:
        return self.http.post(self.url, json=body, headers=self.headers(in_session))

    def request(self, method: str, params: dict | None = None) -> tuple[httpx.Response, dict]:
        """The HTTP answer and the JSON-RPC answer to one request."""
        self.next_id += 1
        r = self.post(req(method, self.next_id, params or {}))
        answer = [m for m in messages(r) if m.get("id") == self.next_id]
        assert len(answer) == 1, r.text
        return r, answer[0]

    def call(self, method: str, params: dict | None = None) -> dict:
        """The JSON-RPC answer to one request that must get HTTP 200."""
        r, answer = self.request(method, params)
        assert r.status_code == 200, r.text
        return answer

    def list_all(self, method: str, member: str) -> list[dict]:
        """Every entry of a paginated list."""
        out, cursor = [], None
        for _ in range(50):
            a = self.call(method, {"cursor": cursor} if cursor else {})
            out += a["result"][member]
            cursor = a["result"].get("nextCursor")
            if not cursor:
                return out
        raise AssertionError("pagination did not end")
