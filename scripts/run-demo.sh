#!/usr/bin/env bash
# Starts the demo upstream and mcpgate in front of it; Ctrl-C stops both.
#   scripts/run-demo.sh BIN_DIR CONFIG UPSTREAM_ADDR
#
# Both run in process groups of their own (job control), so a terminal's
# Ctrl-C reaches this script only; it then stops mcpgate (SIGINT to its group,
# as Ctrl-C would; it drains for at most $GATE_STOP_SECS, default 10, or until
# a second Ctrl-C; then SIGINT again, then SIGKILL), then the upstream the same
# way (3 s). Every wait is bounded. A port that is already taken (the
# upstream's, mcpgate's listen or admin address) is an error before anything
# starts: mcpgate binds with SO_REUSEPORT and would share a port with whatever
# holds it, and requests would go to a stale upstream.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 BIN_DIR CONFIG UPSTREAM_ADDR" >&2
  exit 2
fi
bin="$1" config="$2" upstream="$3"
GATE_STOP_SECS=${GATE_STOP_SECS:-10}
UPSTREAM_STOP_SECS=3

"$bin/mcpgate" check --config "$config"

# toml_string SECTION KEY: the quoted string value of KEY in [SECTION] of $config.
toml_string() {
  awk -v want="$1" -v key="$2" '
    /^[[:space:]]*\[/ { s = $0; sub(/#.*/, "", s); gsub(/[[:space:]]/, "", s); gsub(/^\[+|\]+$/, "", s); sec = s; next }
    sec == want && $0 ~ ("^[[:space:]]*" key "[[:space:]]*=") && match($0, /"[^"]*"/) {
      print substr($0, RSTART + 1, RLENGTH - 2); exit
    }' "$config"
}

# listening HOST:PORT: something accepts TCP connections there.
listening() {
  local host=${1%:*} port=${1##*:}
  host=${host#[} host=${host%]}
  case $host in 0.0.0.0) host=127.0.0.1 ;; ::) host=::1 ;; esac
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

listen=$(toml_string listen address)
listen=${listen:-127.0.0.1:8080}
admin=""
if grep -Eq '^[[:space:]]*\[admin\]' "$config"; then
  admin=$(toml_string admin address)
fi

taken=0
for entry in "demo upstream=$upstream" "mcpgate (listen.address)=$listen" ${admin:+"mcpgate (admin.address)=$admin"}; do
  addr=${entry##*=} what=${entry%=*}
  if listening "$addr"; then
    echo "error: $addr is already in use (wanted for the $what): another process listens there," \
      "perhaps a demo upstream or mcpgate left running. Stop it or choose another address." >&2
    taken=1
  fi
done
[ "$taken" = 0 ] || exit 1

gate_pid="" upstream_pid=""

# stop NAME PID SECONDS: SIGINT to PID's process group (as Ctrl-C would) and
# wait for PID at most SECONDS (less after a second Ctrl-C); then a second
# SIGINT (mcpgate: stop draining, end at once) and at most 2 s more; then
# SIGKILL to whatever is left in the group.
stop() {
  local name=$1 pid=$2 secs=$3 i
  kill -INT -- "-$pid" 2>/dev/null || kill -INT "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10 && hurry == 0; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "run-demo: $name still running; SIGINT again" >&2
    kill -INT -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "run-demo: $name still running; killing it" >&2
    fi
  fi
  kill -KILL -- "-$pid" 2>/dev/null || true
}

hurry=0
cleanup() {
  trap 'hurry=1' INT TERM HUP # a second Ctrl-C: do not wait for the drain
  if [ -n "$gate_pid" ]; then stop mcpgate "$gate_pid" "$GATE_STOP_SECS"; fi
  if [ -n "$upstream_pid" ]; then stop "demo upstream" "$upstream_pid" "$UPSTREAM_STOP_SECS"; fi
  gate_pid="" upstream_pid=""
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# wait_listening NAME PID ADDR SECONDS
wait_listening() {
  local name=$1 pid=$2 addr=$3 secs=$4 i
  for ((i = 0; i < secs * 10; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "error: the $name exited before listening on $addr (is $addr in use?)" >&2
      exit 1
    fi
    listening "$addr" && return 0
    sleep 0.1
  done
  echo "error: the $name did not listen on $addr within ${secs}s" >&2
  exit 1
}

# set -m: each child gets its own process group, and SIGINT is not ignored in
# it (without job control bash starts background commands with SIGINT ignored).
set -m
"$bin/demo-upstream" --listen "$upstream" &
upstream_pid=$!
set +m
wait_listening "demo upstream" "$upstream_pid" "$upstream" 10

set -m
"$bin/mcpgate" run --config "$config" &
gate_pid=$!
set +m
wait_listening mcpgate "$gate_pid" "$listen" 30

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

# Until Ctrl-C (the INT trap exits, the EXIT trap stops both) or until one of
# them exits by itself: then the other is stopped too.
status=0
wait -n "$gate_pid" "$upstream_pid" || status=$?
if ! kill -0 "$gate_pid" 2>/dev/null; then
  echo "run-demo: mcpgate exited (status $status); stopping the demo upstream" >&2
else
  echo "run-demo: the demo upstream exited (status $status); stopping mcpgate" >&2
fi
exit "$status"
