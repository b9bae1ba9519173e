#!/bin/sh
# Runs fake-windows.py's install selection over every shared fixture
# (deploy/agent/fixtures/selection/*.json) and fails on the first mismatch.
# hotpatch-executor.ps1 selftest runs the same fixtures on Windows.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fixtures=${1:-"$here/../../../../deploy/agent/fixtures/selection"}
count=0
failed=0
for fixture in "$fixtures"/*.json; do
    [ -e "$fixture" ] || { echo "no fixtures in $fixtures" >&2; exit 1; }
    if ! expected=$(python3 -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))["expected"]))' "$fixture"); then
        echo "FAIL $(basename "$fixture"): no \"expected\" list in it" >&2
        failed=$((failed + 1))
    elif ! actual=$("$here/fake-windows.py" select <"$fixture"); then
        echo "FAIL $(basename "$fixture"): fake-windows.py select failed" >&2
        failed=$((failed + 1))
    elif [ "$actual" != "$expected" ]; then
        echo "FAIL $(basename "$fixture"): expected [$(echo $expected)], got [$(echo $actual)]" >&2
        failed=$((failed + 1))
    fi
    count=$((count + 1))
done
echo "$((count - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
