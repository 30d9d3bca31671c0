"""The healing pipeline (Prometheus, Alertmanager, the alert receiver) and --drift (site.yml --check --diff).

The pipeline lives on the hosts of group `monitoring` (Prometheus, Alertmanager) and `controller` (the receiver).
Beyond "it answers": every host's collector metrics are fresh (the MetricsStale rule's age), and the receiver's
circuit breaker is closed with no host in quarantine (its /healthz says both).
Their addresses and ports are the roles' own variables (prometheus_address, prometheus_port,
prometheus_alertmanager_port, recovery_receiver_port; the role's default where the fleet sets none), and the
receiver is reached where Alertmanager reaches it (prometheus_alertmanager_recovery_url) when that is set.
A fleet without those groups gets SKIP with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .findings import Check

# (check, group, address variable, port variable, path)
ENDPOINTS = (
    ("pipeline.prometheus_targets", "monitoring", "prometheus_address", "prometheus_port", "/api/v1/targets"),
    ("pipeline.alertmanager", "monitoring", "prometheus_address", "prometheus_alertmanager_port", "/-/healthy"),
    ("pipeline.receiver", "controller", "recovery_receiver_listen_address", "recovery_receiver_port", "/healthz"),
)
RECEIVER_PATH = "/v1/alertmanager"
# The MetricsStale alert's age (roles/prometheus/files/fleetwarden-alerts.yml; a test holds them together).
METRICS_MAX_AGE_S = 45
FRESHNESS_QUERY = "time() - fleetwarden_collector_last_run_timestamp_seconds"


def endpoint_base(check_id: str, host: str, vars_of, defaults: dict, monitoring: list[str]) -> str:
    """http://ADDRESS:PORT of a pipeline service, from its role's variables (defaults: the roles' specs)."""
    _id, _group, address_var, port_var, _path = next(e for e in ENDPOINTS if e[0] == check_id)
    if check_id == "pipeline.receiver":
        for mon in monitoring:
            url = str(vars_of(mon).get("prometheus_alertmanager_recovery_url") or "")
            if url.endswith(RECEIVER_PATH):
                return url[: -len(RECEIVER_PATH)]
    host_vars = vars_of(host)
    address = host_vars.get(address_var) or host_vars.get("ansible_host") or host
    port = host_vars.get(port_var) or defaults.get(port_var)
    return f"http://{address}:{port}"


def _get(url: str, timeout: float) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - http URL we built
            return answer.status, answer.read(1 << 20).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError) as exc:
        return None, str(getattr(exc, "reason", exc))


def targets_summary(document: dict) -> dict:
    """Prometheus /api/v1/targets -> {up, down: [{job, instance, error}]}."""
    active = ((document or {}).get("data") or {}).get("activeTargets") or []
    down = [{"job": t.get("labels", {}).get("job"), "instance": t.get("labels", {}).get("instance"),
             "error": t.get("lastError")} for t in active if t.get("health") != "up"]
    return {"up": len(active) - len(down), "down": down}


def metrics_freshness(document: dict, max_age_s: float = METRICS_MAX_AGE_S) -> dict:
    """Prometheus /api/v1/query of FRESHNESS_QUERY -> {fresh: [host], stale: [{host, age_s}]} (by fleet_host)."""
    fresh, stale = [], []
    for row in ((document or {}).get("data") or {}).get("result") or []:
        labels = row.get("metric") or {}
        host = labels.get("fleet_host") or labels.get("instance") or "?"
        try:
            age = float((row.get("value") or [0, "nan"])[1])
        except (TypeError, ValueError):
            age = float("inf")
        if age <= max_age_s:
            fresh.append(host)
        else:
            stale.append({"host": host, "age_s": round(age, 1) if age != float("inf") else None})
    return {"fresh": sorted(fresh), "stale": sorted(stale, key=lambda s: s["host"])}


def receiver_summary(document: dict) -> dict:
    """The receiver's /healthz -> {breaker_open, hosts_quarantined, runs_in_progress, dry_run,
    hosts_in_maintenance}."""
    document = document if isinstance(document, dict) else {}
    maintenance = document.get("hosts_in_maintenance")
    return {"breaker_open": bool(document.get("breaker_open")),
            "hosts_quarantined": int(document.get("hosts_quarantined") or 0),
            "runs_in_progress": int(document.get("runs_in_progress") or 0), "dry_run": bool(document.get("dry_run")),
            "hosts_in_maintenance": sorted(str(h) for h in maintenance) if isinstance(maintenance, list) else []}


def _freshness_check(base: str, host: str, timeout: float, get) -> Check:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": FRESHNESS_QUERY})
    status, body = get(url, timeout)
    evidence = {"url": url, "http_status": status, "max_age_s": METRICS_MAX_AGE_S}
    try:
        summary = metrics_freshness(json.loads(body)) if status == 200 else None
    except ValueError:
        summary = None
    if summary is None:
        return Check("pipeline.metrics_fresh", "pipeline", "FAIL", f"{url} answered {status or body}", host,
                     evidence=evidence, recommendation="check-pipeline")
    evidence.update(summary)
    if summary["stale"] or not summary["fresh"]:
        stale = ", ".join(f"{s['host']} ({s['age_s']} s)" for s in summary["stale"]) or "no host reports"
        return Check("pipeline.metrics_fresh", "pipeline", "WARN", f"collector metrics older than "
                     f"{METRICS_MAX_AGE_S} s: {stale}", host, evidence=evidence, recommendation="check-pipeline")
    return Check("pipeline.metrics_fresh", "pipeline", "OK", f"collector metrics of {len(summary['fresh'])} hosts "
                 f"fresher than {METRICS_MAX_AGE_S} s", host, evidence=evidence)


