"""_recovery_plan: cause -> remediation -> the ordered actions remediate.yml carries out -> the reported action."""

import re
from pathlib import Path

from ansible_collections.fleetwarden.fleet.plugins.filter.recovery_plan import FilterModule
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _diagnosis as diag
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _recovery_plan as rp

REMEDIATE = Path(__file__).resolve().parents[4] / "roles" / "recovery" / "tasks" / "remediate.yml"


def faulty(name, remediation, cause="sigkill", **evidence):
    return {"item": {"name": name}, "remediation": remediation, "cause": cause, "evidence": evidence}


def unit(name):
    return f"fleetwarden-worker-{name}.service"


def test_every_cause_has_a_remedy_and_every_remedy_a_known_action():
    assert set(rp.REMEDIATION_OF_CAUSE) == set(diag.CAUSES)
    assert set(rp.REMEDIATION_OF_CAUSE.values()) <= set(rp.REMEDIES)
    for remedy in rp.REMEDIES.values():
        assert remedy["host_action"] in (None, *rp.ACTION_ORDER)
    assert len(set(rp.reported_actions())) == len(rp.reported_actions())


def test_remediate_yml_carries_out_every_action_of_the_plan_and_decides_nothing():
    text = REMEDIATE.read_text()
    # an action is carried out when the plan names it, or by a loop over what the plan lists for it
    carried_out = {"remount": "loop: \"{{ __recovery_plan.lost_mounts }}\"",
                   "wait_for_head": "loop: \"{{ __recovery_plan.ray_heads }}\""}
    for action in rp.ACTION_ORDER:
        assert carried_out.get(action, f"'{action}' in __recovery_plan.actions") in text, action
    assert not re.search(r"selectattr\('remediation'|__recovery_remediations|'recreate_worker'", text)


def test_nothing_to_do():
    assert rp.plan([]) == {"actions": [], "lost_mounts": [], "ray_heads": [], "recreate": [], "kept_running": [],
                           "restart_units": [], "start_units": []}
    assert rp.plan([faulty("w", "report_only")])["actions"] == []


def test_host_fixes_come_first_in_their_order_then_the_recreation():
    plan = rp.plan([
        faulty("a", "wait_for_head_and_rejoin", "head_unreachable", ray_head={"address": "10.0.0.1:6379"}),
        faulty("b", "remount_and_restart", "mount_lost",
               mounts=[{"path": "/mnt/a", "healthy": False}, {"path": "/mnt/ok", "healthy": True}]),
        faulty("c", "prune_and_recreate", "disk_full", state={"Running": False}),
        faulty("d", "start_docker", "daemon_down"),
        faulty("e", "report_only", "config_error"),
    ])
    assert plan["actions"] == ["start_docker", "prune", "remount", "wait_for_head", "recreate"]
    assert plan["lost_mounts"] == ["/mnt/a"] and plan["ray_heads"] == ["10.0.0.1:6379"]
    assert plan["recreate"] == ["a", "b", "c", "d"]
    assert plan["restart_units"] == [unit("a"), unit("b"), unit("c")]
    assert plan["start_units"] == [unit("d")]  # its unit replaces the container itself once dockerd answers


def test_a_worker_running_on_a_full_disk_is_pruned_for_not_recreated():
    plan = rp.plan([faulty("w", "prune_and_recreate", "disk_full", state={"Running": True})])
    assert plan["actions"] == ["prune"] and plan["recreate"] == []


def test_a_container_that_ran_through_the_outage_is_left_running():
    found = [faulty("up", "start_docker", "daemon_down"), faulty("down", "start_docker", "daemon_down")]
    assert rp.plan(found)["recreate"] == ["up", "down"]
    plan = rp.plan(found, [{"name": "up", "running": True}, {"name": "down", "running": False}])
    assert (plan["kept_running"], plan["recreate"], plan["start_units"]) == (["up"], ["down"], [unit("down")])


def test_the_reported_action():
    # (remediation, recreated) -> the action the report names
    expected = {("recreate_worker", True): "recreated", ("prune_and_recreate", True): "pruned_and_recreated",
                ("prune_and_recreate", False): "pruned", ("start_docker", False): "started_docker",
                ("remount_and_restart", False): "remounted_and_restarted", ("report_only", False): "report_only",
                ("no_such_remediation", True): "none"}
    assert {case: rp.reported_action(*case) for case in expected} == expected


def test_the_filter_hands_the_plan_to_remediate_yml():
    plan = FilterModule().filters()["recovery_plan"]
    assert plan([faulty("w", "recreate_worker")])["restart_units"] == [unit("w")]
