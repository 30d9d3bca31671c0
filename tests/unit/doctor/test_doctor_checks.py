"""The doctor's checks, conditions, recommendations and report, on fleet_status results recorded from the lab
(tests/fixtures/status/fleet-status-{head,worker}.json), each case changing the one fact it is about."""

import copy
import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

from fleetwarden.doctor import config_checks, host_checks, report
from fleetwarden.doctor.findings import RECOMMENDATIONS, Check
from fleetwarden.doctor.view import format_status, ray_alive_ips, status_document

REPO = Path(__file__).resolve().parents[3]
DEFAULTS = config_checks.spec_defaults(REPO)
STATUS = REPO / "tests" / "fixtures" / "status"
SCHEMA = json.loads((REPO / "schemas" / "doctor-report.schema.json").read_text())


def recorded(role):
    return json.loads((STATUS / f"fleet-status-{role}.json").read_text())


@pytest.fixture
def key(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab", "-f", str(tmp_path / "id")],
                   check=True)
    (tmp_path / "id").chmod(0o600)
    return tmp_path / "id"


def observation(role="worker", **changes):
    result = recorded(role)
    obs = {"name": f"h-{role}", "groups": [role], "vars": {}, "vars_errors": {}, "result": result,
           "unreachable": None, "failed": None, "ssh_port_open": True, "ssh_banner": "SSH-2.0-OpenSSH_9.2p1",
           "ssh_port": 22}
    obs.update(changes)
    return obs


def by_id(checks, check_id, worker=None):
    found = [c for c in checks if c.id == check_id and (worker is None or c.worker == worker)]
    assert found, [c.id for c in checks]
    return found[0]


def alive():
    return ray_alive_ips([observation("head")])[0]


@pytest.mark.parametrize(("message", "reason", "rec"), [
    ("Failed to connect to the host via ssh: ssh: connect to host 127.0.0.1 port 32772: Connection refused",
     "SSHConnectionRefused", "start-sshd"),
    ("Host key verification failed.", "HostKeyVerificationFailed", "fix-host-key"),
    ("root@127.0.0.1: Permission denied (publickey).", "AuthenticationFailed", "fix-ssh-access"),
    ("ssh: connect to host 10.0.0.9 port 22: Connection timed out", "SSHTimeout", "start-sshd"),
])
def test_unreachable_hosts_are_classified(message, reason, rec):
    check = host_checks.ssh_checks(observation(result=None, unreachable=message))[0]
    assert (check.status, check.evidence["reason"], check.recommendation) == ("FAIL", reason, rec)


def test_a_closed_sshd_is_found_even_through_a_multiplexed_session():
    check = host_checks.ssh_checks(observation(ssh_port_open=False, ssh_banner="Connection refused"))[0]
    assert check.status == "FAIL" and check.recommendation == "start-sshd"
    assert host_checks.ssh_checks(observation())[0].status == "OK"


def test_authorized_keys_against_the_declared_policy(key):
    public = (key.parent / "id.pub").read_text().strip()
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", str(key) + ".pub"], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
    host_keys = {"root": {"keys": [{"line": 1, "fingerprint": fingerprint, "type": "ed25519", "bits": 256}],
                          "error": None}}
    declared = [{"user": "root", "exclusive": False, "public_keys": [public]}]
    obs = observation(vars={"ssh_keys_authorized": declared})
    obs["result"]["host"]["authorized_keys"] = host_keys
    assert host_checks.authorized_keys_check(obs).status == "OK"
    wrong = copy.deepcopy(host_keys)
    wrong["root"]["keys"][0]["fingerprint"] = "SHA256:somebodyElse"
    obs["result"]["host"]["authorized_keys"] = wrong
    check = host_checks.authorized_keys_check(obs)
    assert check.status == "FAIL" and check.evidence["root"]["missing"] == [fingerprint]
    assert check.evidence["root"]["undeclared"] == ["SHA256:somebodyElse"] and check.recommendation == "apply-ssh-keys"
    extra = copy.deepcopy(host_keys)
    extra["root"]["keys"].append({"line": 2, "fingerprint": "SHA256:extra", "type": "ed25519", "bits": 256})
    obs["result"]["host"]["authorized_keys"] = extra
    assert host_checks.authorized_keys_check(obs).status == "WARN"
    obs["vars"]["ssh_keys_authorized"][0]["exclusive"] = True
    assert host_checks.authorized_keys_check(obs).status == "FAIL"
    obs["vars"]["ssh_keys_policy"] = {"rsa": 3072}
    assert "breaks the policy" in json.dumps(host_checks.authorized_keys_check(obs).evidence)


