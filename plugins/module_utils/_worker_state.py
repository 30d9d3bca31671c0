# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What a supervised worker is on its host, read and decided in one place.

The doctor and status (fleet_status), the alerts (the metrics collector, _fleet_metrics), diagnosis
(container_diagnosis) and the worker tool (roles/worker_service/files) ask this module; none of them re-derives it.

- Names and paths: ``unit_names`` (``fleetwarden-worker-<name>.service`` and its probe), ``worker_of_unit``,
  ``PATHS`` (the worker tool, the entrypoint, the declarations), ``STATE_DIR``.
- ``RESTART_WINDOW_S``: systemd's start limit window of a worker unit; ``start_limit_burst``: its burst.
- ``read_declarations``: the declarations worker_service wrote, one reader and one filter.
- ``UNIT_PROPERTIES``: what every reader asks ``systemctl show`` about a worker unit; ``read_units`` asks it, and
  asks the journal whether systemd's start limit refused a failed unit's start (``START_LIMIT_REFUSED``).
- ``restarts_exhausted``: systemd gave up restarting the unit (one definition, see its docstring).
- ``container_summary``: one ``docker inspect`` object shaped once (never the env), with ``interpret_exit_code``.

Runs on managed hosts (modules, the collector and the worker tool, which get a copy of this file) and in the
controller's tests: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json

from ansible_collections.fleetwarden.fleet.plugins.module_utils._node import parse_timestamp
from ansible_collections.fleetwarden.fleet.plugins.module_utils._systemd import parse_systemctl_show_units

UNIT_PREFIX = "fleetwarden-worker-"
PROBE_PREFIX = "fleetwarden-probe-"
ALERT_UNIT = "fleetwarden-alert@.service"
PATHS = {
    "python": "/usr/bin/python3",
    "tool": "/usr/local/libexec/fleetwarden/fleetwarden-worker",
    "entrypoint": "/usr/local/libexec/fleetwarden/worker-entrypoint",
    "config_dir": "/etc/fleetwarden/workers",
}
# Where the worker tool keeps its runtime state (probe failures); fleet_status reads it.
STATE_DIR = "/run/fleetwarden/workers"
# StartLimitIntervalSec of every worker unit: its restart budget (max_per_hour) is counted over this window.
RESTART_WINDOW_S = 3600
# The seconds a recovered worker must stay healthy (recovery_settle_s, the worker tool's `settle --window`).
SETTLE_WINDOW_S = 15
UNIT_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "Result", "NRestarts", "ExecMainStatus",
                   "ExecMainCode", "StateChangeTimestampMonotonic", "ActiveEnterTimestampMonotonic", "StartLimitBurst",
                   "InactiveExitTimestampMonotonic")
# What systemd logs (PID 1, field UNIT=) when its start limit refuses a start of a unit, automatic or not.
START_LIMIT_MESSAGE = "Start request repeated too quickly"
# The property read_units adds to a failed unit's: "yes" when the journal holds START_LIMIT_MESSAGE for the unit
# since it last left the inactive or failed state (its current failure is systemd's refusal), else "no".
START_LIMIT_REFUSED = "StartLimitRefused"
# systemd's own messages about one unit between its last start and its failure: a few per restart; the newest
# this many are read.
_JOURNAL_LINES = 50

_SIGNALS = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE",
            9: "SIGKILL", 11: "SIGSEGV", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM"}

EXIT_MEANINGS = {
    0: "exited normally with status 0",
    1: "general application error (status 1)",
    125: "docker could not create or start the container (status 125)",
    126: "the container command could not be invoked: not executable or permission denied (status 126)",
    127: "the container command was not found (status 127)",
    137: "killed by SIGKILL (128+9): the kernel OOM killer, docker kill, or a stop timeout",
    139: "segmentation fault, SIGSEGV (128+11)",
    143: "terminated by SIGTERM (128+15): docker stop, systemctl stop, a shutdown or a preemption",
    255: "exit status 255: the program exited with -1 or an unspecified fatal error",
}


def unit_names(name):
    return {"worker": UNIT_PREFIX + name + ".service", "probe": PROBE_PREFIX + name + ".service", "alert": ALERT_UNIT}


def worker_of_unit(unit):
    """``fleetwarden-worker-<name>.service`` -> name; "" for any other unit."""
    if unit.startswith(UNIT_PREFIX) and unit.endswith(".service"):
        return unit[len(UNIT_PREFIX):-len(".service")]
    return ""


