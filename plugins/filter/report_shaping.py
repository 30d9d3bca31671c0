# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters that shape diagnose.yml's and recover.yml's reports and keep secrets out of them.

- ``fleetwarden.fleet.recovery_worker_entry``: one worker's diagnosis (container_diagnosis's result) plus what
  recover.yml did -> the report's entry for that worker (``schemas/diagnosis-report.schema.json``).
- ``fleetwarden.fleet.recovery_host_report`` / ``recovery_fleet_report``: the per-host and fleet documents.
- ``fleetwarden.fleet.recovery_summary``: a report -> the short human summary (host, worker, cause, action,
  recommendation), one line per worker.
- ``fleetwarden.fleet.worker_mount_points``: a worker's ``gcsfuse_mounts`` (dicts or paths) -> mount points.
- ``fleetwarden.fleet.recovery_present_workers``: recovery_workers less the ``state: absent`` ones.
- ``fleetwarden.fleet.recovery_diagnosis_requests``: the host's workers -> container_diagnosis's ``workers`` option
  (every worker in one call); ``recovery_diagnosis_results``: its ``workers`` result -> one result per worker with
  ``item``, the worker, as a loop registers it.
- ``fleetwarden.fleet.recovery_settle_results``: the one settle command of all workers -> one result per worker.
- ``fleetwarden.fleet.recovery_verdicts``: settle-window and Ray-head results -> {worker: healthy}.
- ``fleetwarden.fleet.recovery_settle_details``: the settle-window results -> {worker: verdict}.

Secrets: the evidence is redacted by container_diagnosis and by the role's incident_evidence module; these
filters only reshape it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible.errors import AnsibleFilterError
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _diagnosis as diag
from ansible_collections.fleetwarden.fleet.plugins.module_utils._recovery_plan import reported_action
from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_state import unit_names

SCHEMA_VERSION = 1
_DIAGNOSIS_KEYS = ("exists", "container_id", "cause", "findings", "remediation", "recommendation", "repeat",
                   "record", "evidence")


def worker_mount_points(mounts):
    """Mount points of a worker's gcsfuse_mounts: entries are dicts with `mountpoint`, or paths."""
    try:
        return diag.worker_mount_points(mounts)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def recovery_present_workers(workers):
    """recovery_workers less those declared ``state: absent`` (what worker_declarations leaves out on a host)."""
    return [w for w in workers or [] if not (isinstance(w, dict) and w.get("state") == "absent")]


def recovery_diagnosis_requests(workers, ray_head_address=""):
    """container_diagnosis's ``workers`` option for the given workers (recovery_workers): per worker what
    ``_diagnosis.diagnosis_request`` makes of it, as the module does itself for the host's declarations."""
    try:
        return [diag.diagnosis_request(worker, ray_head_address) for worker in workers or []]
    except ValueError as exc:
        raise AnsibleFilterError("recovery_diagnosis_requests: %s" % exc) from exc


def recovery_diagnosis_results(diagnosed, workers):
    """container_diagnosis's ``workers`` results -> [result with ``item``: its worker], in the workers' order, as a
    loop over the workers registers them (what the report and the later steps read)."""
    by_name = {r.get("name"): r for r in (diagnosed or {}).get("workers") or [] if isinstance(r, dict)}
    results = []
    for worker in workers or []:
        result = by_name.get(worker.get("name"))
        if result is None:
            result = {"failed": True, "msg": "container_diagnosis returned nothing for %s" % worker.get("name")}
        results.append(dict(result, item=worker))
    return results


def recovery_evidence_requests(faulty, incident_root, run_id):
    """incident_evidence's ``workers`` option for the faulty workers (diagnosis results, each with ``item``): per
    worker its incident directory ``<incident_root>/<worker>/<run id>``, its report entry as the diagnosis, and
    the death record to add to the history."""
    requests = []
    for result in faulty or []:
        worker = (result or {}).get("item") or {}
        name = worker.get("name")
        requests.append({"name": name, "dir": "%s/%s/%s" % (incident_root, name, run_id),
                         "diagnosis": recovery_worker_entry(result, worker), "record": result.get("record")})
    return requests


