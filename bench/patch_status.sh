#!/usr/bin/env bash
# Patch status polled by portals (release build): a fresh hotpatchd on its own database of the local
# PostgreSQL, 100,000 machines (import API, 10,000 per request) and the sample catalog, then
# `hotpatch-agent bench status` (64 connections, random machines: full answers, then 304s with the
# ETags just seen), then the bare axum + sqlx primary-key read of ../shared/limits (the
# `http_machine_rps` line of run_limits.sh: its server under `wrk -t2 -c64`), and the ratios.
# Env: PGURL (default postgres://postgres@127.0.0.1:5432), MACHINES (100000), CONNECTIONS (64),
#      SECONDS_RUN (15), LIMITS_DIR (../shared/limits), PORT (8088, the limits server).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
pgurl="${PGURL:-postgres://postgres@127.0.0.1:5432}"
machines="${MACHINES:-100000}"
connections="${CONNECTIONS:-64}"
secs="${SECONDS_RUN:-15}"
limits="${LIMITS_DIR:-$root/../shared/limits}"
port="${PORT:-8088}"
tmp=$(mktemp -d)
server_pid=""
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }

cargo build --release -q -p hotpatch-server -p hotpatch-agent --manifest-path "$root/Cargo.toml"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/limits-target}" cargo build --release -q --manifest-path "$limits/Cargo.toml"
limits_bin="${CARGO_TARGET_DIR:-/tmp/limits-target}/release"
bin="$root/target/release"
ulimit -n "$(ulimit -Hn)"

# ---- hotpatchd on a fresh database
source "$here/lib.sh"
start_server hotpatch_bench_status
auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')

# ---- the sample catalog, then the fleet (half hotpatch on, three regions, four zones)
publish_sample_catalog
started=$(date +%s.%N)
for ((chunk = 0; chunk < machines; chunk += 10000)); do
  python3 - "$chunk" "$(( machines - chunk < 10000 ? machines - chunk : 10000 ))" >"$tmp/chunk.json" <<'PY'
import json, sys
start, n = int(sys.argv[1]), int(sys.argv[2])
regions = ["westeurope", "eastus", "uksouth"]
zones = ["Europe/Berlin", "America/New_York", "Europe/London", "Asia/Tokyo"]
print(json.dumps([{
    "name": f"status-{i:06d}", "platform": "azure_vm", "os": "windows_server_2022",
    "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
              "sku": "2022-datacenter-azure-edition-hotpatch"},
    "region": regions[i % 3], "timezone": zones[i % 4], "hotpatch_enabled": i % 2 == 0,
    "labels": {"env": "prod" if i % 5 else "dev"}} for i in range(start, start + n)]))
PY
  curl -sf "${auth[@]}" "$url/v1/machines/import" --data-binary @"$tmp/chunk.json" -o /dev/null
done
echo "bench: $machines machines imported in $(echo "$(date +%s.%N) - $started" | bc) s" >&2

"$bin/hotpatch-agent" bench status --server "$url" --token "$token" --connections "$connections" --seconds "$secs" \
  | tee "$tmp/status.txt"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""

# ---- the bare primary-key read of ../shared/limits, as run_limits.sh measures it
ldb=limits_status
psql "$pgurl/postgres" -qc "drop database if exists $ldb" -c "create database $ldb" >/dev/null
psql "$pgurl/$ldb" -q -v ON_ERROR_STOP=1 -f "$limits/sql/machines_reset.sql" >/dev/null
export IDS_FILE="$tmp/limits_ids.txt"
psql "$pgurl/$ldb" -Atc "copy (select id from machines) to stdout" >"$IDS_FILE"
DATABASE_URL="$pgurl/$ldb" PGHOST=127.0.0.1 PGUSER=postgres PGDATABASE=$ldb POOL="${POOL_READ:-8}" BIND="127.0.0.1:$port" \
  "$limits_bin/limits-server" 2>"$tmp/limits.log" &
server_pid=$!
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/hello" && break; sleep 0.1; done
(cd "$limits" && wrk -t2 -c64 -d2s -s wrk/machine.lua "http://127.0.0.1:$port/") >/dev/null 2>&1
(cd "$limits" && wrk -t2 -c64 -d"${secs}s" --latency -s wrk/machine.lua "http://127.0.0.1:$port/") >"$tmp/wrk.txt" 2>&1
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
psql "$pgurl/postgres" -qc "drop database $ldb" >/dev/null
line=$(grep '^WRKSUM' "$tmp/wrk.txt") || { cat "$tmp/wrk.txt" "$tmp/limits.log" >&2; exit 1; }
eval "$(sed -E 's/^WRKSUM //' <<<"$line" | tr ' ' '\n' | sed -E 's/^/w_/')"
awk -v rps="$w_rps" -v p50="$w_p50_us" -v p99="$w_p99_us" 'BEGIN {
  printf "http_machine_rps %.0f req/s\nhttp_machine_p50 %.2f ms\nhttp_machine_p99 %.2f ms\n", rps, p50 / 1000, p99 / 1000 }'
full=$(awk '$1 == "status_full_rps" {print $2}' "$tmp/status.txt")
nm=$(awk '$1 == "status_304_rps" {print $2}' "$tmp/status.txt")
awk -v f="$full" -v n="$nm" -v r="$w_rps" 'BEGIN {
  printf "status_full_ratio_to_http_machine %.2f ratio\nstatus_304_ratio_to_http_machine %.2f ratio\n", f / r, n / r }'
