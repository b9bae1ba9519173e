#!/usr/bin/env bash
# The fault suite (issue 16, point 12): a rollout over a simulated fleet served by two hotpatchd
# replicas, while the suite kills and freezes replicas, agents and the database; then it checks
# from the database that nothing was lost or done twice, and prints the recovery times.
#
#   bash tests/faults/run.sh            # 500 machines, 20 replica kills, 3 PostgreSQL restarts,
#                                       # 10 pg_terminate_backend rounds, 4 agent faults, 2 freezes
#   bash tests/faults/run.sh --quick    # 100 machines, 3 kills, 1 restart, 2 terminates, 2 agent
#                                       # faults, 1 freeze
#
# What it does:
# 1. Builds the release binaries (`cargo build --release`, honours CARGO_TARGET_DIR) and starts
#    its own PostgreSQL cluster (initdb in a temporary directory, a free port, as the `postgres`
#    user when run as root; track_commit_timestamp on) so it can restart it at will.
# 2. Starts two hotpatchd replicas on one database (movable clock, 10 s leases, dispatcher every
#    200 ms), installs the audit trigger of setup.sql, starts a change-feed reader
#    (events_reader.py, reconnecting with Last-Event-ID) and four `hotpatch-agent simulate`
#    processes (a quarter of the fleet each, two per replica, state on disk, one shared
#    `--execution-log`).
# 3. Publishes releases and drives their rollouts one after another (baseline, hotpatch, hotpatch,
#    …; the clock moves into the next window when nothing runs) for as long as the faults go on.
# 4. Meanwhile, in a shuffled order a few seconds apart: kill -9 of a random replica and its
#    restart (time to /readyz 200), `pg_ctl restart -m fast` (time until both replicas answer a
#    database read), pg_terminate_backend of every backend of the service (same), SIGSTOP of a
#    simulator beyond the lease then SIGCONT, kill -9 of a simulator and its restart on the same
#    state directory, and SIGSTOP of the replica leading the rollout dispatcher for 20 s (time
#    until the other replica's `hotpatch_duty_passes_total{duty="rollout_dispatcher",
#    outcome="done"}` rises).
# 5. Waits (bounded) for the last rollout and the queue to drain, loads the execution log and the
#    ids the reader received, runs checks.sql, prints the checks and the recovery times
#    (min / median / max), and exits 1 when a hard check fails.
#
# Env: MACHINES, KILLS, PG_RESTARTS, TERMINATES, AGENT_FAULTS, FREEZES override the mode's counts;
# GAP (seconds between faults, 3), SEED (shuffle, 1), KEEP=1 keeps the temporary directory
# (kept anyway when a check fails). Needs curl, jq, psql, python3 and PostgreSQL's server binaries.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

quick=0
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,33p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
if ((quick)); then
  : "${MACHINES:=100}" "${KILLS:=3}" "${PG_RESTARTS:=1}" "${TERMINATES:=2}" "${AGENT_FAULTS:=2}" "${FREEZES:=1}"
else
  : "${MACHINES:=500}" "${KILLS:=20}" "${PG_RESTARTS:=3}" "${TERMINATES:=10}" "${AGENT_FAULTS:=4}" "${FREEZES:=2}"
fi
GAP=${GAP:-3}
SEED=${SEED:-1}
LEASE=10
SIMS=4
FREEZE_SECS=20
REGIONS=northeurope,eastus,westus
for tool in curl jq psql python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done

source "$here/lib.sh"

tmp=$(mktemp -d /tmp/hotpatch-faults.XXXXXX)
chmod 755 "$tmp"
mkdir -p "$tmp/rec"
failed_checks=1
trap cleanup EXIT
log "temporary directory $tmp (mode: $( ((quick)) && echo quick || echo full), $MACHINES machines)"

