#!/usr/bin/env node
// Real-client check with the official TypeScript SDK v1 (npm @modelcontextprotocol/sdk 1.32.2,
// StreamableHTTPClientTransport, protocol 2025-11-25).
//
//   .cache/bin/node22 conformance/clients/ts_client.mjs URL
//
// initialize -> (GET SSE stream, opened by the SDK after `initialized`) -> tools/list ->
// simple call -> call with progress -> server->client sampling / elicitation (if the upstream
// has such tools) -> terminateSession (DELETE). Prints a JSON summary; exit 1 on any failure.
// The SDK is loaded from .cache/npm/sdk-1.32.2 (override with TS_SDK_DIR=<prefix dir>).
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const sdkDir = process.env.TS_SDK_DIR ?? path.join(root, ".cache/npm/sdk-1.32.2");
const sdk = (p) => import(pathToFileURL(path.join(sdkDir, "node_modules/@modelcontextprotocol/sdk/dist/esm", p)).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { CallToolResultSchema, CreateMessageRequestSchema, ElicitRequestSchema } = await sdk("types.js");

const SAMPLED = "sampled-by-ts-client";
const ECHO = "hello through mcpgate";
const SIMPLE = ["test_simple_text", "echo"];
const PROGRESS = {
  test_tool_with_progress: {},
  "trigger-long-running-operation": { duration: 1, steps: 3 },
  progress: { steps: 3, interval_ms: 20 },
};
const SAMPLING = ["test_sampling", "trigger-sampling-request", "sample"];
const ELICITATION = { test_elicitation: { message: "Who are you?" }, "trigger-elicitation-request": {}, elicit: { message: "Who are you?" } };

const url = process.argv[2];
if (!url) {
  console.error("usage: ts_client.mjs URL");
  process.exit(2);
}
const out = { url, errors: [], http: [] };
const calls = { sampling: 0, elicitation: 0 };

// Record every HTTP exchange the transport makes (method, status, content-type).
const recordingFetch = async (input, init = {}) => {
  const res = await fetch(input, init);
  out.http.push({ method: init.method ?? "GET", status: res.status, type: res.headers.get("content-type") });
  return res;
};

const texts = (r) => (r.content ?? []).filter((c) => c.type === "text").map((c) => c.text);
const first = (names, tools) => names.find((n) => tools.has(n));

async function main() {
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: recordingFetch });
  const client = new Client(
    { name: "mcpgate-ts-client", version: "1.0.0" },
    { capabilities: { sampling: {}, elicitation: { form: {} } } },
  );
  client.setRequestHandler(CreateMessageRequestSchema, async () => {
    calls.sampling++;
    return { role: "assistant", content: { type: "text", text: SAMPLED }, model: "ts-client-model", stopReason: "endTurn" };
  });
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    calls.elicitation++;
    const content = {};
    for (const [k, p] of Object.entries(req.params.requestedSchema?.properties ?? {})) {
      if ("default" in p) content[k] = p.default;
      else if (p.type === "boolean") content[k] = true;
      else if (p.type === "integer" || p.type === "number") content[k] = 1;
      else if (p.type === "string") content[k] = p.enum?.[0] ?? "ts-client";
    }
    return { action: "accept", content };
  });
  transport.onerror = (e) => out.errors.push(`transport error: ${e?.message ?? e}`);

  await client.connect(transport);
  out.session_id = transport.sessionId ?? null;
  out.protocol_version = transport.protocolVersion ?? null;
  out.server = client.getServerVersion()?.name ?? null;

  const tools = new Map((await client.listTools()).tools.map((t) => [t.name, t]));
  out.tools = [...tools.keys()].sort();

  const simple = first(SIMPLE, tools);
  if (!simple) out.errors.push(`no simple tool among ${SIMPLE}`);
  else {
    const props = tools.get(simple).inputSchema?.properties ?? {};
    const args = simple === "echo" ? { [("message" in props) ? "message" : "text"]: ECHO } : {};
    const r = await client.callTool({ name: simple, arguments: args });
    out.simple = { tool: simple, text: texts(r), is_error: !!r.isError };
    if (r.isError || texts(r).length === 0) out.errors.push(`${simple} failed`);
  }

  const prog = first(Object.keys(PROGRESS), tools);
  if (prog) {
    const seen = [];
    const r = await client.callTool({ name: prog, arguments: PROGRESS[prog] }, CallToolResultSchema, {
      onprogress: (p) => seen.push(p.progress),
      timeout: 30000,
    });
    out.progress = { tool: prog, notifications: seen.length, values: seen, text: texts(r) };
    if (r.isError || seen.length === 0) out.errors.push(`${prog}: ${seen.length} progress notifications`);
  }

  const samp = first(SAMPLING, tools);
  if (samp) {
    const before = calls.sampling;
    const r = await client.callTool({ name: samp, arguments: { prompt: "Say hi" } });
    out.sampling = { tool: samp, callback_calls: calls.sampling - before, text: texts(r) };
    if (r.isError || calls.sampling === before || !texts(r).some((t) => t.includes(SAMPLED)))
      out.errors.push(`${samp}: sampling round trip failed`);
  }

  const elic = first(Object.keys(ELICITATION), tools);
  if (elic) {
    const before = calls.elicitation;
    const r = await client.callTool({ name: elic, arguments: ELICITATION[elic] });
    out.elicitation = { tool: elic, callback_calls: calls.elicitation - before, text: texts(r) };
    if (r.isError || calls.elicitation === before || !texts(r).some((t) => t.includes("accept") || t.includes("provided")))
      out.errors.push(`${elic}: elicitation round trip failed`);
  }

  // The SDK opens the standalone GET stream itself after `initialized` (405 = server has none).
  const get = out.http.find((h) => h.method === "GET");
  out.get_stream = get ? { status: get.status, opened: get.status === 200 && /event-stream/.test(get.type ?? "") } : null;

  if (out.session_id) {
    await transport.terminateSession();
    const del = out.http.findLast((h) => h.method === "DELETE");
    out.delete_status = del?.status ?? null;
    if (!del || !(del.status < 300 || del.status === 405)) out.errors.push(`DELETE answered ${del?.status}`);
    out.session_after_delete = transport.sessionId ?? null;
  }
  await client.close();
}

const timer = setTimeout(() => {
  out.errors.push("timed out after 60s");
  finish();
}, 60000);

function finish() {
  clearTimeout(timer);
  // Stream aborts on close are expected noise, not failures.
  out.errors = out.errors.filter((e) => !/AbortError|aborted/i.test(e));
  out.ok = out.errors.length === 0;
  console.log(JSON.stringify(out, null, 2));
  process.exit(out.ok ? 0 : 1);
}

main().then(finish, (e) => {
  out.errors.push(`${e?.name ?? "Error"}: ${e?.message ?? e}`);
  finish();
});
