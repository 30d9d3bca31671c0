"""Unit tests for the report filters (plugins/filter/report_shaping.py)."""

import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.fleetwarden.fleet.plugins.filter import report_shaping as report

WORKER = {"name": "ray-worker", "image": "fleet/ray-worker:2.9"}


def diagnosis(cause="sigkill", remediation="recreate_worker", name="ray-worker"):
    return {"item": dict(WORKER, name=name), "changed": False, "exists": True, "container_id": "a" * 64,
            "cause": cause, "findings": [] if cause == "running" else [{"cause": cause, "reason": "why"}],
            "remediation": remediation, "recommendation": "Recreate it.",
            "repeat": {"count": 0, "window_s": 3600, "threshold": 3, "repeated": False},
            "record": {"cause": cause, "at": 1.0, "container_id": "a" * 64}, "evidence": {"env": {}},
            "invocation": {"module_args": {}}, "ansible_loop_var": "item"}


def test_diagnosis_requests_name_each_workers_unit_mounts_and_head():
    workers = [{"name": "ray-head", "image": "i", "ray_head_address": "10.0.0.1:6379",
                "metadata": {"ray_role": "head"}},
               {"name": "ray-worker", "image": "i", "gcsfuse_mounts": [{"mountpoint": "/mnt/b"}],
                "ray_head_address": "10.0.0.1:6379"},
               {"name": "plain", "image": "j"}]
    assert report.recovery_diagnosis_requests(workers, "10.0.0.9") == [
        {"name": "ray-head", "unit": "fleetwarden-worker-ray-head.service", "image": "i", "mounts": []},
        {"name": "ray-worker", "unit": "fleetwarden-worker-ray-worker.service", "image": "i", "mounts": ["/mnt/b"],
         "ray_head_address": "10.0.0.1:6379"},
        {"name": "plain", "unit": "fleetwarden-worker-plain.service", "image": "j", "mounts": [],
         "ray_head_address": "10.0.0.9"}]
    assert report.recovery_diagnosis_requests(workers[2:], "")[0].get("ray_head_address") is None
    with pytest.raises(AnsibleFilterError, match="needs a name"):
        report.recovery_diagnosis_requests([{"image": "i"}])


def test_present_workers_leave_out_the_absent_ones():
    workers = [{"name": "a"}, {"name": "b", "state": "absent"}, {"name": "c", "state": "present"}]
    assert [w["name"] for w in report.recovery_present_workers(workers)] == ["a", "c"]
    assert report.recovery_present_workers(None) == []


def test_diagnosis_results_pair_each_worker_with_its_result_in_order():
    workers = [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}, {"name": "c", "image": "i"}]
    diagnosed = {"workers": [{"name": "b", "cause": "sigkill"}, {"name": "a", "cause": "running"}]}
    results = report.recovery_diagnosis_results(diagnosed, workers)
    assert [(r["item"]["name"], r.get("cause")) for r in results] == [("a", "running"), ("b", "sigkill"), ("c", None)]
    assert results[2]["failed"] is True and "returned nothing for c" in results[2]["msg"]
    # A missing diagnosis is reported as such, never as healthy.
    assert report.recovery_worker_entry(results[2], workers[2])["remediation"] == "report_only"


def test_settle_results_split_the_one_command_per_worker():
    workers = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    command = {"rc": 123, "stderr": "python3: boom",
               "stdout": '{"healthy": true, "worker": "b", "settled_s": 15.1}\nnoise\n'
                         '{"healthy": false, "worker": "a", "reason": "crash"}\n'}
    results = report.recovery_settle_results(command, workers)
    assert [(r["item"]["name"], r["rc"]) for r in results] == [("a", 1), ("b", 0), ("c", 123)]
    details = report.recovery_settle_details(results)
    assert details["b"]["healthy"] is True and details["a"]["healthy"] is False
    assert details["c"] == {"healthy": False, "reason": "the settle check gave no verdict: python3: boom"}
    assert report.recovery_verdicts(results) == {"a": False, "b": True, "c": False}
    assert report.recovery_settle_results({"skipped": True}, []) == []


