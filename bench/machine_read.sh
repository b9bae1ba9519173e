#!/usr/bin/env bash
# GET /v1/machines/{id} for random machines under `wrk -t2 -c64` (the shape of ../shared/limits'
# http_machine line), against a running hotpatchd whose fleet is already registered (bench/import.sh).
#   HOTPATCH_URL (default http://127.0.0.1:8080), HOTPATCH_TOKEN (reader or above), SECONDS_RUN (default 15)
# Prints `machine_read_rps …`, `machine_read_p50_ms …`, `machine_read_p99_ms …`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
url="${HOTPATCH_URL:-http://127.0.0.1:8080}"
export HOTPATCH_TOKEN="${HOTPATCH_TOKEN:?set HOTPATCH_TOKEN}"
secs="${SECONDS_RUN:-15}"
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export IDS_FILE="$tmp/ids.txt"

# Every machine id, page by page.
cursor=""
while :; do
  curl -sSf -H "Authorization: Bearer $HOTPATCH_TOKEN" "$url/v1/machines?limit=1000${cursor:+&cursor=$cursor}" > "$tmp/page.json"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("\n".join(m["id"] for m in d["items"]))' "$tmp/page.json" >> "$IDS_FILE"
  cursor=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["next_cursor"] or "")' "$tmp/page.json")
  [[ -n $cursor ]] || break
done
echo "machines: $(wc -l < "$IDS_FILE")" >&2

wrk -t2 -c64 -d2s -s "$here/wrk/machine.lua" "$url" >/dev/null 2>&1
wrk -t2 -c64 -d"${secs}s" --latency -s "$here/wrk/machine.lua" "$url" > "$tmp/wrk.txt" 2>&1
line=$(grep '^WRKSUM' "$tmp/wrk.txt") || { cat "$tmp/wrk.txt" >&2; exit 1; }
eval "$(sed -E 's/^WRKSUM //' <<<"$line" | tr ' ' '\n' | sed -E 's/^/w_/')"
[[ $w_errors == 0 && $w_non2xx == 0 ]] || { echo "wrk: $w_errors errors, $w_non2xx non-2xx" >&2; exit 1; }
awk -v rps="$w_rps" -v p50="$w_p50_us" -v p99="$w_p99_us" 'BEGIN {
  printf "machine_read_rps %s req/s\nmachine_read_p50_ms %.2f ms\nmachine_read_p99_ms %.2f ms\n", rps, p50 / 1000, p99 / 1000 }'