def config_paths(name, paths=None):
    config_dir = (paths or PATHS)["config_dir"]
    return {"declaration": "%s/%s.json" % (config_dir, name), "env_file": "%s/%s.env" % (config_dir, name)}


def start_limit_burst(max_per_hour):
    """StartLimitBurst of a worker unit: one start plus ``max_per_hour`` restarts per RESTART_WINDOW_S."""
    return int(max_per_hour) + 1


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def start_limit_query(unit, journalctl="journalctl"):
    """The journalctl argv that lists systemd's own newest messages about ``unit`` in this boot, as JSON lines."""
    return [journalctl, "--no-pager", "--quiet", "--boot", "--reverse", "--lines=%d" % _JOURNAL_LINES,
            "--output=json", "--output-fields=MESSAGE", "_PID=1", "UNIT=" + unit]


def start_limit_refused(journal_json, props):
    """True when the journal (``start_limit_query``'s output) holds START_LIMIT_MESSAGE logged after the unit last
    left the inactive or failed state (InactiveExitTimestampMonotonic; same boot, same clock)."""
    since = _int(props.get("InactiveExitTimestampMonotonic")) or 0
    for line in (journal_json or "").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = entry.get("MESSAGE") if isinstance(entry, dict) else None
        if isinstance(message, str) and START_LIMIT_MESSAGE in message \
                and (_int(entry.get("__MONOTONIC_TIMESTAMP")) or 0) >= since:
            return True
    return False


def read_units(units, run, systemctl="systemctl", journalctl="journalctl"):
    """({unit: its UNIT_PROPERTIES}, error or None) for the worker units, as every reader on a host gets them.

    ``run(argv)`` -> (rc, stdout, stderr). A failed unit also gets START_LIMIT_REFUSED from its journal (see
    ``start_limit_refused``), unless its Result already says so; that is systemd's own verdict that it gave up,
    which restart counting cannot give: a start that a person, recovery or the probe asked for spends the start
    limit but is no automatic restart (NRestarts)."""
    units = list(units)
    if not units:
        return {}, None
    rc, out, err = run([systemctl, "show", "--property=" + ",".join(UNIT_PROPERTIES), *units])
    found = parse_systemctl_show_units(out)
    for unit, props in found.items():
        if props.get("ActiveState") == "failed" and props.get("Result") != "start-limit-hit":
            jrc, jout, _jerr = run(start_limit_query(unit, journalctl))
            props[START_LIMIT_REFUSED] = "yes" if jrc == 0 and start_limit_refused(jout, props) else "no"
    return found, None if rc == 0 else "systemctl show failed: %s" % (err or out or "rc %s" % rc).strip()[:300]


def restarts_exhausted(props, decl=None):
    """True when systemd stopped restarting the unit because its start limit was hit: its restarts are exhausted.

    ``props``: the unit's properties as ``read_units`` gives them; ``decl``: its declaration (for the restart
    policy, and the burst when StartLimitBurst was not asked for).

    - Newer systemd says so: Result is start-limit-hit.
    - systemd 252 keeps the last run's Result (exit-code, signal) when the start limit refuses an automatic
      restart. Its journal says it (START_LIMIT_REFUSED, from ``read_units``); and a failed unit that restarted
      at least burst - 1 times is the sign where the journal no longer holds that message.
    - A failed unit that did not spend its restarts is not exhausted: its start failed on a dependency (a mount
      that failed), or a person stopped it, or its policy is ``no`` (systemd never restarts it). WorkerDown alerts
      on those, and a reset of the start limit would not remedy them.
    """
    if props.get("Result") == "start-limit-hit":
        return True
    restart = (decl or {}).get("restart") or {}
    if props.get("ActiveState") != "failed" or restart.get("policy", "always") == "no":
        return False
    if props.get(START_LIMIT_REFUSED) == "yes":
        return True
    burst = _int(props.get("StartLimitBurst"))
    if burst is None and restart.get("max_per_hour") is not None:
        burst = start_limit_burst(restart["max_per_hour"])
    restarts = _int(props.get("NRestarts"))
    return bool(burst and restarts is not None and restarts >= burst - 1)


def public_declaration(doc):
    """A declaration as recovery, reports and tools outside the host may see it: env values and setup commands
    (which may hold secrets) are left out; their names and count stay (``env_names``, ``setup_command_count``)."""
    public = dict((k, copy.deepcopy(v)) for k, v in doc.items() if k not in ("env", "setup_commands"))
    public["env_names"] = sorted(doc.get("env") or {})
    public["setup_command_count"] = len(doc.get("setup_commands") or [])
    return public


