#!/usr/bin/env bash
# Rollout planning at fleet scale (release build): a fresh hotpatchd on its own database of the
# local PostgreSQL, the sample catalog and 100,000 machines (six regions, three of them geo-pairs;
# zones 1–3, and every fourth machine in an availability set of ten over five update domains; six
# time zones), then over HTTP, ROUNDS times each: `POST /v1/rollouts/preview?machines=false`,
# `POST /v1/rollouts/preview` (every machine's window in the answer) and `POST /v1/rollouts` (the
# plan written: the rollout, its batches and 100,000 machine rows). Prints each time in seconds.
# Targets (issue 6): preview < 5 s, create < 10 s.
# Env: PGURL (default postgres://postgres@127.0.0.1:5432), MACHINES (100000), ROUNDS (3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
pgurl="${PGURL:-postgres://postgres@127.0.0.1:5432}"
machines="${MACHINES:-100000}"
rounds="${ROUNDS:-3}"
tmp=$(mktemp -d)
server_pid=""
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
for tool in jq curl python3 psql; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done

cargo build --release -q -p hotpatch-server --manifest-path "$root/Cargo.toml"
bin="$root/target/release"

source "$here/lib.sh"
HOTPATCH_AUTOMATIC_ROLLOUTS=false start_server hotpatch_bench_rollouts
auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')

publish_sample_catalog
release=$(curl -sf "${auth[@]}" "$url/v1/releases?os=windows_server_2022&limit=1000" \
  | jq -r '[.items[] | select(.superseded_by == null)] | sort_by(.month) | last | .id')
started=$(date +%s.%N)
for ((chunk = 0; chunk < machines; chunk += 10000)); do
  python3 - "$chunk" "$(( machines - chunk < 10000 ? machines - chunk : 10000 ))" >"$tmp/chunk.json" <<'PY'
import json, sys
start, n = int(sys.argv[1]), int(sys.argv[2])
regions = ["westeurope", "northeurope", "eastus", "westus", "uksouth", "eastasia"]
zones = ["Europe/Berlin", "America/New_York", "Europe/London", "Asia/Tokyo", "America/Denver", "Australia/Sydney"]
def machine(i):
    region, k = regions[i % 6], i // 6
    m = {"name": f"plan-{i:06d}", "platform": "azure_vm", "os": "windows_server_2022",
         "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
                   "sku": "2022-datacenter-azure-edition-hotpatch"},
         "region": region, "timezone": zones[(i // 7) % 6], "hotpatch_enabled": True}
    if k % 4 == 3:
        m.update({"availability_set": f"as-{region}-{k // 40}", "update_domain": (k // 4) % 5})
    else:
        m["availability_zone"] = str(k % 3 + 1)
    return m
print(json.dumps([machine(i) for i in range(start, start + n)]))
PY
  curl -sf "${auth[@]}" "$url/v1/machines/import" --data-binary @"$tmp/chunk.json" -o /dev/null
done
echo "bench: $machines machines imported in $(echo "$(date +%s.%N) - $started" | bc) s" >&2

body="{\"release_id\": \"$release\", \"options\": {\"region_order\": [\"westeurope\"]}}"
timed() { # name, path: prints "<name> <seconds> s" and checks the answer's machine count
  local out="$tmp/answer.json" code
  code=$(curl -s "${auth[@]}" -o "$out" -w '%{http_code} %{time_total}' "$url$2" -d "$body")
  [[ ${code%% *} == 200 || ${code%% *} == 201 ]] || { echo "$1: HTTP ${code%% *}: $(head -c 500 "$out")" >&2; exit 1; }
  printf '%s %s s (%s bytes, %s machines)\n' "$1" "${code##* }" "$(stat -c %s "$out")" \
    "$(jq '.machine_count // .counts.planned' "$out")"
}
for ((round = 1; round <= rounds; round++)); do
  timed rollout_preview_counts "/v1/rollouts/preview?machines=false"
  timed rollout_preview_full "/v1/rollouts/preview"
  timed rollout_create "/v1/rollouts"
done
echo "bench: server peak RSS $(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' /proc/$server_pid/status)" >&2