def test_recorded_healthy_hosts_pass_every_worker_and_host_check():
    ips = alive()
    for role in ("head", "worker"):
        checks = (host_checks.worker_checks(observation(role), ips, None)
                  + host_checks.docker_checks(observation(role), DEFAULTS)
                  + host_checks.resource_checks(observation(role)))
        bad = [c for c in checks if c.status == "FAIL"]
        assert not bad, bad
        assert by_id(checks, "worker.ray").status == "OK"


@pytest.mark.parametrize(("change", "check_id", "status", "rec"), [
    ({"active": "failed", "result": "exit-code", "restarts": 60, "restarts_exhausted": True},
     "worker.unit", "FAIL", "recover-worker"),
    ({"active": "failed", "result": "exit-code", "restarts_exhausted": False}, "worker.unit", "FAIL", "recover-worker"),
    ({"active": "activating", "sub": "auto-restart"}, "worker.unit", "WARN", "watch-restart-loop"),
])
def test_worker_unit_states(change, check_id, status, rec):
    obs = observation()
    obs["result"]["workers"][0]["unit"].update(change)
    check = by_id(host_checks.worker_checks(obs, alive(), None), check_id)
    assert (check.status, check.recommendation) == (status, rec)
    if change.get("restarts_exhausted"):
        assert "restarts are exhausted" in check.summary


@pytest.mark.parametrize(("restarts", "status"), [(29, None), (30, "WARN"), (60, "FAIL")])
def test_restarts_against_the_budget(restarts, status):
    obs = observation()
    obs["result"]["workers"][0]["restarts_last_hour"] = restarts
    found = [c for c in host_checks.worker_checks(obs, alive(), None) if c.id == "worker.restarts"]
    assert (found[0].status if found else None) == status


@pytest.mark.parametrize(("age", "status"), [(3.0, "OK"), (11.0, "FAIL"), (-1, "FAIL")])
def test_heartbeat_age_against_its_max(age, status):
    obs = observation()
    worker = obs["result"]["workers"][0]
    worker["probe"]["heartbeat_max_age_s"] = 10
    worker["heartbeat_age_s"] = age
    check = by_id(host_checks.worker_checks(obs, alive(), None), "worker.heartbeat")
    assert check.status == status


def test_a_worker_missing_from_the_ray_head_and_a_head_that_does_not_answer():
    obs = observation()
    ips = alive() - set(obs["result"]["host"]["addresses"])
    check = by_id(host_checks.worker_checks(obs, ips, None), "worker.ray")
    assert (check.status, check.recommendation) == ("FAIL", "rejoin-ray")
    skip = by_id(host_checks.worker_checks(obs, None, "connection refused"), "worker.ray")
    assert skip.status == "SKIP" and "connection refused" in skip.summary


def test_missing_image_and_lost_mount():
    obs = observation()
    worker = obs["result"]["workers"][0]
    worker["image_present"] = False
    worker["mounts"] = [{"mountpoint": "/mnt/data", "mounted": False, "fstype": None}]
    checks = host_checks.worker_checks(obs, alive(), None)
    assert by_id(checks, "worker.image").status == "FAIL"
    assert by_id(checks, "worker.mounts").evidence == {"mountpoints": ["/mnt/data"]}


def test_docker_settings_drift_and_a_silent_dockerd():
    obs = observation(vars={"docker_engine_live_restore": True, "docker_engine_log_max_size": "500m"})
    obs["result"]["host"]["docker"]["live_restore"] = False
    check = by_id(host_checks.docker_checks(obs, DEFAULTS), "host.docker_settings")
    assert check.status == "FAIL" and check.evidence["live_restore"] == {"declared": True, "running": False}
    obs = observation(vars={"docker_engine_log_max_size": "100m"})
    check = by_id(host_checks.docker_checks(obs, DEFAULTS), "host.docker_settings")
    assert check.status == "WARN" and "log-opts.max-size" in check.evidence
    obs["result"]["host"]["docker"]["answers"] = False
    assert by_id(host_checks.docker_checks(obs, DEFAULTS), "host.dockerd").recommendation == "start-docker"


