"""The negative suite: one case per rejection path of the filter chain.

Each case is sent to the real mcpgate binary in front of the recording demo
upstream. The test asserts the HTTP status, the JSON-RPC error code (None: a
bare status, no body, as for notifications), headers where due, and that the
upstream received nothing for the rejected message.

Every JSON error body must carry `error.data.rule` (a kebab-case name mcpgate
defines) and may carry `error.data.at` (where: a JSON path, `header:NAME`,
`path`, `method`, `body`), and `error.data` must hold nothing the client sent:
`rule`/`at` pin the exact values, `offending` names input that must not be
echoed.

`session` names the state the case starts from:
  none      no Mcp-Session-Id
  awaiting  a session whose initialize response was seen, before notifications/initialized
  ready     a fully initialized session
  unknown   an id mcpgate never issued
  ended     a session ended with DELETE
  foreign   a ready session of tenant "acme" presented by tenant "beta"
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
POST_HEADERS = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")]


@dataclass
class Case:
    name: str
    reason: str
    status: int
    code: int | None
    body: bytes | str | dict | list = b""
    method: str = "POST"
    headers: list[tuple[str, str]] = field(default_factory=lambda: list(POST_HEADERS))
    session: str = "none"
    path: str = "/mcp"
    expect_headers: dict[str, str] = field(default_factory=dict)
    echo_id: object = None
    # `error.data` of a JSON error body: the rule that fired and where. Every
    # JSON body must name a rule; `rule`/`at` pin the exact ones.
    rule: str | None = None
    at: str | None = None
    # A piece of the case's input that `error.data` must never echo.
    offending: str | None = None

    def payload(self) -> bytes:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode()
        return self.body.encode() if isinstance(self.body, str) else self.body


def req(method: str, id_: object = 1, params: dict | None = None) -> dict:
    m: dict = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        m["params"] = params
    return m


def note(method: str, params: dict | None = None) -> dict:
    m: dict = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        m["params"] = params
    return m


def init(version: str = LEGACY) -> dict:
    return req("initialize", 0, {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "neg", "version": "1"}})


def modern(method: str, params: dict | None = None, meta: dict | None = None, id_: object = 1) -> dict:
    p = dict(params or {})
    p["_meta"] = META if meta is None else meta
    return req(method, id_, p)


def modern_headers(method: str, name: str | None = None, version: str = MODERN) -> list[tuple[str, str]]:
    h = POST_HEADERS + [("mcp-protocol-version", version), ("mcp-method", method)]
    if name is not None:
        h.append(("mcp-name", name))
    return h


LEGACY_H = POST_HEADERS + [("mcp-protocol-version", LEGACY)]
CALL = modern("tools/call", {"name": "echo", "arguments": {"text": "hi"}})

CASES: list[Case] = [
    # --- transport ---
    Case("wrong-path", "only the MCP endpoint path is served", 404, -32600, req("ping"), path="/other",
         rule="unknown-path", at="path", offending="/other"),
    Case("method-put", "PUT is not a Streamable HTTP method", 405, -32600, req("ping"), method="PUT",
         expect_headers={"allow": "GET, POST, DELETE"},
         rule="method-not-allowed", at="method"),
    Case("content-type-text", "POST body must be application/json", 415, -32600, req("ping"),
         headers=[("content-type", "text/plain"), ("accept", "application/json, text/event-stream")],
         rule="content-type-not-json", at="header:content-type", offending="text/plain"),
    Case("accept-json-only", "POST Accept must list both media types", 406, -32600, req("ping"),
         headers=[("content-type", "application/json"), ("accept", "application/json")],
         rule="accept-lacks-json-or-sse", at="header:accept"),
    Case("get-accept-json", "GET Accept must list text/event-stream", 406, -32600, method="GET",
         headers=[("accept", "application/json")], session="ready",
         rule="accept-lacks-sse", at="header:accept"),
    Case("host-evil", "DNS rebinding: Host not allowed; id still echoed", 403, -32600, req("ping", 11),
         headers=POST_HEADERS + [("host", "evil.example.com")], echo_id=11,
         rule="host-not-allowed", at="header:host", offending="evil.example.com"),
    Case("origin-evil-notification", "DNS rebinding on a notification; bare status", 403, None,
         note("notifications/initialized"), headers=POST_HEADERS + [("origin", "http://evil.example.com")]),
    Case("origin-evil", "DNS rebinding: Origin not allowed", 403, -32600, req("ping"),
         headers=POST_HEADERS + [("origin", "http://evil.example.com")],
         rule="origin-not-allowed", at="header:origin", offending="evil.example.com"),
    Case("origin-null", "opaque origin is never allowed", 403, -32600, req("ping"),
         headers=POST_HEADERS + [("origin", "null")],
         rule="origin-not-allowed", at="header:origin", offending="null"),
    Case("session-id-space", "Mcp-Session-Id must be visible ASCII", 400, -32600, req("tools/list"),
         headers=LEGACY_H + [("mcp-session-id", "abc def")],
         rule="malformed-session-id", at="header:mcp-session-id", offending="abc def"),
    Case("session-id-twice", "singleton header repeated", 400, -32600, req("tools/list"),
         headers=LEGACY_H + [("mcp-session-id", "abc"), ("mcp-session-id", "abc")],
         rule="repeated-header", at="header:mcp-session-id", offending="abc"),
    Case("mcp-method-twice", "singleton header repeated", 400, -32600, CALL,
         headers=modern_headers("tools/call", "echo") + [("mcp-method", "tools/list")],
         rule="repeated-header", at="header:mcp-method", offending="tools/list"),
    Case("content-length-over-limit", "declared body over max_body_bytes", 413, -32600,
         b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' + b"x" * (4 * 1024 * 1024) + b'"}}',
         rule="content-length-over-limit", at="header:content-length", offending="xxxx"),
    # --- auth ---
    Case("unknown-api-key", "a presented key must match a tenant", 401, -32010, req("ping"),
         headers=POST_HEADERS + [("authorization", "Bearer not-a-key")], expect_headers={"www-authenticate": "Bearer"},
         rule="unknown-api-key", at="header:authorization", offending="not-a-key"),
    # --- JSON-RPC envelope ---
    Case("invalid-json", "body must be JSON", 400, -32700, '{"jsonrpc":"2.0","id":1,',
         rule="truncated-json", at="body"),
    Case("duplicate-keys", "duplicate keys could be read differently upstream", 400, -32700,
         '{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/list"}',
         rule="duplicate-key", at="body", offending="tools/list"),
    Case("trailing-data", "exactly one JSON value", 400, -32700, '{"jsonrpc":"2.0","id":1,"method":"ping"} {}',
         rule="trailing-data", at="body"),
    Case("invalid-utf8", "JSON must be UTF-8", 400, -32700, b'{"jsonrpc":"2.0","id":1,"method":"p\xffng"}',
         rule="invalid-utf8", at="body"),
    Case("batch", "batches are off by default", 400, -32600, [req("ping", 1), req("ping", 2)],
         rule="batch-not-allowed", at="body"),
    Case("id-null", "id must not be null", 400, -32600, {"jsonrpc": "2.0", "id": None, "method": "ping"},
         rule="invalid-id", at="id"),
    Case("id-fraction", "id must be a string or integer", 400, -32600, {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
         rule="invalid-id", at="id", offending="1.5"),
    Case("jsonrpc-1.0", "jsonrpc must be 2.0", 400, -32600, {"jsonrpc": "1.0", "id": 1, "method": "ping"},
         rule="wrong-jsonrpc-version", at="jsonrpc", offending="1.0"),
    Case("not-an-object", "a message is an object", 400, -32600, "42",
         rule="not-an-object", at="body", offending="42"),
    Case("too-deep", "nesting above max_json_depth", 400, -32600,
         '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":' + "[" * 100 + "]" * 100 + "}}",
         rule="nesting-too-deep", at="body", offending="[[["),
    # --- legacy init-state gate ---
    Case("no-session-request", "requests other than initialize/ping need a session", 400, -32600,
         req("tools/list"), headers=LEGACY_H, echo_id=1,
         rule="request-before-session", at="header:mcp-session-id", offending="tools/list"),
    Case("no-session-notification", "notifications need a session; bare status", 400, None,
         note("notifications/initialized"), headers=LEGACY_H),
    Case("no-session-get", "GET needs a session", 400, -32600, method="GET",
         headers=[("accept", "text/event-stream"), ("mcp-protocol-version", LEGACY)],
         rule="missing-session-id", at="header:mcp-session-id"),
    Case("unknown-session", "never-issued session id", 404, -32001, req("tools/list", 5), headers=LEGACY_H,
         session="unknown", echo_id=5,
         rule="unknown-session", at="header:mcp-session-id", offending="ffffffff"),
    Case("ended-session", "session ended with DELETE", 404, -32001, req("tools/list"), headers=LEGACY_H, session="ended",
         rule="unknown-session", at="header:mcp-session-id"),
    Case("foreign-session", "session of another tenant looks unknown", 404, -32001, req("tools/list"),
         headers=LEGACY_H, session="foreign",
         rule="unknown-session", at="header:mcp-session-id"),
    Case("before-initialized", "only ping before notifications/initialized", 400, -32600, req("tools/list"),
         headers=LEGACY_H, session="awaiting",
         rule="not-initialized", at="method", offending="tools/list"),
    Case("second-initialize", "initialize twice on a session", 400, -32600, init(), headers=LEGACY_H, session="ready",
         rule="already-initialized", at="method"),
    Case("unsupported-legacy-version", "initialize version outside the allowlist", 400, -32602, init("1999-01-01"),
         echo_id=0,
         rule="unsupported-protocol-version", at="params.protocolVersion", offending="1999-01-01"),
    Case("unsupported-legacy-version-odd", "a version that is no version is refused and not echoed", 400, -32602,
         init("1999-01-01 <b>x</b>"), echo_id=0,
         rule="unsupported-protocol-version", at="params.protocolVersion", offending="<b>"),
    Case("initialize-without-version", "initialize must name a version", 400, -32600,
         req("initialize", 0, {"capabilities": {}, "clientInfo": {"name": "n", "version": "1"}}),
         rule="missing-protocol-version", at="params.protocolVersion"),
    # 2024-01-01 is outside the allowlist, so refused in either
    # `session_version_header` mode (older allowlisted versions pass by default).
    Case("protocol-header-mismatch", "MCP-Protocol-Version must be a version the session can speak", 400, -32600,
         req("tools/list"), headers=POST_HEADERS + [("mcp-protocol-version", "2024-01-01")], session="ready",
         rule="protocol-version-not-negotiated", at="header:mcp-protocol-version", offending="2024-01-01"),
    # --- 2026-07-28 validation ---
    Case("mcp-method-mismatch", "Mcp-Method must equal the body method", 400, -32020, CALL,
         headers=modern_headers("tools/list", "echo"),
         rule="mcp-method-mismatch", at="header:mcp-method", offending="tools/list"),
    Case("mcp-name-mismatch", "Mcp-Name must equal params.name", 400, -32020, CALL,
         headers=modern_headers("tools/call", "get-env"),
         rule="mcp-name-mismatch", at="header:mcp-name", offending="get-env"),
    Case("mcp-name-missing", "tools/call needs Mcp-Name", 400, -32020, CALL, headers=modern_headers("tools/call"),
         rule="missing-mcp-name", at="header:mcp-name"),
    Case("mcp-name-resource-mismatch", "resources/read Mcp-Name must equal params.uri", 400, -32020,
         modern("resources/read", {"uri": "demo://readme"}), headers=modern_headers("resources/read", "file:///etc/passwd"),
         rule="mcp-name-mismatch", at="header:mcp-name", offending="passwd"),
    Case("version-header-missing", "stateless body needs MCP-Protocol-Version", 400, -32020, CALL,
         headers=POST_HEADERS + [("mcp-method", "tools/call"), ("mcp-name", "echo")],
         rule="missing-protocol-version-header", at="header:mcp-protocol-version"),
    Case("version-header-differs", "header version must equal _meta version", 400, -32020, CALL,
         headers=modern_headers("tools/call", "echo", version="2099-01-01"),
         rule="protocol-version-header-mismatch", at="header:mcp-protocol-version", offending="2099-01-01"),
    Case("unsupported-modern-version", "_meta version outside the allowlist", 400, -32022,
         modern("tools/list", meta={**META, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}),
         headers=modern_headers("tools/list", version="2099-01-01"),
         rule="unsupported-protocol-version", at="header:mcp-protocol-version", offending="2099-01-01"),
    Case("missing-client-capabilities", "_meta clientCapabilities required", 400, -32602,
         modern("tools/list", meta={"io.modelcontextprotocol/protocolVersion": MODERN}), headers=modern_headers("tools/list"),
         rule="missing-meta-client-capabilities", at='params._meta["io.modelcontextprotocol/clientCapabilities"]'),
    Case("missing-meta", "stateless request without _meta", 400, -32602, req("tools/list"), headers=modern_headers("tools/list"),
         rule="missing-meta-protocol-version", at='params._meta["io.modelcontextprotocol/protocolVersion"]'),
    Case("era-body-modern-header-legacy", "header and body claim different eras", 400, -32020, CALL,
         headers=POST_HEADERS + [("mcp-protocol-version", LEGACY), ("mcp-method", "tools/call"), ("mcp-name", "echo")],
         rule="legacy-version-header-on-stateless-body", at="header:mcp-protocol-version"),
    Case("era-initialize-modern-header", "initialize does not exist in 2026-07-28", 404, -32601, init(),
         headers=modern_headers("initialize"), echo_id=0,
         rule="method-removed-in-stateless", at="method", offending="initialize"),
    Case("era-legacy-date-modern-body", "a pre-2026 dated header with a stateless body", 400, -32020, CALL,
         headers=POST_HEADERS + [("mcp-protocol-version", "2024-01-01"), ("mcp-method", "tools/call"), ("mcp-name", "echo")],
         rule="legacy-version-header-on-stateless-body", at="header:mcp-protocol-version", offending="2024-01-01"),
    Case("unknown-version-both", "unknown version in header and _meta: honest header, -32022", 400, -32022,
         modern("tools/list", meta={**META, "io.modelcontextprotocol/protocolVersion": "v999.0.0"}),
         headers=modern_headers("tools/list", version="v999.0.0"),
         rule="unsupported-protocol-version", at="header:mcp-protocol-version", offending="v999.0.0"),
    Case("era-modern-with-session", "stateless request carrying a session", 400, -32020, CALL,
         headers=modern_headers("tools/call", "echo") + [("mcp-session-id", "abc")],
         rule="session-id-on-stateless-request", at="header:mcp-session-id", offending="abc"),
    Case("modern-get", "GET is gone in 2026-07-28", 405, -32600, method="GET",
         headers=[("accept", "text/event-stream"), ("mcp-protocol-version", MODERN)], expect_headers={"allow": "POST"},
         rule="stateless-method-not-allowed", at="method"),
    Case("modern-delete", "DELETE is gone in 2026-07-28", 405, -32600, method="DELETE",
         headers=[("mcp-protocol-version", MODERN)], expect_headers={"allow": "POST"},
         rule="stateless-method-not-allowed", at="method"),
    Case("modern-client-response", "clients never POST responses in 2026-07-28; bare status", 400, None,
         {"jsonrpc": "2.0", "id": 1, "result": {}}, headers=modern_headers("x")),
    Case("modern-notification-mismatch", "notification Mcp-Method mismatch; bare status", 400, None,
         note("notifications/cancelled"), headers=modern_headers("notifications/progress")),
    # --- content guards (path traversal: always on) ---
    Case("traversal-resource-uri", "a resource URI climbing out of its root", 400, -32602,
         req("resources/read", 3, {"uri": "file:///srv/data/../../etc/passwd"}), headers=LEGACY_H, echo_id=3,
         rule="dot-dot-segment", at="params.uri", offending="passwd"),
    Case("traversal-encoded-resource-uri", "percent-encoded dots are decoded before judging", 400, -32602,
         req("resources/subscribe", 4, {"uri": "demo://x/%2e%2e/%2E%2E/secret-d41d"}), headers=LEGACY_H,
         rule="dot-dot-segment", at="params.uri", offending="secret-d41d"),
    Case("traversal-mcp-name", "the Mcp-Name of resources/read is judged as a URI", 400, -32602,
         req("resources/read", 5, {"uri": "demo://readme"}),
         headers=LEGACY_H + [("mcp-name", "..%2f..%2fetc%2fshadow")],
         rule="dot-dot-segment", at="header:mcp-name", offending="shadow"),
    Case("traversal-notification", "a traversal in a notification; bare status", 400, None,
         note("resources/read", {"uri": "../../etc/passwd"}), headers=LEGACY_H),
]
