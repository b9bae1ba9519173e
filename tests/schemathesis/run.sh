#!/usr/bin/env bash
# Schemathesis against a real hotpatchd: every operation of api/openapi.json, every check
# (`--checks all`), on a fresh database, with an admin token (and an agent token for /v1/agent/*).
#
#   tests/schemathesis/run.sh           # full: 350 examples per operation, > 20,000 requests
#   tests/schemathesis/run.sh --quick   # a short pass for CI: 10 examples per operation
#
# Needs: PostgreSQL at $PGURL (default postgres://postgres@127.0.0.1:5432), psql, curl, jq, and
# the PyPI package `schemathesis` (`pip install schemathesis`; 4.x). Builds hotpatchd (dev
# profile unless HOTPATCH_PROFILE=release, or takes HOTPATCH_BIN). Exits non-zero on any failure; prints the request
# count. Reports (JSON, NDJSON) go to $ST_REPORT_DIR (default target/schemathesis).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

examples=${ST_MAX_EXAMPLES:-350}
# One worker: with more, schemathesis 4.32 on CPython 3.11 sometimes fails inside its own
# generator ("AST constructor recursion depth mismatch"), threads compiling at once.
workers=${ST_WORKERS:-1}
[[ ${1:-} == --quick ]] && examples=10
pgurl=${PGURL:-postgres://postgres@127.0.0.1:5432}
profile=${HOTPATCH_PROFILE:-dev}
report_dir=${ST_REPORT_DIR:-$root/target/schemathesis}
db="schemathesis_$$"

command -v schemathesis >/dev/null || { echo "schemathesis is not installed: pip install schemathesis" >&2; exit 2; }
echo "schemathesis $(schemathesis --version | awk '{print $NF}'), $examples examples per operation"

# HOTPATCH_BIN: a hotpatchd already built (skips the build).
if [[ -n ${HOTPATCH_BIN:-} ]]; then
  bin=$HOTPATCH_BIN
else
  SQLX_OFFLINE=true cargo build -q --profile "$profile" -p hotpatch-server --bin hotpatchd
  target=${CARGO_TARGET_DIR:-$root/target}
  bin="$target/$([[ $profile == dev ]] && echo debug || echo "$profile")/hotpatchd"
fi

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  psql "$pgurl/postgres" -qc "drop database if exists $db" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
psql "$pgurl/postgres" -qc "create database $db" >/dev/null

# Rate limits off: schemathesis sends thousands of requests from one address with one token.
token="st_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
DATABASE_URL="$pgurl/$db" HOTPATCH_ADMIN_TOKEN="$token" HOTPATCH_LISTEN=127.0.0.1:0 \
  HOTPATCH_RATE_LIMIT_PER_TOKEN=0 HOTPATCH_RATE_LIMIT_PER_ADDRESS=0 HOTPATCH_LOG=warn,hotpatch_server=info \
  "$bin" >"$tmp/server.log" 2>&1 &
server_pid=$!
url=""
for _ in $(seq 1 300); do
  url=$(grep -o 'listening on [0-9.:]*' "$tmp/server.log" | head -1 | sed 's/listening on /http:\/\//') || true
  [[ -n $url ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n $url ]] || { echo "hotpatchd did not start" >&2; exit 1; }

# /v1/agent/* answer only agent tokens (403 to any other): one machine and its agent token.
auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')
machine=$(curl -sf "${auth[@]}" "$url/v1/machines" -d '{"name":"st-agent","platform":"azure_vm","os":"windows_server_2025","region":"westeurope","timezone":"UTC","edition":"datacenter"}' | jq -r .id)
agent_token=$(curl -sf "${auth[@]}" "$url/v1/machines/$machine/agent-token" -d '{}' | jq -r .token)
[[ -n $agent_token && $agent_token != null ]] || { echo "could not create the agent token" >&2; exit 1; }

sed -e "s|@TOKEN@|$token|" -e "s|@AGENT_TOKEN@|$agent_token|" "$root/tests/schemathesis/schemathesis.toml" >"$tmp/schemathesis.toml"
rm -rf "$report_dir"
started=$(date +%s)
status=0
# GET /v1/events is a Server-Sent Events stream that never ends: schemathesis waits for the end
# of a body, so every request would hit the timeout. tests/api/events.rs covers it.
# Run from $tmp: schemathesis keeps a cache (.schemathesis/) in its working directory, and
# replaying an earlier run's findings would make two runs of one seed differ.
(cd "$tmp" && schemathesis --config-file "$tmp/schemathesis.toml" run "$root/api/openapi.json" \
  --url "$url" --checks all --max-examples "$examples" --workers "$workers" --exclude-path /v1/events \
  --request-timeout 30 --seed "${ST_SEED:-20261203}" --no-color --output-truncate false \
  --report json,ndjson --report-dir "$report_dir") || status=$?
elapsed=$(( $(date +%s) - started ))
# Requests: every interaction schemathesis recorded (its own count, as the server saw them).
requests=$(python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    e = json.loads(line).get("ScenarioFinished")
    if e:
        n += len(e["recorder"].get("interactions") or {})
print(n)' "$report_dir"/ndjson-*.ndjson)
echo "schemathesis $(schemathesis --version | awk '{print $NF}'): exit $status, $requests requests in ${elapsed}s ($examples examples per operation)"
if grep -q ' panicked\|ERROR' "$tmp/server.log"; then
  echo "hotpatchd logged errors:" >&2
  grep ' panicked\|ERROR' "$tmp/server.log" | head -20 >&2
  status=1
fi
exit "$status"
