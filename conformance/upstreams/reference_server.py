#!/usr/bin/env python3
"""Reference MCP upstream for the official conformance suite, built on PyPI `mcp` 2.3.0.

Implements the fixtures (tool/resource/prompt names and payloads) that the server
scenarios of `@modelcontextprotocol/conformance` 0.1.16 and 0.2.0-alpha.12 call.
One endpoint serves both protocol revisions (2025-11-25 sessions, 2026-07-28 stateless).

    .cache/venv/bin/python conformance/upstreams/reference_server.py --port 3001
    .cache/venv/bin/python conformance/upstreams/reference_server.py --stdio   # as a stdio server

DNS-rebinding protection stays on (the SDK default for a loopback bind): Host must be
127.0.0.1/localhost/[::1] with any port, Origin likewise when present. A proxy on
another loopback port therefore passes unchanged. `--allow-host H` / `--allow-origin O`
add values (":*" suffix = any port); `--no-dns-rebinding-protection` turns it off.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
from typing import Annotated, Any

import anyio
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.types import (
    AudioContent,
    CallToolResult,
    Completion,
    CreateMessageRequest,
    ElicitRequest,
    EmbeddedResource,
    ImageContent,
    InputRequiredResult,
    JSONRPCMessage,
    ListRootsRequest,
    SamplingMessage,
    TextContent,
    TextResourceContents,
)
from pydantic import BaseModel, Field

log = logging.getLogger("reference_server")

IMAGE_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
AUDIO_B64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

HINT = CacheHint(ttl_ms=0, scope="private")
mcp = MCPServer(
    "mcpgate-reference-upstream",
    version="0.1.0",
    cache_hints={m: HINT for m in ("tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read")},
)


class MemoryEventStore(EventStore):
    """In-memory event store so SSE streams are resumable (`Last-Event-ID`)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, JSONRPCMessage | None]] = []

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        event_id = str(len(self.events) + 1)
        self.events.append((stream_id, event_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        stream = next((s for s, e, _ in self.events if e == last_event_id), None)
        if stream is None:
            return None
        for s, e, msg in self.events:
            if s == stream and int(e) > int(last_event_id) and msg is not None:
                await send_callback(EventMessage(msg, e))
        return stream


def is_modern(ctx: Context) -> bool:
    return (ctx.protocol_version or "") >= "2026-07-28"


def text(t: str) -> list[TextContent]:
    return [TextContent(type="text", text=t)]


# ---------------------------------------------------------------- content tools
@mcp.tool(description="Returns simple text")
def test_simple_text() -> list[TextContent]:
    return text("This is a simple text response for testing.")


@mcp.tool(description="Returns an image")
def test_image_content() -> list[ImageContent]:
    return [ImageContent(type="image", data=IMAGE_B64, mime_type="image/png")]


@mcp.tool(description="Returns audio")
def test_audio_content() -> list[AudioContent]:
    return [AudioContent(type="audio", data=AUDIO_B64, mime_type="audio/wav")]


@mcp.tool(description="Returns an embedded resource")
def test_embedded_resource() -> list[EmbeddedResource]:
    res = TextResourceContents(uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content.")
    return [EmbeddedResource(type="resource", resource=res)]


@mcp.tool(description="Returns text, image and resource")
def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
    res = TextResourceContents(uri="test://mixed-content-resource", mime_type="application/json", text='{"test":"data","value":123}')
    return [
        TextContent(type="text", text="Multiple content types test:"),
        ImageContent(type="image", data=IMAGE_B64, mime_type="image/png"),
        EmbeddedResource(type="resource", resource=res),
    ]


@mcp.tool(description="Always fails")
def test_error_handling() -> CallToolResult:
    return CallToolResult(content=text("This tool intentionally returns an error for testing"), is_error=True)


@mcp.tool(description="Sends three info log notifications")
async def test_tool_with_logging(ctx: Context) -> list[TextContent]:
    for i, msg in enumerate(("Tool execution started", "Tool processing data", "Tool execution completed")):
        if i:
            await anyio.sleep(0.05)
        await ctx.info(msg)
    return text("Tool with logging executed successfully")


@mcp.tool(description="Reports progress 0, 50, 100 of 100")
async def test_tool_with_progress(ctx: Context) -> list[TextContent]:
    for i, p in enumerate((0, 50, 100)):
        if i:
            await anyio.sleep(0.05)
        await ctx.report_progress(p, 100, f"Completed step {p} of 100")
    return text("Progress test completed")


@mcp.tool(description="Closes the SSE stream mid-call (SEP-1699)")
async def test_reconnection(ctx: Context) -> list[TextContent]:
    await ctx.info("Before disconnect")
    await ctx.close_sse_stream()
    await anyio.sleep(0.2)
    await ctx.info("After reconnect")
    return text("Reconnection test completed")


JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


@mcp.tool(description="Tool with JSON Schema 2020-12 features")
def json_schema_2020_12_tool() -> list[TextContent]:
    return text("ok")


# The SDK derives inputSchema from the signature; replace it with the literal schema.
mcp._tool_manager.get_tool("json_schema_2020_12_tool").parameters = JSON_SCHEMA_2020_12  # noqa: SLF001


@mcp.tool(description="Echoes a value mirrored in the Mcp-Param-Region header (SEP-2243)")
def test_custom_headers(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> list[TextContent]:
    return text(f"region={region}")


# ------------------------------------------------ server->client requests (2025-11-25)
def _elicit_request(message: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"method": "elicitation/create", "params": {"message": message, "requestedSchema": schema}}


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


async def _elicit_raw(ctx: Context, message: str, schema: dict[str, Any]) -> tuple[str, Any]:
    """Legacy elicitation with a hand-written schema (the SDK's model->schema path drops keywords)."""
    result = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
    return result.action, result.content


async def _input_or_elicit(ctx: Context, key: str, message: str, schema: dict[str, Any], prefix: str):
    """2026-07-28: input_required round trip; 2025-11-25: elicitation/create request."""
    if is_modern(ctx):
        resp = (ctx.input_responses or {}).get(key)
        if resp is None:
            return InputRequiredResult(input_requests={key: ElicitRequest.model_validate(_elicit_request(message, schema))})
        action, content = resp.action, resp.content
    else:
        action, content = await _elicit_raw(ctx, message, schema)
    return text(f"{prefix}: action={action}, content={json.dumps(content or {}, separators=(',', ':'))}")


@mcp.tool(description="Requests LLM sampling from the client")
async def test_sampling(prompt: str, ctx: Context) -> Any:
    msg = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
    if is_modern(ctx):
        resp = (ctx.input_responses or {}).get("sampling")
        if resp is None:
            req = CreateMessageRequest.model_validate({"method": "sampling/createMessage", "params": {"messages": [msg.model_dump(by_alias=True, exclude_none=True)], "maxTokens": 100}})
            return InputRequiredResult(input_requests={"sampling": req})
        content = resp.content
    else:
        result = await ctx.session.create_message(messages=[msg], max_tokens=100, related_request_id=ctx.request_id)
        content = result.content
    reply = getattr(content, "text", None) or "No response"
    return text(f"LLM response: {reply}")


@mcp.tool(description="Requests user input (elicitation) from the client")
async def test_elicitation(message: str, ctx: Context) -> Any:
    schema = _obj(
        {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"},
        },
        ["username", "email"],
    )
    return await _input_or_elicit(ctx, "user_response", message, schema, "User response")


@mcp.tool(description="Elicitation with defaults for every primitive type (SEP-1034)")
async def test_elicitation_sep1034_defaults(ctx: Context) -> Any:
    schema = _obj(
        {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
            "verified": {"type": "boolean", "description": "Verification status", "default": True},
        },
        [],
    )
    return await _input_or_elicit(ctx, "defaults", "Please review and update the form fields with defaults", schema, "Elicitation completed")


@mcp.tool(description="Elicitation with the five enum schema variants (SEP-1330)")
async def test_elicitation_sep1330_enums(ctx: Context) -> Any:
    schema = _obj(
        {
            "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
            "titledSingle": {
                "type": "string",
                "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"},
                ],
            },
            "legacyEnum": {
                "type": "string",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
            "titledMulti": {
                "type": "array",
                "items": {
                    "anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"},
                    ]
                },
            },
        },
        [],
    )
    return await _input_or_elicit(ctx, "enums", "Please select options from the enum fields", schema, "Elicitation completed")


# ------------------------------------------------ multi-round-trip tools (2026-07-28, SEP-2322)
def _elicit(message: str, props: dict[str, Any], required: list[str]) -> ElicitRequest:
    return ElicitRequest.model_validate(_elicit_request(message, _obj(props, required)))


def _sample(prompt: str, max_tokens: int) -> CreateMessageRequest:
    return CreateMessageRequest.model_validate(
        {
            "method": "sampling/createMessage",
            "params": {"messages": [{"role": "user", "content": {"type": "text", "text": prompt}}], "maxTokens": max_tokens},
        }
    )


ROOTS = ListRootsRequest.model_validate({"method": "roots/list", "params": {}})


def _accepted(ctx: Context, key: str) -> dict[str, Any] | None:
    """Content of an accepted elicitation response under `key`, else None."""
    resp = (ctx.input_responses or {}).get(key)
    if resp is None or getattr(resp, "action", None) != "accept" or not isinstance(resp.content, dict):
        return None
    return resp.content


@mcp.tool(description="MRTR: asks the caller's name via an in-band elicitation")
def test_input_required_result_elicitation(ctx: Context) -> Any:
    content = _accepted(ctx, "user_name")
    if content is None or not isinstance(content.get("name"), str):
        return InputRequiredResult(input_requests={"user_name": _elicit("What is your name?", {"name": {"type": "string"}}, ["name"])})
    return text(f"Hello, {content['name']}!")


@mcp.tool(description="MRTR: asks for an LLM completion")
def test_input_required_result_sampling(ctx: Context) -> Any:
    resp = (ctx.input_responses or {}).get("capital_question")
    if resp is None or not hasattr(resp, "content"):
        return InputRequiredResult(input_requests={"capital_question": _sample("What is the capital of France?", 100)})
    return text(f"Sampling result: {getattr(resp.content, 'text', 'no text')}")


@mcp.tool(description="MRTR: asks for the client's roots")
def test_input_required_result_list_roots(ctx: Context) -> Any:
    resp = (ctx.input_responses or {}).get("client_roots")
    if resp is None or not hasattr(resp, "roots"):
        return InputRequiredResult(input_requests={"client_roots": ROOTS})
    return text("Roots: " + ", ".join(str(r.uri) for r in resp.roots))


@mcp.tool(description="MRTR: round-trips requestState")
def test_input_required_result_request_state(ctx: Context) -> Any:
    if _accepted(ctx, "confirm") is None or ctx.request_state != "request-state-v1":
        return InputRequiredResult(
            input_requests={"confirm": _elicit("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])},
            request_state="request-state-v1",
        )
    return text("state-ok: requestState validated")


@mcp.tool(description="MRTR: elicitation + sampling + roots in one round")
def test_input_required_result_multiple_inputs(ctx: Context) -> Any:
    r = ctx.input_responses or {}
    if not all(k in r for k in ("user_name", "greeting", "client_roots")) or ctx.request_state != "multi-v1":
        return InputRequiredResult(
            input_requests={
                "user_name": _elicit("What is your name?", {"name": {"type": "string"}}, ["name"]),
                "greeting": _sample("Generate a greeting", 50),
                "client_roots": ROOTS,
            },
            request_state="multi-v1",
        )
    return text("All inputs received")


@mcp.tool(description="MRTR: three rounds with evolving requestState")
def test_input_required_result_multi_round(ctx: Context) -> Any:
    state = ctx.request_state
    if state == "round-2" and _accepted(ctx, "step2") is not None:
        return text("Multi-round complete: " + json.dumps(_accepted(ctx, "step2")))
    if state in ("round-1", "round-2") and (state == "round-2" or _accepted(ctx, "step1") is not None):
        return InputRequiredResult(
            input_requests={"step2": _elicit("Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])},
            request_state="round-2",
        )
    return InputRequiredResult(
        input_requests={"step1": _elicit("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])},
        request_state="round-1",
    )


@mcp.tool(description="MRTR: integrity-protected requestState (the SDK seals it with AES-GCM)")
def test_input_required_result_tampered_state(ctx: Context) -> Any:
    if ctx.request_state == "tamper-v1" and _accepted(ctx, "confirm") is not None:
        return text("state verified")
    return InputRequiredResult(
        input_requests={"confirm": _elicit("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])},
        request_state="tamper-v1",
    )


@mcp.tool(description="MRTR: only asks for what the client declared (sampling and/or elicitation)")
def test_input_required_result_capabilities(ctx: Context) -> Any:
    if ctx.input_responses:
        return text("capabilities respected")
    caps = ctx.client_capabilities
    requests: dict[str, Any] = {}
    if caps is not None and caps.sampling is not None:
        requests["sample"] = _sample("Say hello", 20)
    if caps is not None and caps.elicitation is not None:
        requests["ask"] = _elicit("What is your name?", {"name": {"type": "string"}}, ["name"])
    if not requests:
        return text("client declared neither sampling nor elicitation")
    return InputRequiredResult(input_requests=requests)


# ------------------------------------------------ server-stateless diagnostics (2026-07-28, SEP-2575)
@mcp.tool(description="Requires the sampling capability; -32021 when undeclared")
def test_missing_capability(ctx: Context) -> list[TextContent]:
    caps = ctx.client_capabilities
    if caps is None or caps.sampling is None:
        raise MCPError(
            code=-32021,
            message="Missing required client capability: sampling",
            data={"requiredCapabilities": {"sampling": {}}},
        )
    return text("sampling capability present")


@mcp.tool(description="Asks for input in-band (never an independent request on the stream)")
def test_streaming_elicitation(ctx: Context) -> Any:
    if _accepted(ctx, "answer") is not None:
        return text("thanks")
    return InputRequiredResult(input_requests={"answer": _elicit("Anything?", {"x": {"type": "string"}}, [])})


@mcp.tool(description="Logs at info level (only delivered when the client asked for a log level)")
async def test_logging_tool(ctx: Context) -> list[TextContent]:
    await ctx.info("test_logging_tool ran")
    return text("Logging tool complete")


def test_added_tool() -> list[TextContent]:
    return text("added")


def test_added_prompt() -> str:
    return "added prompt"


@mcp.tool(description="Adds/removes test_added_tool and notifies listeners")
async def test_trigger_tool_change(ctx: Context) -> list[TextContent]:
    if mcp._tool_manager.get_tool("test_added_tool"):  # noqa: SLF001
        mcp.remove_tool("test_added_tool")
    else:
        mcp.add_tool(test_added_tool, description="Dynamically added tool")
    await ctx.notify_tools_changed()
    return text("tool list changed")


@mcp.tool(description="Adds/removes test_added_prompt and notifies listeners")
async def test_trigger_prompt_change(ctx: Context) -> list[TextContent]:
    if "test_added_prompt" in {p.name for p in await mcp.list_prompts()}:
        mcp.remove_prompt("test_added_prompt")
    else:
        mcp.prompt(description="Dynamically added prompt")(test_added_prompt)
    await ctx.notify_prompts_changed()
    return text("prompt list changed")


@mcp.prompt(description="MRTR on prompts/get")
def test_input_required_result_prompt(ctx: Context) -> Any:
    content = _accepted(ctx, "user_context")
    if content is None:
        return InputRequiredResult(
            input_requests={
                "user_context": _elicit("What context should the prompt use?", {"context": {"type": "string"}}, ["context"])
            }
        )
    return [UserMessage(role="user", content=TextContent(type="text", text=f"Context: {content.get('context')}"))]


# ---------------------------------------------------------------- resources
@mcp.resource("test://static-text", name="static-text", description="Static text resource", mime_type="text/plain")
def static_text() -> str:
    return "This is the content of the static text resource."


@mcp.resource("test://static-binary", name="static-binary", description="Static binary resource", mime_type="image/png")
def static_binary() -> bytes:
    return base64.b64decode(IMAGE_B64)


@mcp.resource("test://template/{id}/data", name="template", description="Templated resource", mime_type="application/json")
def template_data(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"}, separators=(",", ":"))


@mcp.resource("test://watched-resource", name="watched-resource", description="Subscribable resource", mime_type="text/plain")
def watched() -> str:
    return "Watched resource content"


# ---------------------------------------------------------------- prompts
@mcp.prompt(description="A simple prompt without arguments")
def test_simple_prompt() -> list[UserMessage]:
    return [UserMessage(role="user", content=TextContent(type="text", text="This is a simple prompt for testing."))]


@mcp.prompt(description="A prompt with required arguments")
def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
    return [UserMessage(role="user", content=TextContent(type="text", text=f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))]


@mcp.prompt(description="A prompt with an embedded resource")
def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:  # noqa: N803 - wire name
    res = TextResourceContents(uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing.")
    return [
        UserMessage(role="user", content=EmbeddedResource(type="resource", resource=res)),
        UserMessage(role="user", content=TextContent(type="text", text="Please process the embedded resource above.")),
    ]


@mcp.prompt(description="A prompt with an image")
def test_prompt_with_image() -> list[UserMessage]:
    return [
        UserMessage(role="user", content=ImageContent(type="image", data=IMAGE_B64, mime_type="image/png")),
        UserMessage(role="user", content=TextContent(type="text", text="Please analyze the image above.")),
    ]


# ---------------------------------------------------------------- misc handlers
@mcp.completion()
async def complete(ref: Any, argument: Any, context: Any) -> Completion:
    return Completion(values=[], total=0, has_more=False)


SUBSCRIPTIONS: set[str] = set()
LOW = mcp._lowlevel_server  # noqa: SLF001 - MCPServer has no public API for these legacy handlers


def _install_legacy_handlers() -> None:
    from mcp.types import EmptyResult, SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams

    async def subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        SUBSCRIPTIONS.add(str(params.uri))
        return EmptyResult()

    async def unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        SUBSCRIPTIONS.discard(str(params.uri))
        return EmptyResult()

    async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        return EmptyResult()

    LOW.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    LOW.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    LOW.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)


_install_legacy_handlers()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=3001)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--allow-host", action="append", default=[], help="extra allowed Host value (':*' = any port)")
    ap.add_argument("--allow-origin", action="append", default=[], help="extra allowed Origin value (':*' = any port)")
    ap.add_argument("--no-dns-rebinding-protection", action="store_true")
    ap.add_argument("--log-level", default="WARNING")
    ap.add_argument("--stdio", action="store_true", help="serve over stdin/stdout (a stdio worker of mcpgate)")
    args = ap.parse_args()
    logging.basicConfig(level=args.log_level.upper())
    if args.stdio:
        mcp.settings.log_level = args.log_level.upper()
        mcp.run("stdio")
        return

    loop_hosts = ["127.0.0.1", "localhost", "[::1]"]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=not args.no_dns_rebinding_protection,
        allowed_hosts=[h + s for h in loop_hosts for s in ("", ":*")] + args.allow_host,
        allowed_origins=[f"http://{h}{s}" for h in loop_hosts for s in ("", ":*")] + args.allow_origin,
    )
    mcp.settings.log_level = args.log_level.upper()
    mcp.run(
        "streamable-http",
        host=args.host,
        port=args.port,
        event_store=MemoryEventStore(),
        retry_interval=100,
        transport_security=security,
    )


if __name__ == "__main__":
    main()