def _receiver_check(url: str, host: str, body: str, evidence: dict) -> Check:
    try:
        summary = receiver_summary(json.loads(body))
    except ValueError:
        return Check("pipeline.receiver", "pipeline", "FAIL", f"{url} answered without JSON", host,
                     evidence=evidence, recommendation="check-pipeline")
    evidence.update(summary)
    words = (f"breaker {'OPEN' if summary['breaker_open'] else 'closed'}, {summary['hosts_quarantined']} hosts "
             f"quarantined, {summary['runs_in_progress']} runs in progress")
    words += ", dry run" if summary["dry_run"] else ""
    if summary["hosts_in_maintenance"]:
        words += f", in maintenance: {', '.join(summary['hosts_in_maintenance'])}"
    if summary["breaker_open"]:
        return Check("pipeline.receiver", "pipeline", "FAIL", f"automatic recovery is stopped: {words}", host,
                     evidence=evidence, recommendation="reset-breaker")
    if summary["hosts_quarantined"]:
        return Check("pipeline.receiver", "pipeline", "WARN", words, host, evidence=evidence,
                     recommendation="release-quarantined")
    return Check("pipeline.receiver", "pipeline", "OK", f"{url} healthy: {words}", host, evidence=evidence)


def pipeline_checks(groups: dict[str, list[str]], vars_of, defaults: dict, timeout: float = 3.0,
                    get=_get) -> list[Check]:
    """groups: {group: [hosts]}; vars_of(host) -> its templated variables; defaults: {variable: role default}."""
    checks = []
    for check_id, group, _address_var, _port_var, path in ENDPOINTS:
        hosts = groups.get(group) or []
        if not hosts:
            checks.append(Check(check_id, "pipeline", "SKIP", f"the fleet declares no {group} host (group {group})"))
            continue
        host = hosts[0]
        url = endpoint_base(check_id, host, vars_of, defaults, groups.get("monitoring") or []) + path
        status, body = get(url, timeout)
        evidence = {"url": url, "http_status": status}
        if status != 200:
            checks.append(Check(check_id, "pipeline", "FAIL", f"{url} answered {status or body}", host,
                                evidence=evidence, recommendation="check-pipeline"))
            continue
        if check_id == "pipeline.prometheus_targets":
            try:
                summary = targets_summary(json.loads(body))
            except ValueError:
                summary = {"up": 0, "down": [{"error": "not JSON"}]}
            evidence.update(summary)
            status_word = "WARN" if summary["down"] else "OK"
            checks.append(Check(check_id, "pipeline", status_word, f"{summary['up']} targets up, "
                                f"{len(summary['down'])} down", host, evidence=evidence,
                                recommendation="check-pipeline" if summary["down"] else None))
            checks.append(_freshness_check(url[: -len(path)], host, timeout, get))
        elif check_id == "pipeline.receiver":
            checks.append(_receiver_check(url, host, body, evidence))
        else:
            checks.append(Check(check_id, "pipeline", "OK", f"{url} healthy", host, evidence=evidence))
    return checks


def drift_checks(project: Path, inventories: list[str], limit: str | None, timeout: float = 600) -> list[Check]:
    """site.yml --check --diff once over the hosts; per host, the tasks that would change (names, not diffs)."""
    argv = [str(Path(sys.executable).with_name("ansible-playbook"))]
    for inventory in inventories:
        argv += ["-i", inventory]
    argv += ["site.yml", "--check", "--diff"] + (["--limit", limit] if limit else [])
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1",
               ANSIBLE_CONFIG=str(project / "ansible.cfg"))
    try:
        run = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        document = json.loads(run.stdout[run.stdout.find("{"):])
    except (subprocess.TimeoutExpired, ValueError) as exc:
        return [Check("drift.site", "drift", "FAIL", f"site.yml --check did not finish: {str(exc)[:200]}")]
    return drift_from_json(document)


def drift_from_json(document: dict) -> list[Check]:
    """ansible.posix.json output -> one check per host: tasks that would change (diff contents are left out)."""
    changes: dict[str, list[str]] = {}
    for play in document.get("plays") or []:
        for task in play.get("tasks") or []:
            for host, result in (task.get("hosts") or {}).items():
                changes.setdefault(host, [])
                if result.get("changed"):
                    changes[host].append(task.get("task", {}).get("name") or "?")
    for host, stats in (document.get("stats") or {}).items():
        changes.setdefault(host, [])
        if stats.get("failures") or stats.get("unreachable"):
            changes[host].append(f"({stats.get('failures', 0)} failed, {stats.get('unreachable', 0)} unreachable)")
    return [Check("drift.site", "drift", "WARN" if tasks else "OK", f"{len(tasks)} tasks of site.yml would change",
                  host, evidence={"would_change": len(tasks), "tasks": tasks[:50]},
                  recommendation="apply-site" if tasks else None) for host, tasks in sorted(changes.items())]