def recovery_settle_results(command_result, workers):
    """The one ``xargs -P ... fleetwarden-worker settle`` of all workers -> [{item: worker, rc, stdout, stderr}] per
    worker, from the JSON verdict line that names it (rc 0 when it says healthy); a worker without a verdict line
    gets the command's rc and stderr, which ``recovery_settle_details`` turns into an unhealthy verdict."""
    command_result = command_result or {}
    verdicts = {}
    for line in (command_result.get("stdout") or "").splitlines():
        try:
            verdict = json.loads(line)
        except ValueError:
            continue
        if isinstance(verdict, dict) and "worker" in verdict:
            verdicts[verdict["worker"]] = line
    results = []
    for worker in workers or []:
        line = verdicts.get(worker.get("name"))
        if line is None:
            results.append({"item": worker, "rc": command_result.get("rc") or 1, "stdout": "",
                            "stderr": command_result.get("stderr") or command_result.get("msg") or "no verdict"})
        else:
            results.append({"item": worker, "rc": 0 if json.loads(line).get("healthy") is True else 1,
                            "stdout": line, "stderr": ""})
    return results


def recovery_worker_entry(diagnosis, worker, action=None, healthy=None, incident_dir=None, seconds=None):
    """One worker's report entry: the diagnosis's keys, the unit, and what recover.yml did."""
    if not isinstance(diagnosis, dict) or not isinstance(worker, dict):
        raise AnsibleFilterError("recovery_worker_entry: needs a diagnosis dict and a worker dict")
    entry = {"worker": worker.get("name"), "unit": unit_names("%s" % worker.get("name"))["worker"]}
    for key in _DIAGNOSIS_KEYS:
        entry[key] = diagnosis.get(key)
    if diagnosis.get("failed"):
        entry["cause"] = "unknown"
        entry["remediation"] = "report_only"
        entry["recommendation"] = "The diagnosis failed: %s" % diagnosis.get("msg", "no message")
        entry["findings"] = []
    entry["action"] = action if action is not None else "none"
    entry["healthy"] = healthy
    entry["incident_dir"] = incident_dir
    entry["recovery_seconds"] = seconds
    return entry


def _host_report_entry(result, recovered, healthy, incident_dirs, seconds, recreated, verification):
    """One worker's entry of the host report: its diagnosis, what recover.yml did and the settle verdict."""
    worker = result.get("item") or {}
    name = worker.get("name")
    faulty = result.get("remediation") != "none"
    action = "none"
    if recovered and faulty:  # what recover.yml did: _recovery_plan's table
        action = reported_action(result.get("remediation"), recreated is None or name in recreated)
    entry = recovery_worker_entry(result, worker, action=action, healthy=healthy.get(name, None if faulty else True),
                                  incident_dir=incident_dirs.get(name),
                                  seconds=seconds if recovered and faulty else None)
    entry["verification"] = verification.get(name)
    if isinstance(verification.get(name), dict) and verification[name].get("healthy") is False:
        entry["recommendation"] = ("Still failing after recovery, needs a person: %s. %s"
                                   % (verification[name].get("reason"), entry["recommendation"]))
    return entry


def recovery_host_report(diagnosis_results, host, playbook, run_id, report_path, generated_at, recovered=False,
                         healthy=None, incident_dirs=None, seconds=None, node=None, gpu=None,
                         include_sensitive=False, recreated=None, verification=None):
    """The per-host report document from container_diagnosis's looped results (each with `item`, the worker).

    `recovered`: recover.yml acted on the faulty workers (diagnose.yml does not); `recreated`: the workers it
    recreated (None: every faulty one but report_only); `healthy` and `incident_dirs` map worker names to the
    verification result and the evidence directory; `verification` maps them to the settle-window verdict.
    """
    entries = [_host_report_entry(result, recovered, healthy or {}, incident_dirs or {}, seconds, recreated,
                                  verification or {}) for result in diagnosis_results or []]
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "host",
        "playbook": playbook,
        "run_id": run_id,
        "generated_at": generated_at,
        "host": host,
        "report_path": report_path,
        "include_sensitive": bool(include_sensitive),
        "healthy": all(e.get("healthy") is True for e in entries),
        "needs_attention": [e["worker"] for e in entries if e.get("remediation") == "report_only"
                            or e.get("healthy") is False],
        "workers": entries,
        "node": _strip(node),
        "gpu": _strip(gpu),
    }


