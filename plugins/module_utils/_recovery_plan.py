# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What recovery does, as one pure table: cause -> remediation -> the ordered actions -> the action reported.

- ``REMEDIATION_OF_CAUSE``: the remediation of each cause a diagnosis names (``_diagnosis`` returns it).
- ``REMEDIES``: per remediation, the host action it needs before the worker is recreated, whether it recreates the
  worker, and the action the report names (with and without the recreation).
- ``ACTION_ORDER``: the order roles/recovery/tasks/remediate.yml carries actions out (docs/recovery.md).
- ``plan``: a host's faulty diagnoses -> the plan remediate.yml carries out, with no decision left to it.
- ``reported_action``: what the report says recover.yml did for one worker (plugins/filter/report_shaping.py).

Adding a cause is one entry in REMEDIATION_OF_CAUSE (plus the diagnosis that finds it); a new remedy is one entry
in REMEDIES and, where it needs a new host action, that action's task in remediate.yml.

Runs on the controller (filters) and on managed hosts (imported by _diagnosis): standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_state import unit_names

REMEDIATION_OF_CAUSE = {
    "running": "none",
    "normal_exit": "recreate_worker",
    "oom_killed": "recreate_worker",
    "gpu_oom": "recreate_worker",
    "segfault": "recreate_worker",
    "sigterm": "recreate_worker",
    "sigkill": "recreate_worker",
    "disk_full": "prune_and_recreate",
    "daemon_down": "start_docker",
    "mount_lost": "remount_and_restart",
    "head_unreachable": "wait_for_head_and_rejoin",
    "image_missing": "recreate_worker",
    "config_error": "report_only",
    "unknown": "recreate_worker",
}

# remediation -> host action first (None: none), recreates the worker, action reported, action reported when the
# worker was not recreated after all (its container ran through: a full disk it kept running on, dockerd's outage).
REMEDIES = {
    "none": {"host_action": None, "recreates": False, "action": "none", "without_recreation": None},
    "recreate_worker": {"host_action": None, "recreates": True, "action": "recreated", "without_recreation": None},
    "prune_and_recreate": {"host_action": "prune", "recreates": True, "action": "pruned_and_recreated",
                           "without_recreation": "pruned"},
    "start_docker": {"host_action": "start_docker", "recreates": True, "action": "started_docker_and_recreated",
                     "without_recreation": "started_docker"},
    "remount_and_restart": {"host_action": "remount", "recreates": True, "action": "remounted_and_restarted",
                            "without_recreation": None},
    "wait_for_head_and_rejoin": {"host_action": "wait_for_head", "recreates": True,
                                 "action": "waited_for_head_and_rejoined", "without_recreation": None},
    # Repeated OOMs and configuration errors: nothing is touched, a person decides.
    "report_only": {"host_action": None, "recreates": False, "action": "report_only", "without_recreation": None},
}
REMEDIATION_IDS = tuple(REMEDIES)

# Host-level fixes first (nothing recovers while they last), then the recreation of the workers through their units.
ACTION_ORDER = ("start_docker", "prune", "remount", "wait_for_head", "recreate")


def reported_actions():
    """Every action a report can name."""
    actions = [remedy["action"] for remedy in REMEDIES.values()]
    actions += [remedy["without_recreation"] for remedy in REMEDIES.values() if remedy["without_recreation"]]
    return actions


def reported_action(remediation, recreated=True):
    """The action the report names for a worker whose remediation recover.yml carried out; ``recreated``: whether
    the worker was recreated (a remediation without a recreation-less action reports its action either way)."""
    remedy = REMEDIES.get(remediation)
    if remedy is None:
        return "none"
    if not recreated and remedy["without_recreation"]:
        return remedy["without_recreation"]
    return remedy["action"]


def _unique(values):
    seen = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _name(result):
    return (result.get("item") or {}).get("name")


def _evidence(result):
    return result.get("evidence") or {}


def _remedy(result):
    return REMEDIES.get(result.get("remediation")) or REMEDIES["none"]


def _kept_on_full_disk(result):
    """A worker still running on a full disk keeps running: pruning is its remedy, a restart would only disrupt it."""
    return result.get("cause") == "disk_full" and bool((_evidence(result).get("state") or {}).get("Running"))


def _with(faulty, remediation):
    return [result for result in faulty if result.get("remediation") == remediation]


def _to_recreate(faulty):
    """The workers whose remedy recreates them, but for those still running on a full disk."""
    on_full_disk = [_name(result) for result in faulty if _kept_on_full_disk(result)]
    return _unique(_name(result) for result in faulty
                   if _remedy(result)["recreates"] and _name(result) not in on_full_disk)


def _lost_mounts(faulty):
    return _unique(mount.get("path") for result in _with(faulty, "remount_and_restart")
                   for mount in _evidence(result).get("mounts") or [] if not mount.get("healthy"))


def _ray_heads(faulty):
    addresses = ((_evidence(result).get("ray_head") or {}).get("address")
                 for result in _with(faulty, "wait_for_head_and_rejoin"))
    return _unique(address for address in addresses if address)


def plan(faulty, outage_evidence=None):
    """The plan of one host's recovery.

    ``faulty``: container_diagnosis's results whose remediation is not none, each with ``item`` (its worker).
    ``outage_evidence``: once dockerd was started, incident_evidence's ``workers`` of those it took down
    ({name, running}); with live-restore a container that ran through the outage is left running, not recreated.

    Returns {actions: the ACTION_ORDER entries to carry out, lost_mounts: mount points to remount, ray_heads: head
    addresses to wait for, recreate: worker names, kept_running: names, restart_units / start_units: the units of
    the workers to recreate, restarted, or started where dockerd took their container down (their unit replaces
    it by itself once dockerd answers: a restart would stop a container that is just starting)}.
    """
    faulty = [result for result in faulty or [] if isinstance(result, dict)]
    host_actions = set(_remedy(result)["host_action"] for result in faulty)
    recreate = _to_recreate(faulty)
    kept_running = []
    if "start_docker" in host_actions and outage_evidence is not None:
        kept_running = [worker.get("name") for worker in outage_evidence if worker.get("running")]
        recreate = [name for name in recreate if name not in kept_running]
    daemon_down = [_name(result) for result in _with(faulty, "start_docker")]
    lost_mounts, ray_heads = _lost_mounts(faulty), _ray_heads(faulty)
    needed = {"start_docker": "start_docker" in host_actions, "prune": "prune" in host_actions,
              "remount": bool(lost_mounts), "wait_for_head": bool(ray_heads), "recreate": bool(recreate)}
    return {
        "actions": [action for action in ACTION_ORDER if needed[action]],
        "lost_mounts": lost_mounts,
        "ray_heads": ray_heads,
        "recreate": recreate,
        "kept_running": kept_running,
        "restart_units": [unit_names(name)["worker"] for name in recreate if name not in daemon_down],
        "start_units": [unit_names(name)["worker"] for name in recreate if name in daemon_down],
    }