def test_disk_thresholds_come_from_host_variables():
    obs = observation()
    used = obs["result"]["host"]["disks"][1]["used_pct"]
    assert {c.status for c in host_checks.resource_checks(obs) if c.id == "host.disk"} == {"OK"}
    obs["vars"] = {"fleetwarden_doctor_disk_warn_pct": used - 1, "fleetwarden_doctor_disk_fail_pct": used + 1}
    assert {c.status for c in host_checks.resource_checks(obs) if c.id == "host.disk"} == {"WARN"}
    obs["vars"]["fleetwarden_doctor_disk_fail_pct"] = used
    checks = [c for c in host_checks.resource_checks(obs) if c.id == "host.disk"]
    assert [c.recommendation for c in checks] == ["free-disk", "free-disk"]
    assert "docker's root /var/lib/docker" in checks[1].summary


def test_secrets_are_checked_and_never_quoted(key):
    private = key.read_text()
    public = (key.parent / "id.pub").read_text()
    ok = config_checks.secrets_check("h", {}, [{"path": "/k", "private_key": private, "public_key": public}])
    assert ok.status == "OK"
    other = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True)
    assert other.stdout.split()[1] == public.split()[1]
    bad = config_checks.secrets_check("h", {"vault_ray_key": "'vault_ray_key' is undefined"},
                                      [{"path": "/k", "private_key": "", "public_key": public}])
    assert bad.status == "FAIL" and len(bad.evidence["problems"]) == 2
    assert "PRIVATE" not in json.dumps(ok.as_dict()) + json.dumps(bad.as_dict())


def test_the_controller_key_pair(key, tmp_path):
    assert config_checks.controller_key_check(str(key)).status == "OK"
    key.chmod(0o644)
    check = config_checks.controller_key_check(str(key))
    assert check.status == "FAIL" and "0o644" in check.summary
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    (key.parent / "id.pub").write_text((tmp_path / "other.pub").read_text())
    assert "not the public half" in config_checks.controller_key_check(str(key)).summary
    assert config_checks.controller_key_check(None).status == "SKIP"


def test_site_preflight_runs_the_role_specs_and_the_fleet_schema():
    head = {"h-head": ({}, ["head"])}
    ok = config_checks.preflight_check(REPO, {**head, "h1": ({"docker_engine_log_max_file": 3}, ["workers"])})
    assert ok.status == "OK"
    bad = config_checks.preflight_check(REPO, {**head, "h1": ({"docker_engine_log_max_file": "many"}, ["workers"])})
    assert bad.status == "FAIL" and "docker_engine" in json.dumps(bad.evidence)
    # The fleet schema's cross-field rules too: Ray workers and no head.
    headless = config_checks.preflight_check(REPO, {"h1": ({"docker_engine_log_max_file": 3}, ["workers"])})
    assert headless.status == "FAIL" and "group head must hold exactly one host" in json.dumps(headless.evidence)


def sample_checks():
    obs = observation()
    obs["result"]["workers"][0]["unit"].update(active="failed", restarts_exhausted=True)
    checks = host_checks.worker_checks(obs, alive(), None) + host_checks.resource_checks(observation("head"))
    checks.append(Check("host.oom", "hosts", "WARN", "2 OOM kills", "h-head", recommendation="relieve-memory"))
    checks.append(Check("drift.site", "drift", "WARN", "3 tasks", "h-worker", recommendation="apply-site"))
    return checks


def test_recommendations_group_hosts_sort_by_priority_and_set_the_exit_code():
    recs = report.recommendations(sample_checks(), ["inventory/lab"])
    assert [r["priority"] for r in recs] == sorted((r["priority"] for r in recs), key=["HIGH", "MEDIUM", "LOW"].index)
    recover = next(r for r in recs if r["id"] == "recover-worker")
    assert recover["command"] == "ansible-playbook -i inventory/lab playbooks/recover.yml -e target=h-worker"
    assert report.exit_code(recs) == 1
    assert report.exit_code(report.recommendations(sample_checks()[-2:], ["inv"])) == 0
    assert set(RECOMMENDATIONS) >= {r["id"] for r in recs}


