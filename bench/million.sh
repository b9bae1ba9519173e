#!/usr/bin/env bash
# A fleet of a million machines on one PostgreSQL (release build; issue 21, goal 4): a fresh
# hotpatchd on its own database of the local PostgreSQL, the sample catalog, then over HTTP:
#   import   — MACHINES machines through `POST /v1/machines/import`, 10,000 a request (ten regions
#              in five geo-pairs, zones 1–3, every fourth machine in an availability set of ten over
#              five update domains, eight time zones, three labels); the request bodies are written
#              first, so the figure is the server's;
#   summary  — `GET /v1/fleet/summary` as a whole, by region and by a label, ROUNDS times each;
#   preview  — `POST /v1/rollouts/preview?machines=false` for every machine of Windows Server 2022;
#   create   — `POST /v1/rollouts` of the same plan (every rollout machine row written);
#   tick     — the rollout dispatcher's passes (`hotpatch_duty_duration_seconds{duty="rollout_dispatcher"}`)
#              over TICK_SECONDS once the rollout is written: no agent is connected, so after its first
#              passes nothing changes;
#   status   — a portal lists LIST machines with `include=patch_status` (1,000 a page): the time, and
#              what the patch status cache keeps (`hotpatch_status_cache_bytes`, its budget
#              HOTPATCH_STATUS_CACHE_MB) against the server's RSS.
# Prints `name value unit` lines, then the server's peak RSS. Targets (issue 21): import < 60 s,
# summary < 1 s, preview < 10 s, create < 30 s, RSS < 2 GiB, tick < 200 ms when nothing changes.
# Env: PGURL (default postgres://postgres@127.0.0.1:5432), MACHINES (1000000), ROUNDS (3),
#      TICK_SECONDS (30), LIST (100000), KEEP_DB (unset: the database is dropped at the end).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
pgurl="${PGURL:-postgres://postgres@127.0.0.1:5432}"
machines="${MACHINES:-1000000}"
rounds="${ROUNDS:-3}"
tick_seconds="${TICK_SECONDS:-30}"
list="${LIST:-100000}"
db=hotpatch_bench_million
tmp=$(mktemp -d)
server_pid=""
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$tmp"
  [[ -n ${KEEP_DB:-} ]] || psql "$pgurl/postgres" -qc "drop database if exists $db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for tool in jq curl python3 psql bc; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done

cargo build --release -q -p hotpatch-server --manifest-path "$root/Cargo.toml"
bin="$root/target/release"
ulimit -n "$(ulimit -Hn)"

# ---- the request bodies, written before the clock starts
python3 - "$machines" "$tmp" <<'PY'
import json, sys
total, out = int(sys.argv[1]), sys.argv[2]
regions = ["westeurope", "northeurope", "eastus", "westus", "uksouth", "ukwest",
           "eastasia", "southeastasia", "australiaeast", "australiasoutheast"]
zones = ["Europe/Berlin", "Europe/Dublin", "America/New_York", "America/Los_Angeles",
         "Europe/London", "Asia/Tokyo", "Asia/Singapore", "Australia/Sydney"]