def _read_text(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def read_declarations(config_dir, listdir=None, read=None):
    """The on-host declarations under ``config_dir`` (``<name>.json``, as worker_service writes them), public
    (see ``public_declaration``), sorted by name; and one error line per file that cannot be read as one.
    A declaration names its file (name = file name) and an image; one whose state is not present is left out.
    A missing directory is no workers, not an error."""
    import os

    listdir = listdir or os.listdir
    read = read or _read_text
    try:
        names = sorted(n for n in listdir(config_dir) if n.endswith(".json"))
    except FileNotFoundError:
        return [], []
    workers, errors = [], []
    for filename in names:
        path = "%s/%s" % (config_dir, filename)
        try:
            doc = json.loads(read(path))
        except (OSError, ValueError) as exc:
            errors.append("%s: cannot read it as a declaration: %s" % (path, exc))
            continue
        if not isinstance(doc, dict) or doc.get("name") != filename[:-len(".json")] or not doc.get("image"):
            errors.append("%s: not a worker declaration (needs name = file name, and image)" % path)
            continue
        if doc.get("state", "present") != "present":
            continue
        workers.append(public_declaration(doc))
    return workers, errors


def worker_units(decl):
    """The unit names a declaration document lists, else those its name gives."""
    return decl.get("units") or unit_names(decl["name"])


def worker_container(decl):
    return decl.get("container") or decl["name"]


def interpret_exit_code(code):
    """{code, signal, meaning} for a container exit status."""
    if code is None:
        return {"code": None, "signal": None, "meaning": "no exit status"}
    signal = _SIGNALS.get(code - 128) if 128 < code < 160 else None
    meaning = EXIT_MEANINGS.get(code)
    if meaning is None:
        if signal:
            meaning = "killed by {0} (128+{1})".format(signal, code - 128)
        elif 128 < code < 160:
            meaning = "killed by signal {0} (128+{0})".format(code - 128)
        else:
            meaning = "application-specific exit status {0}".format(code)
    return {"code": code, "signal": signal, "meaning": meaning}


_MISSING_CONTAINER = {"exists": False, "id": None, "running": False, "status": "missing", "pid": None,
                      "uptime_s": None, "finished_ago_s": None, "exit": None, "exit_code": None, "oom_killed": False,
                      "error": None, "image_id": None, "digest": None, "started_at": None, "address": None}


def _exit(state, running, finished):
    """The last exit and its meaning; None while it runs or before it ever ran."""
    # A container that never started (exec failed) has no FinishedAt, but an ExitCode and an Error.
    if running or (finished is None and not state.get("ExitCode") and not state.get("Error")):
        return None
    exit_info = interpret_exit_code(state.get("ExitCode"))
    if state.get("OOMKilled"):
        exit_info["meaning"] = "killed by the kernel OOM killer (%s)" % exit_info["meaning"]
    return exit_info


def container_summary(inspected, now):
    """One ``docker inspect`` object -> {exists, id, running, status, uptime_s, exit, exit_code, started_at,
    address, ...}. The env is never read."""
    if not inspected:
        return dict(_MISSING_CONTAINER)
    state = inspected.get("State") or {}
    started_text = state.get("StartedAt")
    # docker says 0001-01-01T00:00:00Z for a container that never started
    started = parse_timestamp(started_text) if started_text and not started_text.startswith("0001-") else None
    finished = parse_timestamp(state.get("FinishedAt"))
    running = bool(state.get("Running"))
    labels = (inspected.get("Config") or {}).get("Labels") or {}
    networks = ((inspected.get("NetworkSettings") or {}).get("Networks") or {}).values()
    return {"exists": True, "id": inspected.get("Id"), "running": running, "status": state.get("Status") or "unknown",
            "pid": state.get("Pid") or None,
            "uptime_s": round(now - started, 1) if running and started else None,
            "finished_ago_s": round(now - finished, 1) if finished else None,
            "exit": _exit(state, running, finished), "exit_code": state.get("ExitCode"),
            "oom_killed": bool(state.get("OOMKilled")),
            "error": state.get("Error") or None, "image_id": inspected.get("Image"),
            "digest": labels.get("io.fleetwarden.declaration"), "started_at": started,
            "address": next((n.get("IPAddress") for n in networks if n.get("IPAddress")), None)}