# 1. Binaries and PostgreSQL.
log "building release binaries"
(cd "$root" && cargo build --release -q --bin hotpatchd --bin hotpatch-agent)
bin="${CARGO_TARGET_DIR:-$root/target}/release"
start_postgres

# 2. Two replicas, the audit trigger, the event reader, the fleet.
token="faults_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ports=("$(free_port)" "$(free_port)")
urls=("http://127.0.0.1:${ports[0]}" "http://127.0.0.1:${ports[1]}")
rpid=("" "")
start_replica 0
wait_ready 0 120 >/dev/null || die "replica 0 did not become ready"
psql_db -q -f "$here/setup.sql"
start_replica 1
wait_ready 1 120 >/dev/null || die "replica 1 did not become ready"
python3 "$here/events_reader.py" "$tmp/seen.txt" "$token" "${urls[@]}" 2>"$tmp/events_reader.log" &
reader_pid=$!
api PUT /v1/admin/clock '{"now": "2027-01-10T12:00:00Z"}' >/dev/null || die "cannot set the clock"
per_sim=$((MACHINES / SIMS))
for ((i = 0; i < SIMS; i++)); do start_sim "$i"; done
for ((i = 0; i < SIMS; i++)); do
  wait_for_line "$tmp/sim$i.log" "simulate: ready $per_sim machines" 300 || die "simulator $i did not start"
done
log "fleet ready: $SIMS simulators × $per_sim machines"

# 3. Rollouts, in the background until the faults are over.
drive_rollouts >"$tmp/driver.log" 2>&1 &
driver_pid=$!
wait_for_line "$tmp/driver.log" "rollout 1 started" 120 || die "the first rollout did not start"

# 4. The faults, shuffled.
faults=()
for ((k = 0; k < KILLS; k++)); do faults+=(kill); done
for ((k = 0; k < PG_RESTARTS; k++)); do faults+=(pg_restart); done
for ((k = 0; k < TERMINATES; k++)); do faults+=(terminate); done
for ((k = 0; k < AGENT_FAULTS; k++)); do faults+=("agent_$((k % 2 == 0 ? 0 : 1))"); done
for ((k = 0; k < FREEZES; k++)); do faults+=(freeze); done
mapfile -t faults < <(printf '%s\n' "${faults[@]}" | shuf --random-source=<(yes "$SEED"))
agent_jobs=()
agent_kills=0
agent_n=0
faults_started=$(now)
for f in "${faults[@]}"; do
  case $f in
    kill) fault_kill_replica ;;
    pg_restart) fault_pg_restart ;;
    terminate) fault_terminate ;;
    agent_*)
      # Each agent fault on the next simulator, in the background: the other faults go on.
      sim=$((agent_n % SIMS))
      agent_n=$((agent_n + 1))
      if [[ $f == agent_0 ]]; then
        fault_agent_stop "$sim" &
      else
        fault_agent_kill "$sim" &
        agent_kills=$((agent_kills + 1))
      fi
      agent_jobs+=($!)
      ;;
    freeze) fault_freeze_leader ;;
  esac
  sleep "$GAP"
done
for j in "${agent_jobs[@]}"; do wait "$j" || true; done
touch "$tmp/faults.done"
log "faults over after $(elapsed "$faults_started") s; waiting for the last rollout"

# 5. Quiet, then the verdict.
deadline=$((SECONDS + (quick ? 600 : 1200)))
while kill -0 "$driver_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 1; done
if kill -0 "$driver_pid" 2>/dev/null; then
  log "the rollouts did not finish in time (see $tmp/driver.log)"
  kill "$driver_pid" 2>/dev/null || true
fi
wait "$driver_pid" 2>/dev/null || true
wait_queue_drained 180 || log "the queue did not drain in time"
wait_reader_caught_up 60 || log "the event reader did not catch up in time"
kill "$reader_pid" 2>/dev/null || true
wait "$reader_pid" 2>/dev/null || true
stop_sims
load_evidence
report "$agent_kills"
