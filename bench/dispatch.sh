#!/usr/bin/env bash
# Dispatch benchmarks over HTTP (release build), each against a fresh hotpatchd on its own database
# of the local PostgreSQL:
#   queue — 64 agents drive JOBS jobs through claim → heartbeat → result (`hotpatch-agent bench queue`),
#           then the raw PostgreSQL claim+complete of ../shared/limits (pgbench, 8 clients,
#           synchronous_commit on, the `pg_queue_claim_complete_c8_sync_on` line) right after, and the ratio;
#   idle  — IDLE_AGENTS agents long-poll at once: the server's RSS while they wait, then the p99 time
#           from "assess now" to each sampled agent's claim answering (`hotpatch-agent bench idle`).
# Usage: bench/dispatch.sh [queue|idle|all]   (default all)
# Env: PGURL (default postgres://postgres@127.0.0.1:5432), JOBS (10000), AGENTS (64), IDLE_AGENTS (10000),
#      HEARTBEAT (1; 0: claim → result, a job that ends before its first heartbeat is due),
#      LIMITS_DIR (../shared/limits), PG_T (20, seconds of the raw pgbench run).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
what="${1:-all}"
pgurl="${PGURL:-postgres://postgres@127.0.0.1:5432}"
jobs="${JOBS:-10000}"
agents="${AGENTS:-64}"
idle_agents="${IDLE_AGENTS:-10000}"
limits="${LIMITS_DIR:-$root/../shared/limits}"
pg_t="${PG_T:-20}"
tmp=$(mktemp -d)
server_pid=""
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

cargo build --release -q -p hotpatch-server -p hotpatch-agent --manifest-path "$root/Cargo.toml"
bin="$root/target/release"
ulimit -n "$(ulimit -Hn)"

source "$here/lib.sh"

if [[ $what == queue || $what == all ]]; then
  start_server hotpatch_bench_queue
  "$bin/hotpatch-agent" bench queue --server "$url" --token "$token" --agents "$agents" --jobs "$jobs" \
    ${HEARTBEAT:+$([[ $HEARTBEAT == 0 ]] && echo --no-heartbeat)} | tee "$tmp/queue.txt"
  stop_server
  raw=$(raw_claim_complete limits_dispatch)
  echo "pg_queue_claim_complete_c8_sync_on $raw cycles/s"
  ours=$(awk '$1 == "queue_http_jobs_per_s" {print $2}' "$tmp/queue.txt")
  awk -v o="$ours" -v r="$raw" 'BEGIN { printf "queue_http_ratio_to_raw_claim %.2f ratio\n", o / r }'
fi

if [[ $what == idle || $what == all ]]; then
  start_server hotpatch_bench_idle
  "$bin/hotpatch-agent" bench idle --server "$url" --token "$token" --agents "$idle_agents"
  stop_server
fi
