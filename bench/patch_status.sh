#!/usr/bin/env bash
# Patch status polled by portals (release build): a fresh hotpatchd on its own database of the local
# PostgreSQL, 100,000 machines (import API, 10,000 per request) and the sample catalog. A portal
# lists the fleet once (`GET /v1/machines?include=patch_status`, 1,000 a page: every machine's
# answer and its ETag, which the server keeps in memory), then polls random machines with
# `wrk -t2 -c64`: full answers, then 304s (If-None-Match with the listed ETags). The same two
# polls run again against a hotpatchd that keeps nothing (HOTPATCH_STATUS_CACHE_MB=0): every
# answer computed from PostgreSQL. Then the bare axum + sqlx primary-key read of ../shared/limits
# (the `http_machine_rps` line of run_limits.sh: its server under the same `wrk -t2 -c64`), and
# the ratios.
# Env: PGURL (default postgres://postgres@127.0.0.1:5432), MACHINES (100000), SECONDS_RUN (15),
#      LIMITS_DIR (../shared/limits), PORT (8088, the limits server).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
pgurl="${PGURL:-postgres://postgres@127.0.0.1:5432}"
machines="${MACHINES:-100000}"
secs="${SECONDS_RUN:-15}"
limits="${LIMITS_DIR:-$root/../shared/limits}"
port="${PORT:-8088}"
tmp=$(mktemp -d)
server_pid=""
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }

cargo build --release -q -p hotpatch-server --manifest-path "$root/Cargo.toml"
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

# ---- the portal lists the fleet once: every machine's answer and ETag (kept by the server)
list_with_status "$machines" >"$tmp/tags.txt"
cut -d' ' -f1 "$tmp/tags.txt" >"$tmp/ids.txt"

# poll NAME IDS: warm-up 2 s, then `wrk -t2 -c64` for $secs s of random machines of IDS; prints
# NAME_rps, NAME_p50, NAME_p99 (and NAME_304_share).
export HOTPATCH_TOKEN="$token" LIMITS_DIR="$limits"
poll() {
  local name=$1 ids=$2
  IDS_FILE="$ids" wrk -t2 -c64 -d2s -s "$here/wrk/status.lua" "$url/" >/dev/null 2>&1
  IDS_FILE="$ids" wrk -t2 -c64 -d"${secs}s" --latency -s "$here/wrk/status.lua" "$url/" >"$tmp/wrk_$name.txt" 2>&1
  local line; line=$(grep '^WRKSUM' "$tmp/wrk_$name.txt") || { cat "$tmp/wrk_$name.txt" >&2; exit 1; }
  eval "$(sed -E 's/^WRKSUM //' <<<"$line" | tr ' ' '\n' | sed -E 's/^/p_/')"
  [[ $p_errors == 0 && $p_non2xx == 0 ]] || { echo "$name: $p_errors socket errors, $p_non2xx bad answers" >&2; exit 1; }
  awk -v n="$name" -v rps="$p_rps" -v p50="$p_p50_us" -v p99="$p_p99_us" -v nm="$p_not_modified" -v all="$p_requests" 'BEGIN {
    printf "%s_rps %.0f req/s\n%s_p50 %.2f ms\n%s_p99 %.2f ms\n", n, rps, n, p50 / 1000, n, p99 / 1000
    if (nm > 0) printf "%s_304_share %.3f ratio\n", n, nm / all }'
}

# ---- polls answered from memory (the server keeps what it computed), then computed every time
poll status_full "$tmp/ids.txt" >"$tmp/status.txt"
poll status_304 "$tmp/tags.txt" >>"$tmp/status.txt"
echo "status_kept_rss $(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$server_pid/status") MiB" >>"$tmp/status.txt"
stop_server
HOTPATCH_STATUS_CACHE_MB=0 restart_server hotpatch_bench_status
poll status_computed_full "$tmp/ids.txt" >>"$tmp/status.txt"
poll status_computed_304 "$tmp/tags.txt" >>"$tmp/status.txt"
stop_server
cat "$tmp/status.txt"

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
awk -v r="$w_rps" '$1 ~ /_rps$/ { sub(/_rps$/, "", $1); printf "%s_ratio_to_http_machine %.2f ratio\n", $1, $2 / r }' "$tmp/status.txt"
