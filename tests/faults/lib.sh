# The fault suite's functions (sourced by run.sh, which sets $tmp, $bin, $token, $urls, $ports,
# $rpid, $MACHINES, $SIMS, $LEASE, $FREEZE_SECS, $REGIONS and the fault counts).

log() { printf '%s faults: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "$*"; exit 1; }
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc | awk '{printf "%.2f", $1}'; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_for_line FILE TEXT SECONDS
wait_for_line() {
  local deadline=$((SECONDS + $3))
  until grep -qF -- "$2" "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# --- PostgreSQL, the suite's own cluster -------------------------------------------------------

# The search hotpatchd and .ci/run do: HOTPATCH_PG_BIN_DIR, PATH, `pg_config --bindir`,
# /usr/lib/postgresql/*/bin.
find_pg_bindir() {
  local dir
  is_pg() { [[ -n "$1" && -x "$1/initdb" && -x "$1/pg_ctl" && -x "$1/postgres" ]]; }
  if is_pg "${HOTPATCH_PG_BIN_DIR:-}"; then echo "$HOTPATCH_PG_BIN_DIR"; return; fi
  if dir=$(command -v pg_ctl 2>/dev/null); then
    dir=$(dirname "$(readlink -f "$dir")")
    if is_pg "$dir"; then echo "$dir"; return; fi
  fi
  dir=$(pg_config --bindir 2>/dev/null || true)
  if is_pg "$dir"; then echo "$dir"; return; fi
  while read -r dir; do
    if is_pg "$dir"; then echo "$dir"; return; fi
  done < <(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r)
  return 1
}

# PostgreSQL refuses to run as root: then its commands run as the `postgres` user.
as_pg() {
  if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_ctl_() { as_pg "$pgbin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/server.log" "$@"; }

start_postgres() {
  pgbin=$(find_pg_bindir) || die "PostgreSQL's server binaries (initdb, pg_ctl, postgres) were not found"
  pgport=$(free_port)
  mkdir -p "$tmp/pg"
  ((EUID == 0)) && chown postgres: "$tmp/pg"
  as_pg "$pgbin/initdb" -D "$tmp/pg/data" -U postgres --auth=trust -E UTF8 >"$tmp/pg/initdb.log" 2>&1 \
    || { cat "$tmp/pg/initdb.log" >&2; die "initdb failed"; }
  cat >>"$tmp/pg/data/postgresql.conf" <<EOF
port = $pgport
listen_addresses = '127.0.0.1'
unix_socket_directories = '$tmp/pg'
max_connections = 200
track_commit_timestamp = on
fsync = off
full_page_writes = off
EOF
  pg_ctl_ -w start >/dev/null || { cat "$tmp/pg/server.log" >&2; die "PostgreSQL did not start"; }
  pgurl="postgres://postgres@127.0.0.1:$pgport"
  psql "$pgurl/postgres" -qc "create database hotpatch" >/dev/null
  log "PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on port $pgport ($tmp/pg/data)"
}

psql_db() { psql "$pgurl/hotpatch" -X -v ON_ERROR_STOP=1 "$@"; }
sql() { psql_db -At -c "$1"; }

# --- hotpatchd replicas ------------------------------------------------------------------------

start_replica() {
  local r=$1
  DATABASE_URL="$pgurl/hotpatch" HOTPATCH_ADMIN_TOKEN="$token" HOTPATCH_LISTEN="127.0.0.1:${ports[$r]}" \
    HOTPATCH_CLOCK_CONTROL=true HOTPATCH_AUTOMATIC_ROLLOUTS=false HOTPATCH_LEASE_SECS=$LEASE \
    HOTPATCH_DISPATCH_INTERVAL_MS=200 HOTPATCH_OFF_PEAK_MINUTES=1440 HOTPATCH_ASSESSMENT_INTERVAL_SECS=604800 \
    HOTPATCH_RATE_LIMIT_PER_TOKEN=0 HOTPATCH_RATE_LIMIT_PER_ADDRESS=0 HOTPATCH_LOG=warn,hotpatch_server=info \
    "$bin/hotpatchd" >>"$tmp/replica$r.log" 2>&1 &
  rpid[r]=$!
}

# wait_ready R SECONDS: prints the seconds until /readyz answered 200.
wait_ready() {
  local r=$1 t0 deadline=$((SECONDS + $2))
  t0=$(now)
  until [[ $(curl -s -m 2 -o /dev/null -w '%{http_code}' "${urls[$r]}/readyz") == 200 ]]; do
    ((SECONDS < deadline)) || return 1
    kill -0 "${rpid[$r]}" 2>/dev/null || { tail -20 "$tmp/replica$r.log" >&2; return 1; }
    sleep 0.05
  done
  elapsed "$t0"
}

# wait_db_reads T0 SECONDS: prints the seconds from T0 until both replicas answered a read of the
# database (GET /v1/machines) with 200.
wait_db_reads() {
  local t0=$1 deadline=$((SECONDS + $2)) r
  for r in 0 1; do
    until [[ $(curl -s -m 2 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
      "${urls[$r]}/v1/machines?limit=1") == 200 ]]; do
      ((SECONDS < deadline)) || return 1
      sleep 0.05
    done
  done
  elapsed "$t0"
}

# api METHOD PATH [BODY]: the answer's body; tries both replicas until a 2xx (90 s at most).
# Returns 2 on a 4xx (body on stdout), 1 when no replica answered.
api() {
  local method=$1 path=$2 code i=0 deadline=$((SECONDS + 90)) out="$tmp/api.$BASHPID"
  local args=(-s -m 10 -o "$out" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $token")
  [[ $# -ge 3 ]] && args+=(-H 'Content-Type: application/json' -d "$3")
  while ((SECONDS < deadline)); do
    code=$(curl "${args[@]}" "${urls[$((i++ % 2))]}$path") || code=000
    case $code in
      2*) cat "$out"; rm -f "$out"; return 0 ;;
      4*) echo "api: $method $path: $code $(head -c 300 "$out")" >&2; cat "$out"; rm -f "$out"; return 2 ;;
    esac
    sleep 0.3
  done
  echo "api: $method $path: no replica answered" >&2
  return 1
}

# duty_done R: the rollout dispatcher's passes done on replica R (empty when it does not answer).
duty_done() {
  curl -s -m 1 "${urls[$1]}/metrics" 2>/dev/null \
    | awk '/^hotpatch_duty_passes_total\{duty="rollout_dispatcher",outcome="done"\}/ {print $2}'
}

# --- the simulated fleet -----------------------------------------------------------------------

# start_sim I: simulator I (a quarter of the fleet, prefix f<I>), on replica I % 2.
start_sim() {
  local i=$1
  HOTPATCH_LOG=warn "$bin/hotpatch-agent" simulate --server "${urls[$((i % 2))]}" --token "$token" \
    --machines "$((MACHINES / SIMS))" --prefix "f$i" --regions "$REGIONS" --seed "$i" \
    --job-duration-ms 2000 --reboot-ms 1000 --wait 20 \
    --state-dir "$tmp/state/f$i" --execution-log "$tmp/executions.log" >>"$tmp/sim$i.log" 2>&1 &
  echo $! >"$tmp/sim$i.pid"
  disown $! # killed on purpose: no "Killed" line from the shell
}

stop_sims() {
  local i pid
  for ((i = 0; i < SIMS; i++)); do
    pid=$(cat "$tmp/sim$i.pid" 2>/dev/null) || continue
    kill -CONT "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
  done
  for ((i = 0; i < SIMS; i++)); do
    pid=$(cat "$tmp/sim$i.pid" 2>/dev/null) || continue
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

# --- the rollouts ------------------------------------------------------------------------------

service_now() { api GET /v1/admin/clock | jq -r .now; }
epoch() { date -d "$1" +%s; }

# publish N: release N of the sequence (month N of 2027 and on: a baseline every third month,
# hotpatches between); prints its id.
publish() {
  local n=$1 month kind kb build released body id
  month=$(date -d "2027-01-01 +$((n - 1)) month" +%Y-%m)
  kind=$( ((n % 3 == 1)) && echo baseline || echo hotpatch)
  kb=$(printf 'KB51%05d' "$n")
  build="20348.$((3000 + 30 * n))"
  released="${month}-14T18:00:00Z"
  if (($(epoch "$(service_now)") < $(epoch "$released"))); then
    api PUT /v1/admin/clock "{\"now\": \"$(date -u -d "$released +1 hour" +%FT%TZ)\"}" >/dev/null
  fi
  body="{\"os\": \"windows_server_2022\", \"kind\": \"$kind\", \"planned\": true, \"month\": \"$month\",
    \"kb\": \"$kb\", \"build\": \"$build\", \"released_at\": \"$released\"}"
  # A retried POST may find the release published by an answer that was lost.
  api POST /v1/releases "$body" >/dev/null || true
  id=$(sql "select id from release where kb = '$kb' and os = 'windows_server_2022'")
  [[ -n $id ]] || die "release $kb was not published"
  echo "$id"
}

# start_rollout RELEASE: prints the rollout's id; never creates two (looks in the database
# before each try, as an answer may be lost with a replica).
start_rollout() {
  local release=$1 id body
  body="{\"release_id\": \"$release\", \"selector\": {\"regions\": [\"${REGIONS//,/\", \"}\"]},
    \"options\": {\"max_batch_percent\": 100, \"region_order\": [\"northeurope\"], \"failure_threshold_percent\": 100}}"
  for _ in $(seq 1 60); do
    id=$(sql "select id from rollout where release_id = '$release'")
    [[ -n $id ]] && { echo "$id"; return 0; }
    curl -s -m 30 -o /dev/null -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      -d "$body" "${urls[$((RANDOM % 2))]}/v1/rollouts" || true
    sleep 0.5
  done
  die "the rollout of $release could not be started"
}

# drive ROLLOUT: until it succeeds; resumes it when halted; moves the clock into the next window
# when nothing is queued (as tests/e2e/rollouts.rs does).
drive() {
  local id=$1 r state queued next
  while :; do
    r=$(api GET "/v1/rollouts/$id") || { sleep 0.5; continue; }
    state=$(jq -r .state <<<"$r")
    case $state in
      succeeded) return 0 ;;
      canceled) die "rollout $id was canceled" ;;
      halted)
        echo "rollout $id halted: $(jq -r .halted_reason <<<"$r"); resuming"
        api POST "/v1/rollouts/$id/resume" '{}' >/dev/null || true
        ;;
    esac
    queued=$(jq -r '.counts.queued // -1' <<<"$r")
    next=$(jq -r '.next_install_at // empty' <<<"$r")
    if [[ $queued == 0 && -n $next ]] && (($(epoch "$next") > $(epoch "$(service_now)"))); then
      api PUT /v1/admin/clock "{\"now\": \"$(date -u -d "$next +1 minute" +%FT%TZ)\"}" >/dev/null || true
    fi
    sleep 0.3
  done
}

# drive_rollouts: rollout after rollout while the faults go on, then the last one to its end.
drive_rollouts() {
  local n=0 release id t0
  while :; do
    n=$((n + 1))
    release=$(publish "$n")
    id=$(start_rollout "$release")
    t0=$(now)
    echo "rollout $n started: $id (release $release)"
    drive "$id"
    echo "rollout $n succeeded in $(elapsed "$t0") s"
    [[ -e $tmp/faults.done ]] && break
  done
  echo "rollouts: $n"
}

# --- the faults --------------------------------------------------------------------------------

fault_kill_replica() {
  local r=$((RANDOM % 2)) t
  kill -9 "${rpid[$r]}"
  wait "${rpid[$r]}" 2>/dev/null || true
  start_replica "$r"
  t=$(wait_ready "$r" 120) || die "replica $r did not come back after kill -9"
  echo "$t" >>"$tmp/rec/kill"
  log "kill -9 replica $r: ready again in $t s"
}

fault_pg_restart() {
  local t0 t1 t
  t0=$(now)
  pg_ctl_ -w -m fast restart >/dev/null || die "PostgreSQL did not restart"
  t1=$(elapsed "$t0")
  t=$(wait_db_reads "$t0" 120) || die "the replicas did not answer after the PostgreSQL restart"
  echo "$t" >>"$tmp/rec/pg_restart"
  log "PostgreSQL restart (took $t1 s): both replicas read the database again $t s after it began"
}

fault_terminate() {
  local t0 n t
  t0=$(now)
  n=$(sql "select count(pg_terminate_backend(pid)) from pg_stat_activity
           where datname = 'hotpatch' and pid <> pg_backend_pid() and backend_type = 'client backend'
             and application_name <> 'psql'")
  t=$(wait_db_reads "$t0" 120) || die "the replicas did not answer after pg_terminate_backend"
  echo "$t" >>"$tmp/rec/terminate"
  log "pg_terminate_backend of $n backends: both replicas read the database again in $t s"
}

# fault_agent_stop I: SIGSTOP of simulator I for the lease and 5 s more, then SIGCONT.
fault_agent_stop() {
  local i=$1 pid
  pid=$(cat "$tmp/sim$i.pid")
  kill -STOP "$pid"
  log "SIGSTOP simulator $i for $((LEASE + 5)) s"
  sleep $((LEASE + 5))
  kill -CONT "$pid"
  log "SIGCONT simulator $i"
}

# fault_agent_kill I: kill -9 of simulator I, restarted on its state directories after the lease.
fault_agent_kill() {
  local i=$1 pid
  pid=$(cat "$tmp/sim$i.pid")
  kill -9 "$pid"
  log "kill -9 simulator $i; restarting it in $((LEASE + 2)) s"
  sleep $((LEASE + 2))
  start_sim "$i"
  log "simulator $i restarted"
}

# The replica whose dispatcher passes are done (it holds the lock), or nothing.
dispatch_leader() {
  local a0 b0 a1 b1
  a0=$(duty_done 0); b0=$(duty_done 1)
  sleep 1.5
  a1=$(duty_done 0); b1=$(duty_done 1)
  if [[ -n $a0 && -n $a1 ]] && ((${a1%.*} > ${a0%.*})); then echo 0
  elif [[ -n $b0 && -n $b1 ]] && ((${b1%.*} > ${b0%.*})); then echo 1
  fi
}

# The dispatcher's advisory lock (crates/store/src/leader.rs: RolloutDispatch =
# 0x686f_7470_0000_0002) as pg_locks shows a bigint key.
DISPATCH_LOCK="locktype = 'advisory' and classid = 1752134768 and objid = 2 and objsubid = 1 and granted"

# "BACKEND REPLICA" of the session holding the dispatcher lock now, or nothing: the backend's
# client port, then the process owning that socket (ss -p), then which replica that is.
lock_holder() {
  local row backend port pid r
  row=$(sql "select l.pid, a.client_port from pg_locks l join pg_stat_activity a using (pid) where $DISPATCH_LOCK limit 1")
  [[ -n $row ]] || return 0
  backend=${row%%|*}
  port=${row##*|}
  pid=$(ss -tnpH state established "( sport = :$port )" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  for r in 0 1; do
    [[ ${rpid[$r]} == "$pid" ]] && echo "$backend $r"
  done
  return 0
}

# fault_freeze_leader: SIGSTOP of the replica leading the rollout dispatcher for FREEZE_SECS.
# Passes take the lock for one transaction each, so a replica frozen between passes holds
# nothing. To freeze it in a pass, holding the lock (the case the 10 s
# idle_in_transaction_session_timeout bounds), the suite holds the running rollouts' rows
# (`for no key update`, as a pass locks them after its advisory lock) in a transaction of its
# own: the leader's next pass takes the lock and waits on the rows; the suite stops that replica,
# then commits. With no running rollout it freezes the leader between passes. The takeover time
# runs from the SIGSTOP to the first pass the other replica does.
fault_freeze_leader() {
  local leader="" other base t0 t cur holder kind="between passes" rows=0 try
  coproc HOLD { psql "$pgurl/hotpatch" -X -At -q 2>&1; }
  echo "begin; select count(*) from (select id from rollout where state = 'running' for no key update) x;" >&"${HOLD[1]}"
  read -r -t 10 rows <&"${HOLD[0]}" || rows=0
  if ((rows > 0)); then
    for ((try = 0; try < 50; try++)); do
      holder=$(lock_holder)
      if [[ -n $holder ]]; then
        leader=${holder#* }
        kill -STOP "${rpid[$leader]}"
        t0=$(now)
        kind="holding the lock"
        break
      fi
      sleep 0.1
    done
  fi
  echo "commit;" >&"${HOLD[1]}"
  eval "exec ${HOLD[1]}>&-"
  wait "$HOLD_PID" 2>/dev/null || true
  if [[ -z $leader ]]; then
    leader=$(dispatch_leader)
    [[ -n $leader ]] || { log "freeze: no dispatcher leader found; skipped"; return 0; }
    kill -STOP "${rpid[$leader]}"
    t0=$(now)
  fi
  other=$((1 - leader))
  base=$(duty_done "$other")
  t=""
  while [[ $(echo "$(now) - $t0 < $FREEZE_SECS + 40" | bc) == 1 ]]; do
    cur=$(duty_done "$other")
    if [[ -n $cur && ${cur%.*} -gt ${base%.*} ]]; then t=$(elapsed "$t0"); break; fi
    sleep 0.1
  done
  while [[ $(echo "$(now) - $t0 < $FREEZE_SECS" | bc) == 1 ]]; do sleep 0.2; done
  kill -CONT "${rpid[$leader]}"
  if [[ -n $t ]]; then
    echo "$t" >>"$tmp/rec/freeze_${kind// /_}"
    log "SIGSTOP of the dispatcher leader (replica $leader, $kind) for ${FREEZE_SECS} s: replica $other led after $t s"
  else
    echo "none" >>"$tmp/rec/freeze_failed"
    log "SIGSTOP of the dispatcher leader (replica $leader, $kind): replica $other never took over"
  fi
}

# --- the end -----------------------------------------------------------------------------------

wait_queue_drained() {
  local deadline=$((SECONDS + $1)) open
  while :; do
    open=$(sql "select count(*) from job where state in ('queued', 'leased')" 2>/dev/null || echo "?")
    [[ $open == 0 ]] && return 0
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

wait_reader_caught_up() {
  local deadline=$((SECONDS + $1)) max last
  while :; do
    max=$(sql "select coalesce(max(id), 0) from event")
    last=$(tail -1 "$tmp/seen.txt" 2>/dev/null || echo 0)
    [[ ${last:-0} -ge $max ]] && return 0
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

load_evidence() {
  touch "$tmp/executions.log" "$tmp/seen.txt"
  psql_db -q -c "copy faults.executed (job_id, kind, outcome, attempt) from stdin with (delimiter ' ')" \
    <"$tmp/executions.log"
  psql_db -q -c "copy faults.seen (event_id) from stdin" <"$tmp/seen.txt"
}

# stats FILE: "n min median max" of the numbers in FILE.
stats() {
  [[ -s $1 ]] || { echo "0 - - -"; return; }
  sort -g "$1" | awk '{v[NR] = $1} END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%d %.2f %.2f %.2f\n", NR, v[1], m, v[NR]}'
}

report() {
  local agent_kills=$1 name bad severity what hard=0
  printf '\n%-52s %8s  %s\n' "check" "count" "verdict"
  printf '%-52s %8s  %s\n' "-----" "-----" "-------"
  while IFS='|' read -r name bad severity what; do
    local verdict=ok
    if [[ $bad != 0 ]]; then
      if [[ $severity == hard ]]; then verdict="FAIL ($what)"; hard=1; else verdict="note ($what)"; fi
    fi
    printf '%-52s %8s  %s\n' "$name" "$bad" "$verdict"
  done < <(psql_db -At -F'|' -v agent_kills="$agent_kills" -f "$here/checks.sql")
  local panics
  panics=$(cat "$tmp"/replica*.log "$tmp"/sim*.log | grep -c 'panicked' || true)
  printf '%-52s %8s  %s\n' "panics in replica and simulator logs" "$panics" "$([[ $panics == 0 ]] && echo ok || echo FAIL)"
  [[ $panics == 0 ]] || hard=1
  if [[ -s $tmp/rec/freeze_failed ]]; then
    printf '%-52s %8s  %s\n' "frozen leader not taken over" "$(wc -l <"$tmp/rec/freeze_failed")" FAIL
    hard=1
  fi
  local failed
  failed=$(sql "select error, count(*) from job where kind = 'install' and state = 'failed' group by 1 order by 2 desc limit 5")
  [[ -z $failed ]] || printf '\nfailed installs by error:\n%s\n' "$failed"

  printf '\n%s\n' "$(grep -h '^rollout [0-9]* succeeded' "$tmp/driver.log" | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
  printf 'jobs: %s; executions logged: %s; events stored while the reader ran: %s, received: %s\n' \
    "$(sql "select string_agg(kind || ' ' || state || ' ' || n, ', ' order by kind, state) from (select kind, state, count(*) n from job group by 1, 2) x")" \
    "$(wc -l <"$tmp/executions.log")" \
    "$(sql 'select count(*) from event where id <= (select coalesce(max(event_id), 0) from faults.seen)')" \
    "$(wc -l <"$tmp/seen.txt")"
  printf 'agents: results refused as lease lost %s, kept results reported again instead of a second run %s\n' \
    "$(cat "$tmp"/sim*.log | grep -c 'result refused: the job is no longer ours' || true)" \
    "$(cat "$tmp"/sim*.log | grep -c 'offered again after its work finished' || true)"
  printf 'lease re-queues (leased → queued): %s; halts resumed: %s\n' \
    "$(sql "select count(*) from faults.job_audit where old_state = 'leased' and new_state = 'queued'")" \
    "$(grep -c 'halted' "$tmp/driver.log" || true)"

  printf '\n%-48s %5s %8s %8s %8s\n' "recovery (seconds)" "n" "min" "median" "max"
  local what label
  for what in kill:"kill -9 replica → /readyz 200" pg_restart:"PostgreSQL restart → both replicas read" \
    terminate:"pg_terminate_backend → both replicas read" \
    freeze_holding_the_lock:"leader frozen in a pass → other leads" \
    freeze_between_passes:"leader frozen between passes → other leads"; do
    label=${what#*:}
    read -r n mn md mx < <(stats "$tmp/rec/${what%%:*}")
    printf '%-48s %5s %8s %8s %8s\n' "$label" "$n" "$mn" "$md" "$mx"
  done
  echo
  if ((hard)); then
    log "FAILED: evidence kept in $tmp"
    KEEP=1
    exit 1
  fi
  failed_checks=0
  log "all checks passed"
}

cleanup() {
  local pid i
  set +e
  [[ -n ${driver_pid:-} ]] && kill "$driver_pid" 2>/dev/null
  [[ -n ${reader_pid:-} ]] && kill "$reader_pid" 2>/dev/null
  for pid in "${agent_jobs[@]:-}"; do [[ -n $pid ]] && kill "$pid" 2>/dev/null; done
  [[ -d ${tmp:-} ]] && stop_sims 2>/dev/null
  for pid in "${rpid[@]:-}"; do
    [[ -n $pid ]] || continue
    kill -CONT "$pid" 2>/dev/null; kill -9 "$pid" 2>/dev/null
  done
  [[ -n ${pgbin:-} && -d $tmp/pg/data ]] && pg_ctl_ -m immediate stop >/dev/null 2>&1
  wait 2>/dev/null
  if [[ ${KEEP:-0} == 1 || $failed_checks != 0 ]]; then
    log "kept $tmp"
  else
    rm -rf "$tmp"
  fi
}
