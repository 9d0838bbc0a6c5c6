#!/usr/bin/env bash
# Starts the demo upstream and mcpgate in front of it; stops both on exit.
#   scripts/run-demo.sh BIN_DIR CONFIG UPSTREAM_ADDR
set -euo pipefail
bin="$1" config="$2" upstream="$3"

"$bin/mcpgate" check --config "$config"
setsid "$bin/demo-upstream" --listen "$upstream" &
upstream_pid=$!
trap 'kill -INT -- -$upstream_pid 2>/dev/null || kill $upstream_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/${upstream%:*}/${upstream##*:}") 2>/dev/null && break
  sleep 0.1
done

listen=$(sed -n 's/^address *= *"\(.*\)"/\1/p' "$config" | head -1)
cat <<MSG

  demo upstream : http://$upstream/mcp
  mcpgate       : http://$listen/mcp   (policy: $config)

  Connect an MCP client to http://$listen/mcp, for example:
    .cache/venv/bin/python -c 'import asyncio, mcp
    async def main():
        async with mcp.Client("http://$listen/mcp", mode="auto") as c:
            print([t.name for t in (await c.list_tools()).tools])
    asyncio.run(main())'
  or with curl:
    curl -s http://$listen/mcp -H 'content-type: application/json' \\
      -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2026-07-28' \\
      -H 'mcp-method: tools/list' -d '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'

  Ctrl-C stops both.

MSG
"$bin/mcpgate" run --config "$config"
