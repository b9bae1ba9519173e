#!/usr/bin/env bash
# Times POST /v1/machines/import of 10,000 valid machines against a running hotpatchd.
#   HOTPATCH_URL (default http://127.0.0.1:8080), HOTPATCH_TOKEN (operator or admin), RUNS (default 5)
# Prints one line per run and a summary line: `import_10k_seconds min=… median=… max=…`.
set -euo pipefail
url="${HOTPATCH_URL:-http://127.0.0.1:8080}"
token="${HOTPATCH_TOKEN:?set HOTPATCH_TOKEN to an operator or admin token}"
runs="${RUNS:-5}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

times=()
for run in $(seq 1 "$runs"); do
  prefix="bench-$(date +%s%N)-$run"
  python3 - "$prefix" > "$tmp/fleet.json" <<'PY'
import json, sys
prefix = sys.argv[1]
regions = ["westeurope", "northeurope", "eastus", "uksouth", "eastasia"]
zones = ["Europe/Berlin", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "UTC"]
skus = ["2022-datacenter-azure-edition-hotpatch", "2022-datacenter-azure-edition-core", "2022-datacenter"]
items = []
for i in range(10_000):
    items.append({
        "name": f"{prefix}-{i:05}", "platform": "azure_vm", "os": "windows_server_2022",
        "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": skus[i % 3]},
        "region": regions[i % 5], "availability_zone": str(i % 3 + 1), "timezone": zones[i % 5],
        "hotpatch_enabled": i % 3 != 2, "labels": {"env": "bench", "shard": str(i % 16)},
    })
json.dump(items, sys.stdout)
PY
  t=$(curl -sS -o "$tmp/out.json" -w '%{http_code} %{time_total}' -X POST "$url/v1/machines/import" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' --data-binary @"$tmp/fleet.json")
  code=${t% *}; secs=${t#* }
  [[ $code == 201 ]] || { echo "run $run: HTTP $code: $(head -c 300 "$tmp/out.json")" >&2; exit 1; }
  echo "run $run: 10000 machines in ${secs}s ($(stat -c %s "$tmp/fleet.json") bytes)"
  times+=("$secs")
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "import_10k_seconds min=%s median=%s max=%s\n", a[1], a[int((NR+1)/2)], a[NR]}'
