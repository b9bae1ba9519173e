#!/usr/bin/env python3
"""A fake Windows Server machine that speaks the command executor's contract.

The machine is a JSON file named by FAKE_MACHINE (see README.md for its shape). Install, rollback
and reboot change it as the agent's simulated machine does (crates/agent/src/sim/jobs.rs), except
that a restart is only SCHEDULED, as on Windows: the job answers "rebooted": true, and the machine
"boots" when the content of FAKE_BOOT_FILE changes (the test harness writes a new value there and
restarts the agent). At every invocation, a changed boot file applies the pending build and
clears the pending and scheduled reboot.

Usage: fake-windows.py [args...] <kind>     (kind: assess install rollback reboot inventory health)
       fake-windows.py select < fixture.json  (prints the KBs an install payload selects)

Bad input (unparseable stdin, unknown kind, missing FAKE_MACHINE) is reported on stderr with
exit status 2. A payload that is not valid for its kind is a job that failed (exit 0).
"""

import datetime
import fcntl
import json
import os
import re
import sys
import tempfile

JOB_KINDS = ("assess", "install", "rollback", "reboot")
READ_KINDS = ("inventory", "health")
CLASSIFICATIONS = (
    "critical", "security", "update_rollup", "feature_pack", "service_pack",
    "definition", "tools", "updates", "dotnet", "driver", "firmware",
)
INSTALLED_BY = "hotpatch"
KB_RE = re.compile(r"^(?:KB|kb)?([0-9]{6,8})$")
BUILD_RE = re.compile(r"^[0-9]{1,9}\.[0-9]{1,9}$")
MONTH_RE = re.compile(r"^[2-9][0-9]{3}-(0[1-9]|1[0-2])$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")


class BadInput(Exception):
    """The invocation itself is wrong: exit 2."""


class JobFailed(Exception):
    """The job cannot be done on this machine: it fails (exit 0, outcome failed)."""


class InvalidPayload(JobFailed):
    """The job's payload is not valid for its kind: the job fails."""


# ---------------------------------------------------------------- payloads (as payload.rs reads them)

def kb(value):
    """A KB in canonical form (`KB` + digits); `kb5034439` and `5034439` are accepted, as the domain does."""
    m = KB_RE.match(value) if isinstance(value, str) else None
    if not m:
        raise InvalidPayload(f"{value!r} is not a KB number such as KB5034439")
    return "KB" + m.group(1)


def kbs(value, field):
    if not isinstance(value, list):
        raise InvalidPayload(f"{field} must be a list of KBs")
    return [kb(v) for v in value]


def build(value, field):
    if value is None:
        return None
    if not isinstance(value, str) or not BUILD_RE.match(value):
        raise InvalidPayload(f"{field}: {value!r} is not an OS build such as 20348.2227")
    return value