def test_mount_points_from_dicts_or_paths():
    mounts = [{"bucket": "b", "mountpoint": "/mnt/b"}, "/mnt/c"]
    assert report.worker_mount_points(mounts) == ["/mnt/b", "/mnt/c"]
    assert report.worker_mount_points(None) == []
    with pytest.raises(AnsibleFilterError):
        report.worker_mount_points([{"bucket": "b"}])


def test_worker_entry_keeps_only_the_diagnosis_and_adds_the_recovery():
    entry = report.recovery_worker_entry(diagnosis(), WORKER, action="recreated", healthy=True,
                                         incident_dir="/var/lib/fleetwarden/incidents/ray-worker/x", seconds=3.5)
    assert entry["unit"] == "fleetwarden-worker-ray-worker.service"
    assert "invocation" not in entry and "item" not in entry
    assert (entry["action"], entry["healthy"], entry["recovery_seconds"]) == ("recreated", True, 3.5)


def test_a_failed_diagnosis_is_reported_for_a_person():
    entry = report.recovery_worker_entry({"failed": True, "msg": "permission denied on docker.sock"}, WORKER)
    assert entry["cause"] == "unknown" and entry["remediation"] == "report_only"
    assert "permission denied" in entry["recommendation"]


def host_report(results, **kwargs):
    args = {"host": "gpu-1", "playbook": "recover", "run_id": "20250101T000000Z",
            "report_path": "/r/20250101T000000Z/gpu-1.json", "generated_at": "2025-01-01T00:00:00+00:00"}
    args.update(kwargs)
    return report.recovery_host_report(results, **args)


def test_host_report_of_recover_names_actions_and_verdicts():
    results = [diagnosis(), diagnosis("running", "none", name="bystander"),
               diagnosis("oom_killed", "report_only", name="oomy")]
    doc = host_report(results, recovered=True, healthy={"ray-worker": True}, seconds=12.0,
                      node={"memory": {}, "ansible_facts": {}, "changed": False})
    by_name = {e["worker"]: e for e in doc["workers"]}
    assert by_name["ray-worker"]["action"] == "recreated" and by_name["ray-worker"]["healthy"] is True
    assert by_name["ray-worker"]["recovery_seconds"] == 12.0
    assert by_name["bystander"]["action"] == "none" and by_name["bystander"]["healthy"] is True
    assert by_name["oomy"]["action"] == "report_only" and by_name["oomy"]["healthy"] is None
    assert doc["needs_attention"] == ["oomy"] and doc["healthy"] is False
    assert doc["node"] == {"memory": {}}


def test_host_report_of_diagnose_acts_on_nothing():
    doc = host_report([diagnosis()], playbook="diagnose")
    assert doc["workers"][0]["action"] == "none" and doc["workers"][0]["healthy"] is None
    assert doc["workers"][0]["recovery_seconds"] is None


def test_fleet_report_and_summary():
    doc = host_report([diagnosis(), diagnosis("running", "none", name="bystander")], recovered=True,
                      healthy={"ray-worker": True})
    fleet = report.recovery_fleet_report([doc, None], playbook="recover", run_id=doc["run_id"],
                                         report_path="/r/20250101T000000Z/fleet.json",
                                         generated_at=doc["generated_at"], target="gpu-1")
    assert fleet["hosts"] == [{"host": "gpu-1", "report_path": doc["report_path"], "healthy": True,
                               "needs_attention": []}]
    lines = report.recovery_summary(fleet).splitlines()
    assert lines[0] == "recover fleet report 20250101T000000Z, written to /r/20250101T000000Z/fleet.json"
    assert lines[1] == "gpu-1  ray-worker  sigkill  recreated  healthy: Recreate it."
    assert report.recovery_summary(doc).splitlines()[1:] == lines[1:]


def probe(name, rc=0, stdout=""):
    return {"item": {"name": name}, "rc": rc, "stdout": stdout}


