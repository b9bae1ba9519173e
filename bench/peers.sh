#!/usr/bin/env bash
# Peers side by side (issue 21, goal 5), in-process, release build (bench/peers/, a package of its
# own outside the workspace): JOBS jobs through our store's claim → complete (WORKERS concurrent
# loops, each statement its own transaction), through the batched claim_many → complete_many
# (BATCH_WORKERS runners of BATCH jobs, the service's batch shape), and through the peer queue
# `underway` (WORKERS loops of its worker step), each on a fresh database; ROUNDS rounds, the
# order of the sides reversed every other round. Then the raw claim+complete of ../shared/limits
# (pgbench, 8 clients, synchronous_commit on: the `pg_queue_claim_complete_c8_sync_on` line) and
# a summary: each figure's median over the rounds and its ratio to that line.
# Usage: bench/peers.sh
# Env: PGURL (default postgres://postgres@127.0.0.1:5432), JOBS (20000), WORKERS (8), BATCH (32),
#      BATCH_WORKERS (2), ROUNDS (3), LIMITS_DIR (../shared/limits), PG_T (20, seconds of the raw
#      pgbench run), CARGO_TARGET_DIR (default /tmp/peers-target: the main target stays as it is).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
pgurl="${PGURL:-postgres://postgres@127.0.0.1:5432}"
jobs="${JOBS:-20000}"
workers="${WORKERS:-8}"
batch="${BATCH:-32}"
batch_workers="${BATCH_WORKERS:-2}"
rounds="${ROUNDS:-3}"
limits="${LIMITS_DIR:-$root/../shared/limits}"
pg_t="${PG_T:-20}"
tmp=$(mktemp -d)
server_pid=""
cleanup() { wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/peers-target}"
# From the package's folder, so the repository's .cargo/config.toml (SQLX_OFFLINE) applies.
(cd "$here/peers" && cargo build --release -q --locked)
bin="$CARGO_TARGET_DIR/release"

source "$here/lib.sh"

for round in $(seq 1 "$rounds"); do
  if (( round % 2 == 1 )); then sides=(ours ours-batch underway); else sides=(underway ours-batch ours); fi
  echo "# round $round: ${sides[*]}"
  PGURL="$pgurl" "$bin/hotpatch-peers-bench" --jobs "$jobs" --workers "$workers" --batch "$batch" \
    --batch-workers "$batch_workers" "${sides[@]}" | tee -a "$tmp/peers.txt"
done

raw=$(raw_claim_complete limits_peers)
echo "pg_queue_claim_complete_c8_sync_on $raw cycles/s"

echo "# median of $rounds rounds, and its ratio to pg_queue_claim_complete_c8_sync_on"
awk '$3 == "jobs/s" { print $1, $2 }' "$tmp/peers.txt" | sort -k1,1 -k2,2n | awk -v raw="$raw" -v c="$workers" '
  { v[$1] = v[$1] " " $2; n[$1]++ }
  END {
    for (name in v) {
      split(substr(v[name], 2), xs, " ")
      k = n[name]
      med = (k % 2) ? xs[(k + 1) / 2] : (xs[k / 2] + xs[k / 2 + 1]) / 2
      printf "%s %.0f jobs/s\n%s_ratio_to_raw_claim %.2f ratio\n", name, med, name, med / raw
      m[name] = med
    }
    ours = "peers_ours_claim_complete_c" c; peer = "peers_underway_claim_complete_c" c
    if ((ours in m) && (peer in m)) printf "peers_ours_to_underway_c%s %.2f ratio\n", c, m[ours] / m[peer]
  }' | sort
