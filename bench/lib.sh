# Shared by the benchmark scripts (sourced): they set $pgurl, $bin and $tmp first, and kill
# $server_pid on exit.

# raw_claim_complete DB: the raw claim of ../shared/limits as run_limits.sh runs it for the
# `pg_queue_claim_complete_c8_sync_on` line (fresh 1,000,000-row queue in database DB, pgbench
# 8 clients, synchronous_commit on, $pg_t seconds, $limits the limits folder); prints its cycles/s.
raw_claim_complete() {
  local db=$1
  psql "$pgurl/postgres" -qc "drop database if exists $db" -c "create database $db" >/dev/null
  psql "$pgurl/$db" -q -v ON_ERROR_STOP=1 -v rows=1000000 -f "$limits/sql/jobs_seed.sql" >/dev/null
  psql "$pgurl/$db" -q -v ON_ERROR_STOP=1 -f "$limits/sql/jobs_reset.sql" >/dev/null
  PGOPTIONS="-c synchronous_commit=on" pgbench -n -M prepared -j 2 -c 8 -T "$pg_t" -f "$limits/pgbench/claim_complete.sql" \
    "$pgurl/$db" >"$tmp/pgbench.txt" 2>&1 || { cat "$tmp/pgbench.txt" >&2; exit 1; }
  awk '/^tps = /{printf "%.0f", $3}' "$tmp/pgbench.txt"
  psql "$pgurl/postgres" -qc "drop database $db" >/dev/null
}

# start_server DB: a fresh database and a release hotpatchd on it; sets $url, $token, $server_pid.
# Its log is $tmp/server.log, where its address is read from.
# Settings come from the caller's environment, e.g. `HOTPATCH_AUTOMATIC_ROLLOUTS=false start_server db`.
start_server() {
  local db=$1
  psql "$pgurl/postgres" -qc "drop database if exists $db" -c "create database $db" >/dev/null
  token="bench_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  restart_server "$db"
}

# restart_server DB: another release hotpatchd on the existing database DB, with the same $token.
restart_server() {
  local db=$1
  # One token at thousands of requests a second is the point of a benchmark: no client limits.
  DATABASE_URL="$pgurl/$db" HOTPATCH_ADMIN_TOKEN="$token" HOTPATCH_LISTEN=127.0.0.1:0 HOTPATCH_LOG=warn,hotpatch_server=info \
    HOTPATCH_RATE_LIMIT_PER_TOKEN="${HOTPATCH_RATE_LIMIT_PER_TOKEN:-0}" HOTPATCH_RATE_LIMIT_PER_ADDRESS="${HOTPATCH_RATE_LIMIT_PER_ADDRESS:-0}" \
    HOTPATCH_MAX_STREAMS_PER_TOKEN="${HOTPATCH_MAX_STREAMS_PER_TOKEN:-100000}" HOTPATCH_MAX_POLLS_PER_TOKEN="${HOTPATCH_MAX_POLLS_PER_TOKEN:-100000}" \
    "$bin/hotpatchd" >"$tmp/server.log" 2>&1 &
  url=""
  server_pid=$!
  for _ in $(seq 1 200); do
    url=$(grep -o 'listening on [0-9.:]*' "$tmp/server.log" | head -1 | sed 's/listening on /http:\/\//') || true
    [[ -n ${url:-} ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "hotpatchd did not start" >&2; exit 1
}

stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }

# publish_sample_catalog: every release of deploy/catalog/sample.json, in file order.
publish_sample_catalog() {
  jq -c '.releases[]' "$root/deploy/catalog/sample.json" | while read -r r; do
    curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$url/v1/releases" -d "$r" -o /dev/null
  done
}

# list_with_status MAX: a portal's listing of up to MAX machines with their patch status
# (`GET /v1/machines?include=patch_status`, 1,000 a page, one kept-alive connection, each page's
# JSON parsed as a portal would). Prints "id etag" per machine on stdout and, on stderr,
# "bench: N machines listed with their status in S s".
list_with_status() {
  python3 - "$url" "$token" "$1" <<'PY'
import http.client, json, sys, time, urllib.parse
base, token, most = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = urllib.parse.urlsplit(base)
conn = http.client.HTTPConnection(u.hostname, u.port)
headers = {"Authorization": f"Bearer {token}"}
started, listed, cursor, out = time.monotonic(), 0, None, []
while listed < most:
    path = "/v1/machines?include=patch_status&limit=1000" + (f"&cursor={cursor}" if cursor else "")
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f"HTTP {r.status}: {body[:300]!r}")
    page = json.loads(body)
    out.extend(f"{m['id']} {m['patch_status_etag']}" for m in page["items"])
    listed += len(page["items"])
    cursor = page.get("next_cursor")
    if not cursor:
        break
elapsed = time.monotonic() - started
print("\n".join(out))
print(f"bench: {listed} machines listed with their status in {elapsed:.2f} s", file=sys.stderr)
PY
}
