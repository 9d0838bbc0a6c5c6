#!/usr/bin/env node
// The official TypeScript SDK v1 (npm @modelcontextprotocol/sdk 1.32.2) as a
// caller of one tenant: lists every tool (all pages) and calls one tool,
// sending `Authorization: Bearer KEY` (none when KEY is "-"). Prints JSON;
// exit 1 on a failure.
//
//   .cache/bin/node22 conformance/clients/ts_governed.mjs URL KEY TOOL
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const sdkDir = process.env.TS_SDK_DIR ?? path.join(root, ".cache/npm/sdk-1.32.2");
const sdk = (p) => import(pathToFileURL(path.join(sdkDir, "node_modules/@modelcontextprotocol/sdk/dist/esm", p)).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");

const [url, key, tool] = process.argv.slice(2);
if (!url || !key || !tool) {
  console.error("usage: ts_governed.mjs URL KEY TOOL");
  process.exit(2);
}
const out = { url, tools: [], call: null, error: null };
try {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: key === "-" ? {} : { headers: { Authorization: `Bearer ${key}` } },
  });
  const client = new Client({ name: "mcpgate-ts-governed", version: "1.0.0" }, { capabilities: {} });
  await client.connect(transport);
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    out.tools.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor);
  try {
    const r = await client.callTool({ name: tool, arguments: {} });
    out.call = { isError: r.isError ?? false, text: (r.content ?? []).filter((c) => c.type === "text").map((c) => c.text) };
  } catch (e) {
    out.call = { thrown: true, code: e?.code ?? null, message: String(e?.message ?? e) };
  }
  await transport.terminateSession().catch(() => {});
  await client.close();
} catch (e) {
  out.error = String(e?.stack ?? e);
}
console.log(JSON.stringify(out));
process.exit(out.error ? 1 : 0);