def test_report_validates_keeps_transition_times_and_redacts(tmp_path):
    checks = sample_checks()
    checks.append(Check("worker.heartbeat", "workers", "FAIL", "stale", "h-worker", "w",
                        {"probe_last_failure": {"reason": "HF_TOKEN=hf_abcdefghijklmnopqrstuvwx leaked"}},
                        "recover-worker"))
    first = report.build_report(checks, {"h-worker": True, "h-head": True}, ["inventory/lab"], 0.0, {}, False, False)
    assert report.validate(first, REPO / "schemas" / "doctor-report.schema.json") == []
    jsonschema.Draft202012Validator(SCHEMA).validate(first)
    assert "hf_abcdefghijklmnop" not in json.dumps(first) and "<redacted>" in json.dumps(first)
    worker = next(h for h in first["hosts"] if h["name"] == "h-worker")
    workers_ready = next(c for c in worker["conditions"] if c["type"] == "WorkersReady")
    assert workers_ready["status"] == "False" and workers_ready["reason"]
    state = {k: dict(v, time=1000000000.0) for k, v in report.condition_state(first).items()}
    again = report.build_report(checks, {"h-worker": True, "h-head": True}, ["i"], 0.0, state, True, False)
    assert {c["lastTransitionTime"] for h in again["hosts"] for c in h["conditions"]} == {"2001-09-09T01:46:40Z"}
    assert "hf_abcdefghijklmnop" in json.dumps(again)
    gone = report.build_report(checks, {"h-worker": False, "h-head": True}, ["i"], 0.0, {}, False, False)
    unknown = next(h for h in gone["hosts"] if h["name"] == "h-worker")["conditions"]
    assert all(c["status"] in ("Unknown", "False", "True") for c in unknown)


def test_status_document_and_table_from_recorded_results():
    observations = [dict(observation("head"), seconds=0.9), dict(observation("worker"), seconds=1.1)]
    doc = status_document(observations, 1.5)
    assert [w["ray"] for w in doc["workers"]] == ["ALIVE", "ALIVE"]
    plain = format_status(doc, colour=False)
    assert "\033[" not in plain and "ray-worker" in plain and "3/60" in plain
    assert "\033[32m" in format_status(doc, colour=True)


def test_the_doctor_table_lists_findings_then_commands_and_paints_only_when_asked():
    from fleetwarden.doctor.doctor_view import format_doctor

    built = report.build_report(sample_checks(), {"h-worker": True, "h-head": True}, ["inventory/lab"], 0.0, {},
                                False, False)
    plain = format_doctor(built)
    assert "\033[" not in plain
    assert plain.index("FINDINGS") < plain.index("RECOMMENDATIONS")
    assert "$ ansible-playbook -i inventory/lab playbooks/recover.yml -e target=h-worker" in plain
    assert "\033[31m" in format_doctor(built, colour=True)


def test_gpu_health_names_ecc_retired_pages_and_xid():
    obs = observation()
    healthy = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "pci_bus_id": "00000000:00:06.0", "xids": {},
               "ecc_volatile_uncorrected": 0, "retired_pages_pending": False, "health": "healthy", "reasons": []}
    obs["result"]["host"]["gpus"] = [healthy]
    check = by_id(host_checks.resource_checks(obs), "host.gpu")
    assert (check.status, check.recommendation) == ("OK", None)
    gone = {"index": None, "name": "GPU at PCI c1:00 (not listed by nvidia-smi)", "pci_bus_id": "c1:00",
            "xids": {"79": 1}, "health": "unhealthy",
            "reasons": ["XID 79 (GPU has fallen off the bus) logged 1 times since boot"]}
    obs["result"]["host"]["gpus"] = [healthy, gone]
    check = by_id(host_checks.resource_checks(obs), "host.gpu")
    assert (check.status, check.recommendation) == ("FAIL", "drain-gpu")
    assert "GPU c1:00: XID 79 (GPU has fallen off the bus)" in check.summary
    assert check.evidence["gpus"][1]["xids"] == {"79": 1}