def test_verdicts_need_the_probe_and_for_ray_the_head():
    alive = {"rc": 0, "stdout": json.dumps([{"node_ip": "10.0.0.5", "state": "ALIVE"},
                                            {"node_ip": "10.0.0.6", "state": "DEAD"}])}
    probes = [probe("ray"), probe("plain", stdout="true"), probe("stopped", stdout="false"), probe("bad", rc=1)]
    assert report.recovery_verdicts(probes, alive, ["ray"], "10.0.0.5") == {
        "ray": True, "plain": True, "stopped": False, "bad": False}
    assert report.recovery_verdicts(probes[:1], alive, ["ray"], "10.0.0.6") == {"ray": False}
    assert report.recovery_verdicts(probes[:1], {"rc": 0, "stdout": "oops"}, ["ray"], "10.0.0.5") == {"ray": False}
    assert report.recovery_verdicts(probes[:1], {"skipped": True}, [], "10.0.0.5") == {"ray": True}


def test_every_filter_is_registered():
    assert set(report.FilterModule().filters()) == {
        "worker_mount_points", "recovery_present_workers", "recovery_diagnosis_requests", "recovery_diagnosis_results",
        "recovery_evidence_requests", "recovery_settle_results", "recovery_worker_entry", "recovery_verdicts",
        "recovery_host_report", "recovery_fleet_report", "recovery_summary", "recovery_settle_details"}


def test_settle_details_read_the_tools_verdict_and_name_a_missing_one():
    results = [{"item": {"name": "a"}, "rc": 0,
                "stdout": '{"healthy": true, "settled_s": 15.2, "window_s": 15, "reason": "ok"}'},
               {"item": {"name": "b"}, "rc": 1, "stdout": "", "stderr": "python3: can't open file"}]
    details = report.recovery_settle_details(results)
    assert details["a"]["healthy"] is True and details["a"]["settled_s"] == 15.2
    assert details["b"] == {"healthy": False, "reason": "the settle check gave no verdict: python3: can't open file"}


def test_a_worker_that_did_not_settle_needs_a_person():
    doc = host_report([diagnosis("sigkill", "recreate_worker")], recovered=True, healthy={"ray-worker": False},
                      verification={"ray-worker": {"healthy": False, "reason": "the unit restarted"}})
    assert doc["needs_attention"] == ["ray-worker"]
    assert doc["workers"][0]["recommendation"].startswith("Still failing after recovery, needs a person: the unit")


def test_a_worker_running_on_a_full_disk_is_only_pruned():
    results = [diagnosis("disk_full", "prune_and_recreate"), diagnosis("disk_full", "prune_and_recreate", name="up")]
    doc = host_report(results, recovered=True, recreated=["ray-worker"], healthy={"ray-worker": True, "up": True})
    assert [e["action"] for e in doc["workers"]] == ["pruned_and_recreated", "pruned"]


def test_a_worker_that_ran_through_dockerds_outage_is_only_started_docker():
    results = [diagnosis("daemon_down", "start_docker"), diagnosis("daemon_down", "start_docker", name="kept")]
    doc = host_report(results, recovered=True, recreated=["ray-worker"], healthy={"ray-worker": True, "kept": True})
    assert [e["action"] for e in doc["workers"]] == ["started_docker_and_recreated", "started_docker"]


def test_evidence_requests_name_each_workers_incident_directory_entry_and_record():
    results = [diagnosis("daemon_down", "start_docker"), dict(diagnosis("oom_killed", name="b"), record=None)]
    requests = report.recovery_evidence_requests(results, "/var/lib/fleetwarden/incidents", "20250101T000000Z")
    assert [(r["name"], r["dir"], r["diagnosis"]["cause"], r["record"]) for r in requests] == [
        ("ray-worker", "/var/lib/fleetwarden/incidents/ray-worker/20250101T000000Z", "daemon_down",
         {"cause": "daemon_down", "at": 1.0, "container_id": "a" * 64}),
        ("b", "/var/lib/fleetwarden/incidents/b/20250101T000000Z", "oom_killed", None)]
    assert requests[0]["diagnosis"] == report.recovery_worker_entry(results[0], results[0]["item"])