def obj(value, kind):
    """A payload object; null (a job that carries none) is the default one. Unknown fields are ignored."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidPayload(f"the {kind} payload must be an object")
    return value


def install_payload(raw):
    p = obj(raw, "install")
    classifications = p.get("classifications")
    if classifications is not None:
        if not isinstance(classifications, list) or any(c not in CLASSIFICATIONS for c in classifications):
            raise InvalidPayload(f"classifications must be a list of {', '.join(CLASSIFICATIONS)}")
    reboot = p.get("reboot", "if_required")
    if reboot not in ("if_required", "never", "always"):
        raise InvalidPayload(f"reboot must be if_required, never or always, not {reboot!r}")
    requires_reboot = p.get("requires_reboot")
    for field, value in (("requires_reboot", requires_reboot),
                         ("exclude_kbs_requiring_reboot", p.get("exclude_kbs_requiring_reboot", False))):
        if value is not None and not isinstance(value, bool):
            raise InvalidPayload(f"{field} must be a boolean")
    return {
        "kbs": kbs(p.get("kbs", []), "kbs"),
        "classifications": classifications,
        "kb_include": kbs(p.get("kb_include", []), "kb_include"),
        "kb_exclude": kbs(p.get("kb_exclude", []), "kb_exclude"),
        "exclude_kbs_requiring_reboot": bool(p.get("exclude_kbs_requiring_reboot", False)),
        "reboot": reboot,
        "requires_reboot": requires_reboot,
        "build": build(p.get("build"), "build"),
    }


def plan_release(raw):
    if not isinstance(raw, dict):
        raise InvalidPayload("a rollback step's release must be an object")
    missing = [f for f in ("id", "kb", "month", "kind", "build") if f not in raw]
    if missing:
        raise InvalidPayload(f"a rollback step's release lacks {', '.join(missing)}")
    if not isinstance(raw["id"], str) or not UUID_RE.match(raw["id"]):
        raise InvalidPayload(f"release id {raw['id']!r} is not a UUID")
    if not isinstance(raw["month"], str) or not MONTH_RE.match(raw["month"]):
        raise InvalidPayload(f"release month {raw['month']!r} is not YYYY-MM")
    if raw["kind"] not in ("baseline", "hotpatch"):
        raise InvalidPayload(f"release kind {raw['kind']!r} is not baseline or hotpatch")
    return {"kb": kb(raw["kb"]), "month": raw["month"], "kind": raw["kind"],
            "build": build(raw["build"], "release build")}


def rollback_payload(raw):
    p = obj(raw, "rollback")
    steps = []
    for step in p.get("steps", []):
        action = step.get("action") if isinstance(step, dict) else None
        if action in ("uninstall", "install"):
            steps.append({"action": action, "release": plan_release(step.get("release"))})
        elif action == "reboot":
            steps.append({"action": "reboot"})
        else:
            raise InvalidPayload(f"unknown rollback step {step!r}")
    return {"steps": steps, "build": build(p.get("build"), "build")}


# ---------------------------------------------------------------- selection (the shared fixtures test this)

def requires_reboot(p, known, kb_):
    """As the payload says for all its KBs, else as the machine knows the update (unknown: no)."""
    if p["requires_reboot"] is not None:
        return p["requires_reboot"]
    return bool(known.get(kb_, {}).get("requires_reboot", False))


def select(p, available, known):
    """The KBs an install payload selects, in payload order (`kbs`) or in `available` order."""
    if p["kbs"]:
        chosen = p["kbs"]
    else:
        wanted = p["classifications"] if p["classifications"] is not None else ["critical", "security"]
        chosen = [kb(u["kb"]) for u in available
                  if u["classification"] in wanted or kb(u["kb"]) in p["kb_include"]]
    chosen = [k for k in dict.fromkeys(chosen) if k not in p["kb_exclude"]]
    if p["exclude_kbs_requiring_reboot"]:
        chosen = [k for k in chosen if not requires_reboot(p, known, k)]
    return chosen


# ---------------------------------------------------------------- the machine

def today():
    return os.environ.get("FAKE_TODAY") or datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def load(path):
    with open(path, encoding="utf-8") as f:
        state = json.load(f)
    state.setdefault("installed_updates", [])
    state.setdefault("available_updates", [])
    state.setdefault("reboot_pending", False)
    state.setdefault("pending_build", None)
    state.setdefault("reboot_scheduled", False)
    state.setdefault("healthy", True)
    state.setdefault("boot_seen", None)
    for u in state["installed_updates"] + state["available_updates"]:
        u["kb"] = kb(u["kb"])
    known = state.setdefault("known", {})
    for u in state["available_updates"]:
        known[u["kb"]] = u
    return state


def save(path, state):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fake-machine-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def notice_boot(state):
    """A boot since the last invocation puts the pending build in effect and clears the reboot."""
    boot_file = os.environ.get("FAKE_BOOT_FILE")
    if not boot_file:
        return
    try:
        with open(boot_file, encoding="utf-8") as f:
            current = f.read().strip()
    except FileNotFoundError:
        current = ""
    if state["boot_seen"] is None:
        state["boot_seen"] = current  # first sight of this machine: adopt its boot
    elif current != state["boot_seen"]:
        if state["pending_build"]:
            state["os_build"] = state["pending_build"]
        state.update(pending_build=None, reboot_pending=False, reboot_scheduled=False, boot_seen=current)
        print(f"fake-windows: booted ({current!r}), build {state['os_build']}", file=sys.stderr)


def schedule_restart(state, pending_build):
    """As `shutdown.exe /r /t 60`: nothing changes until the boot file says the machine restarted."""
    state["pending_build"] = pending_build or state["pending_build"]
    state["reboot_scheduled"] = True
    state["reboot_pending"] = True


def inventory(state):
    return {
        "os_build": state["os_build"],
        "reboot_pending": state["reboot_pending"],
        "installed_updates": state["installed_updates"],
        "available_updates": state["available_updates"],
    }


def answer(state, rebooted, installed=()):
    # A scheduled restart leaves nothing pending once it happened: the answer speaks for then.
    out = {"outcome": "succeeded", "rebooted": rebooted,
           "reboot_pending": False if rebooted else state["reboot_pending"]}
    if installed:
        out["installed"] = list(installed)
    return out


def put_installed(state, kb_, title, classification):
    if any(u["kb"] == kb_ for u in state["installed_updates"]):
        return  # a retried attempt: already in
    state["available_updates"] = [u for u in state["available_updates"] if u["kb"] != kb_]
    update = {"kb": kb_, "installed_on": today(), "installed_by": INSTALLED_BY}
    if title:
        update["title"] = title
    if classification:
        update["classification"] = classification
    state["installed_updates"].append(update)


def install(state, raw):
    p = install_payload(raw)
    known = state["known"]
    chosen = select(p, state["available_updates"], known)
    needs_reboot = any(requires_reboot(p, known, k) for k in chosen)
    reboot = {"always": True, "never": False}.get(p["reboot"], needs_reboot or state["reboot_pending"])
    for k in chosen:
        put_installed(state, k, known.get(k, {}).get("title"), known.get(k, {}).get("classification"))
    new_build = p["build"] if chosen else None  # nothing selected: the build does not change
    if needs_reboot:
        if reboot:
            schedule_restart(state, new_build)
        else:
            state["reboot_pending"] = True
            state["pending_build"] = new_build or state["pending_build"]
    else:
        if new_build:
            state["os_build"] = new_build  # a hotpatch raises the build revision in place
        if reboot:
            schedule_restart(state, None)
    return answer(state, reboot, chosen)


def uninstall(state, kb_):
    state["installed_updates"] = [u for u in state["installed_updates"] if u["kb"] != kb_]
    known = state["known"].get(kb_)
    if known and not any(u["kb"] == kb_ for u in state["available_updates"]):
        state["available_updates"].append(known)  # offered again


def rollback(state, raw):
    p = rollback_payload(raw)
    installed, rebooted = [], False
    steps = p["steps"]
    if not steps:  # older jobs: remove the latest installed update and reboot
        if not state["installed_updates"]:
            raise JobFailed("no installed update to roll back")
        uninstall(state, state["installed_updates"][-1]["kb"])
        steps = [{"action": "reboot"}]
    baseline = next((s["release"] for s in steps if s["action"] == "install"), None)
    for step in steps:
        if step["action"] == "uninstall":
            uninstall(state, step["release"]["kb"])
        elif step["action"] == "install":
            r = step["release"]
            title = state["known"].get(r["kb"], {}).get("title") or f"{r['month']} Cumulative Update ({r['kb']})"
            put_installed(state, r["kb"], title, "security")
            installed.append(r["kb"])
        else:
            schedule_restart(state, p["build"] or (baseline and baseline["build"]))
            rebooted = True
    state["healthy"] = True
    return answer(state, rebooted, installed)


def health(state):
    ok = state["healthy"]
    check = {"name": "services", "status": "healthy" if ok else "unhealthy"}
    if not ok:
        check["detail"] = "the fake machine's state says healthy: false"
    return {"status": check["status"], "checks": [check]}


def run(kind, request):
    path = os.environ.get("FAKE_MACHINE")
    if not path:
        raise BadInput("FAKE_MACHINE is not set (the path of the fake machine's JSON state)")
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one invocation at a time changes the machine
        state = load(path)
        notice_boot(state)
        if kind == "inventory":
            out = inventory(state)
        elif kind == "health":
            out = health(state)
        else:
            payload = request["payload"]
            try:
                if kind == "assess":
                    out = dict(answer(state, False), inventory=inventory(state))
                elif kind == "install":
                    out = install(state, payload)
                elif kind == "rollback":
                    out = rollback(state, payload)
                else:
                    schedule_restart(state, build(obj(payload, "reboot").get("build"), "build"))
                    out = answer(state, True)
            except JobFailed as e:
                why = f"invalid payload: {e}" if isinstance(e, InvalidPayload) else str(e)
                out = {"outcome": "failed", "error": why,
                       "reboot_pending": state["reboot_pending"]}
        save(path, state)
    return out


def read_request(kind):
    try:
        request = json.load(sys.stdin)
    except ValueError as e:
        raise BadInput(f"stdin is not JSON: {e}")
    if not isinstance(request, dict):
        raise BadInput("stdin must hold a JSON object")
    if kind in JOB_KINDS:
        missing = [f for f in ("id", "kind", "machine_id", "attempt", "payload", "lease") if f not in request]
        if missing:
            raise BadInput(f"the claimed job lacks {', '.join(missing)}")
        if request["kind"] != kind:
            raise BadInput(f"invoked as {kind} for a job of kind {request['kind']!r}")
        job_id = os.environ.get("HOTPATCH_JOB_ID")
        if job_id is not None and job_id != request["id"]:
            raise BadInput(f"HOTPATCH_JOB_ID {job_id} is not the job's id {request['id']}")
    env_kind = os.environ.get("HOTPATCH_KIND")
    if env_kind is not None and env_kind != kind:
        raise BadInput(f"HOTPATCH_KIND {env_kind} is not the kind argument {kind}")
    return request


def log_call(kind, request):
    """With FAKE_LOG set, one JSON line per invocation: what the agent passed, for tests to check."""
    log = os.environ.get("FAKE_LOG")
    if log:
        env = {k: v for k, v in os.environ.items() if k.startswith("HOTPATCH_")}
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": kind, "job_id": request.get("id"), "env": env}) + "\n")


def main(argv):
    if len(argv) < 2:
        raise BadInput("usage: fake-windows.py [args...] <kind>")
    kind = argv[-1]
    if kind == "select":
        fixture = json.load(sys.stdin)
        available = fixture.get("available", [])
        known = {kb(u["kb"]): u for u in available}
        for k in select(install_payload(fixture["payload"]), available, known):
            print(k)
        return 0
    if kind not in JOB_KINDS + READ_KINDS:
        raise BadInput(f"unknown kind {kind!r} (expected one of {', '.join(JOB_KINDS + READ_KINDS)})")
    request = read_request(kind)
    log_call(kind, request)
    print(json.dumps(run(kind, request)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (BadInput, InvalidPayload, OSError, ValueError, KeyError) as e:
        print(f"fake-windows: {e}", file=sys.stderr)
        sys.exit(2)
