"""The doctor's report: per-host conditions (shaped like Kubernetes NodeConditions), recommendations sorted by
priority, redaction, schema validation, the exit code, and the small state kept between runs.

Conditions are True/False/Unknown. lastTransitionTime is when the condition last changed status, kept in the
state file between runs (a first run uses its own time).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from .findings import PRIORITIES, RECOMMENDATIONS, Check, render_command

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "schemas" / "doctor-report.schema.json"
# condition type -> (check ids, polarity): "good" conditions are True when the checks pass (Ready),
# "pressure" conditions are True when they do not (DiskPressure), as Kubernetes has them.
CONDITIONS = {
    "SSHReachable": (("ssh.reachable",), "good"),
    "DockerReady": (("host.dockerd",), "good"),
    "WorkersReady": (("worker.unit", "worker.restarts", "worker.heartbeat", "worker.image", "worker.mounts"), "good"),
    "RayJoined": (("worker.ray",), "good"),
    "DiskPressure": (("host.disk",), "pressure"),
    "MemoryPressure": (("host.memory", "host.oom"), "pressure"),
    "DockerConfigDrifted": (("host.docker_settings",), "pressure"),
    "AuthorizedKeysDrifted": (("ssh.authorized_keys",), "pressure"),
}
_WORDS = re.compile(r"[A-Za-z0-9]+")


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reason(check: Check) -> str:
    reason = check.evidence.get("reason") if isinstance(check.evidence, dict) else None
    if reason:
        return reason
    words = _WORDS.findall(check.summary)[:4]
    return "".join(w[:1].upper() + w[1:] for w in words) or "Unknown"


def host_conditions(host: str, checks: list[Check], reachable: bool, now: float, previous: dict) -> list[dict]:
    out = []
    for ctype, (ids, polarity) in CONDITIONS.items():
        mine = [c for c in checks if c.host == host and c.id in ids and c.status != "SKIP"]
        if not mine and ctype != "SSHReachable" and not reachable:
            status, reason, message = "Unknown", "HostUnreachable", "the host did not answer"
        elif not mine:
            continue
        else:
            bad = [c for c in mine if c.status in ("FAIL", "WARN")]
            passing = not bad
            status = str(passing if polarity == "good" else not passing)
            worst = sorted(bad, key=lambda c: c.status != "FAIL")[0] if bad else mine[0]
            reason = _reason(worst) if bad else (ctype if polarity == "good" else f"No{ctype}")
            message = "; ".join(f"{c.worker + ': ' if c.worker else ''}{c.summary}" for c in (bad or mine))[:500]
        key = f"{host}/{ctype}"
        last = previous.get(key) or {}
        transition = last.get("time") if last.get("status") == status else now
        out.append({"type": ctype, "status": status, "reason": reason, "message": message,
                    "lastTransitionTime": iso(transition or now)})
    return out


def recommendations(checks: list[Check], inventories: list[str], extras: dict[str, dict] | None = None) -> list[dict]:
    """One recommendation per id over every host that needs it, sorted HIGH, MEDIUM, LOW."""
    grouped: dict[str, dict] = {}
    for check in checks:
        if not check.recommendation or check.status not in ("FAIL", "WARN"):
            continue
        rec = grouped.setdefault(check.recommendation, {"hosts": [], "checks": [], "fail": False})
        if check.host and check.host not in rec["hosts"]:
            rec["hosts"].append(check.host)
        rec["checks"].append(check.id + (f"@{check.host}" if check.host else "")
                             + (f"/{check.worker}" if check.worker else ""))
        rec["fail"] = rec["fail"] or check.status == "FAIL"
    out = []
    for rec_id, rec in grouped.items():
        priority, action, _template = RECOMMENDATIONS[rec_id]
        if not rec["fail"] and priority == "HIGH":
            priority = "MEDIUM"  # a warning alone never makes the doctor exit 1
        hosts = sorted(rec["hosts"])
        out.append({"id": rec_id, "priority": priority, "hosts": hosts, "action": action,
                    "command": render_command(rec_id, inventories, hosts, (extras or {}).get(rec_id)),
                    "checks": sorted(set(rec["checks"]))})
    out.sort(key=lambda r: (PRIORITIES.index(r["priority"]), r["id"]))
    return out


def exit_code(recs: list[dict]) -> int:
    return 1 if any(r["priority"] == "HIGH" for r in recs) else 0


def redact(value, include_sensitive: bool):
    """Every string of the report through the diagnosis redactor (token shapes, KEY=value, URL passwords)."""
    if include_sensitive:
        return value
    from ansible_collections.fleetwarden.fleet.plugins.module_utils._diagnosis import redact_text

    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [redact(v, False) for v in value]
    if isinstance(value, dict):
        return {k: redact(v, False) for k, v in value.items()}
    return value


def build_report(checks: list[Check], hosts: dict[str, bool], inventory: list[str], started: float,
                 previous: dict, include_sensitive: bool, drift: bool, rec_extras: dict | None = None) -> dict:
    now = time.time()
    counts = {s: sum(1 for c in checks if c.status == s) for s in ("OK", "WARN", "FAIL", "SKIP")}
    recs = recommendations(checks, inventory, rec_extras)
    report = {
        "schema_version": SCHEMA_VERSION,
        "kind": "fleetwarden-doctor-report",
        "generated_at": iso(now),
        "duration_s": round(now - started, 2),
        "inventory": inventory,
        "options": {"drift": drift, "include_sensitive": include_sensitive},
        "summary": dict(counts, hosts=len(hosts), answered=sum(1 for ok in hosts.values() if ok),
                        high=sum(1 for r in recs if r["priority"] == "HIGH")),
        "exit_code": exit_code(recs),
        "hosts": [{"name": name, "answered": ok, "conditions": host_conditions(name, checks, ok, now, previous)}
                  for name, ok in sorted(hosts.items())],
        "checks": [c.as_dict() for c in checks],
        "recommendations": recs,
    }
    return redact(report, include_sensitive)


def condition_state(report: dict) -> dict:
    """{host/type: {status, time}} to keep lastTransitionTime across runs."""
    state = {}
    for host in report["hosts"]:
        for cond in host["conditions"]:
            stamp = datetime.strptime(cond["lastTransitionTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            state[f"{host['name']}/{cond['type']}"] = {"status": cond["status"], "time": stamp.timestamp()}
    return state


def validate(report: dict, schema_path: Path = SCHEMA_PATH) -> list[str]:
    import jsonschema

    schema = json.loads(schema_path.read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return sorted(f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in validator.iter_errors(report))


class StateFile:
    """A small JSON file between runs: condition transitions and pods first seen starting."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def save(self, data: dict) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(self.path)
        except OSError:
            pass