def _strip(result):
    """A fact module's result without Ansible's bookkeeping keys."""
    if not isinstance(result, dict):
        return None
    return {k: v for k, v in result.items()
            if k not in ("ansible_facts", "changed", "failed", "invocation", "warnings", "deprecations")}


def recovery_fleet_report(host_reports, playbook, run_id, report_path, generated_at, target=None):
    """The fleet document: every host's summary rows, with where each host report lies."""
    hosts = [r for r in host_reports or [] if isinstance(r, dict)]
    rows = []
    for report in hosts:
        for entry in report.get("workers", []):
            rows.append({"host": report.get("host"), "worker": entry.get("worker"), "cause": entry.get("cause"),
                         "action": entry.get("action"), "healthy": entry.get("healthy"),
                         "recommendation": entry.get("recommendation")})
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "fleet",
        "playbook": playbook,
        "run_id": run_id,
        "generated_at": generated_at,
        "target": target,
        "report_path": report_path,
        "hosts": [{"host": r.get("host"), "report_path": r.get("report_path"), "healthy": r.get("healthy"),
                   "needs_attention": r.get("needs_attention", [])} for r in hosts],
        "workers": rows,
    }


def recovery_summary(report):
    """Short human summary of a host or fleet report: one line per worker."""
    if report.get("kind") == "fleet":
        rows = report.get("workers", [])
    else:
        rows = [dict(e, host=report.get("host")) for e in report.get("workers", [])]
    lines = ["%s %s report %s, written to %s" % (report.get("playbook"), report.get("kind"), report.get("run_id"),
                                                 report.get("report_path"))]
    if not rows:
        lines.append("no workers declared")
    for row in rows:
        state = {True: "healthy", False: "UNHEALTHY", None: "-"}[row.get("healthy")]
        lines.append("%s  %s  %s  %s  %s: %s" % (row.get("host"), row.get("worker"), row.get("cause"),
                                                 row.get("action") or "none", state, row.get("recommendation")))
    return "\n".join(lines) + "\n"


def recovery_verdicts(probe_results, ray_nodes=None, ray_workers=None, node_ip=None):
    """{worker: healthy} for recreated workers: the probe passed (rc 0, not "false" from docker inspect's
    State.Running) and, for `ray_workers`, `ray_nodes` (the head's `ray list nodes --format json` result)
    lists `node_ip` ALIVE."""
    ray_alive = False
    if isinstance(ray_nodes, dict) and ray_nodes.get("rc") == 0:
        try:
            nodes = json.loads(ray_nodes.get("stdout") or "[]")
        except ValueError:
            nodes = []
        ray_alive = any(isinstance(n, dict) and n.get("state") == "ALIVE" and n.get("node_ip") == node_ip
                        for n in nodes if isinstance(nodes, list))
    verdicts = {}
    for result in probe_results or []:
        name = (result.get("item") or {}).get("name")
        ok = result.get("rc") == 0 and (result.get("stdout") or "").strip() != "false"
        if name in (ray_workers or []):
            ok = ok and ray_alive
        verdicts[name] = ok
    return verdicts


def recovery_settle_details(settle_results):
    """{worker: verdict} from the looped `fleetwarden-worker settle` results (one JSON line each)."""
    details = {}
    for result in settle_results or []:
        name = (result.get("item") or {}).get("name")
        lines = (result.get("stdout") or "").strip().splitlines()
        try:
            verdict = json.loads(lines[-1]) if lines else None
        except ValueError:
            verdict = None
        if not isinstance(verdict, dict) or "healthy" not in verdict:
            message = (result.get("stderr") or result.get("msg") or "no verdict").strip().splitlines()[-1:] or [""]
            verdict = {"healthy": False, "reason": "the settle check gave no verdict: %s" % message[0][:300]}
        details[name] = verdict
    return details


def _wrap(func):
    def filter_func(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise AnsibleFilterError("%s: %s" % (func.__name__, exc)) from exc

    filter_func.__name__ = func.__name__
    filter_func.__doc__ = func.__doc__
    return filter_func


class FilterModule(object):
    def filters(self):
        return {func.__name__: _wrap(func) for func in (
            worker_mount_points, recovery_present_workers, recovery_diagnosis_requests, recovery_diagnosis_results,
            recovery_evidence_requests, recovery_settle_results,
            recovery_worker_entry, recovery_verdicts, recovery_settle_details,
            recovery_host_report, recovery_fleet_report, recovery_summary)}