def machine(i):
    r = i % 10
    region, k = regions[r], i // 10
    m = {"name": f"m-{i:07d}", "platform": "azure_vm", "os": "windows_server_2022",
         "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
                   "sku": "2022-datacenter-azure-edition-hotpatch"},
         "region": region, "timezone": zones[(r + k) % 8 if r < 6 else 5 + (k % 3)],
         "hotpatch_enabled": i % 7 != 0,
         "labels": {"env": ["prod", "staging", "dev"][i % 3], "team": f"t{i % 40}", "tier": str(i % 4)}}
    if k % 4 == 3:
        m.update({"availability_set": f"as-{region}-{k // 40}", "update_domain": (k // 4) % 5})
    else:
        m["availability_zone"] = str(k % 3 + 1)
    return m
for c, start in enumerate(range(0, total, 10000)):
    with open(f"{out}/chunk-{c:03d}.json", "w") as f:
        json.dump([machine(i) for i in range(start, min(start + 10000, total))], f)
PY

source "$here/lib.sh"
HOTPATCH_AUTOMATIC_ROLLOUTS=false start_server "$db"
auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')
publish_sample_catalog
# The ten regions are five of the geo-pairs the database is seeded with.

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
rss() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$server_pid/status"; }
metric() { curl -sf "$url/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

# ---- import
started=$(now)
for f in "$tmp"/chunk-*.json; do
  curl -sf "${auth[@]}" "$url/v1/machines/import" --data-binary @"$f" -o /dev/null
done
echo "million_import $(since "$started") s"
rm -f "$tmp"/chunk-*.json
psql "$pgurl/$db" -qc "vacuum analyze" >/dev/null

# ---- fleet summary
timed_get() { # name path
  curl -sf "${auth[@]}" -o "$tmp/answer.json" -w "$1 %{time_total} s\n" "$url$2"
}
for ((round = 1; round <= rounds; round++)); do
  timed_get million_summary "/v1/fleet/summary"
  timed_get million_summary_by_region "/v1/fleet/summary?group_by=region"
  timed_get million_summary_by_label "/v1/fleet/summary?group_by=label:team"
done
echo "million_summary_machines $(jq .machines "$tmp/answer.json") machines"

# ---- rollout preview and create
release=$(curl -sf "${auth[@]}" "$url/v1/releases?os=windows_server_2022&limit=1000" \
  | jq -r '[.items[] | select(.superseded_by == null)] | sort_by(.month) | last | .id')
body="{\"release_id\": \"$release\", \"options\": {\"region_order\": [\"westeurope\"]}}"
timed_post() { # name path
  local code
  code=$(curl -s "${auth[@]}" -o "$tmp/answer.json" -w '%{http_code} %{time_total}' "$url$2" -d "$body")
  [[ ${code%% *} == 200 || ${code%% *} == 201 ]] || { echo "$1: HTTP ${code%% *}: $(head -c 500 "$tmp/answer.json")" >&2; exit 1; }
  echo "$1 ${code##* } s"
}
for ((round = 1; round <= rounds; round++)); do
  timed_post million_preview "/v1/rollouts/preview?machines=false"
done
echo "million_preview_machines $(jq '.machine_count // .counts.planned' "$tmp/answer.json") machines"
echo "million_rss_after_preview $(rss) MiB"
timed_post million_create "/v1/rollouts"
rollout=$(jq -r .id "$tmp/answer.json")
echo "million_rss_after_create $(rss) MiB"

# ---- the dispatcher with a million rollout machines: its first passes open the first batch and
# enqueue what is due; then nothing changes (no agent claims anything)
sleep 10
sum0=$(metric 'hotpatch_duty_duration_seconds_sum{duty="rollout_dispatcher"}')
count0=$(metric 'hotpatch_duty_duration_seconds_count{duty="rollout_dispatcher"}')
sleep "$tick_seconds"
sum1=$(metric 'hotpatch_duty_duration_seconds_sum{duty="rollout_dispatcher"}')
count1=$(metric 'hotpatch_duty_duration_seconds_count{duty="rollout_dispatcher"}')
echo "million_tick_mean $(echo "scale=1; 1000 * ($sum1 - $sum0) / ($count1 - $count0)" | bc) ms ($((${count1%.*} - ${count0%.*})) passes)"
curl -sf "${auth[@]}" "$url/v1/rollouts/$rollout" | jq -c '{state, counts: (.counts // .machines)}' >&2

# ---- a portal lists LIST machines with their patch status
list_with_status "$list" 2>"$tmp/listed.txt" >/dev/null
echo "million_list_with_status $(grep -o 'in [0-9.]* s' "$tmp/listed.txt" | cut -d' ' -f2) s ($(grep -o '[0-9]* machines' "$tmp/listed.txt"))"
echo "million_status_cache $(echo "$(metric hotpatch_status_cache_bytes) / 1048576" | bc) MiB"
echo "million_rss $(rss) MiB"
echo "million_peak_rss $(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$server_pid/status") MiB"
