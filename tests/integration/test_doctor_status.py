"""`fleetwarden status` and `fleetwarden doctor` on the running lab, deployed by site.yml (Ray head and workers).

A healthy lab exits 0; then each test injects one real problem into one lab host, runs the doctor as an
operator does (the CLI, --json), asserts the finding, its host and its recommendation, and puts the host
back. Host names come from the inventory (groups head and workers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from fleetwarden_testing import ray_lab

pytestmark = pytest.mark.lab

INVENTORY_DIR = ray_lab.INVENTORY.parent
SCHEMA = json.loads((ray_lab.REPO / "schemas" / "doctor-report.schema.json").read_text())
IMAGE = "fleetwarden/ray-worker:latest"
CRASHER = {"name": "fwd-crash", "image": IMAGE, "pull": "never", "command": ["bash", "-c", "sleep 1; exit 3"],
           "restart": {"max_per_hour": 1, "delay": 1, "steps": 0}}
# Touches its heartbeat every second until /tmp/stop exists. The probe's threshold is high so that a stale
# heartbeat stays visible to the doctor instead of being cured by a restart within seconds.
HEARTBEAT = {"name": "fwd-heartbeat", "image": IMAGE, "pull": "never",
             "command": ["bash", "-c", "while :; do [ -e /tmp/stop ] || touch /tmp/heartbeat; sleep 1; done"],
             "probe": {"heartbeat": {"path": "/tmp/heartbeat", "max_age": 4}, "interval": 2, "timeout": 1,
                       "failure_threshold": 1000, "start_period": 0}}


@pytest.fixture(scope="module")
def lab(lab_baseline):
    """The lab as site.yml deploys it. test_ray_cluster removes its Ray workers when it ends (unless
    FLEETWARDEN_KEEP_RAY=1): then this module deploys site.yml itself, and removes the Ray workers again after."""
    hosts = lab_baseline
    head = next(h for h in hosts.values() if "head" in h.groups)
    deployed_here = False
    if ray_lab.host_run(head, "test", "-e", "/etc/fleetwarden/workers/ray-head.json").returncode != 0:
        ray_lab.ensure_worker_image(hosts)
        result = ray_lab.ansible_playbook(ray_lab.REPO / "site.yml")
        assert result.returncode == 0, result.stdout[-4000:]
        deployed_here = True
    yield hosts
    if deployed_here and os.environ.get("FLEETWARDEN_KEEP_RAY") != "1":
        result = ray_lab.ansible_playbook(ray_lab.PLAYBOOKS / "worker_service.yml", "--tags", "worker_service",
                                          extra_vars={"target": "head:workers", "test_workers": [
                                              {"name": "ray-head", "state": "absent"},
                                              {"name": "ray-worker", "state": "absent"}]})
        assert result.returncode == 0, result.stdout[-3000:]


@pytest.fixture(scope="module")
def workers(lab):
    return sorted((h for h in lab.values() if "workers" in h.groups), key=lambda h: h.name)


@pytest.fixture(scope="module")
def cache_dir():
    with tempfile.TemporaryDirectory(prefix="fw-doctor-") as path:
        yield path


def doctor(cache_dir, *inventories: Path | str, save: Path | None = None) -> tuple[int, dict]:
    argv = [sys.executable, "-m", "fleetwarden.cli", "doctor", "--json"]
    argv += ["--save-report", str(save)] if save else []
    for inventory in (INVENTORY_DIR, *inventories):
        argv += ["-i", str(inventory)]
    env = dict(os.environ, XDG_CACHE_HOME=cache_dir, NO_COLOR="1")
    run = subprocess.run(argv, cwd=ray_lab.REPO, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert run.returncode in (0, 1), f"doctor could not run ({run.returncode}): {run.stderr[-2000:]}"
    report = json.loads(run.stdout)
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(report)
    assert report["exit_code"] == run.returncode
    return run.returncode, report


def finding(report: dict, check_id: str, host: str, worker: str | None = None) -> dict:
    found = [c for c in report["checks"] if c["id"] == check_id and c["host"] == host
             and (worker is None or c["worker"] == worker)]
    assert found, f"no {check_id} check for {host} {worker or ''}: {[c['id'] for c in report['checks']]}"
    return found[0]


def recommended(report: dict, rec_id: str, host: str) -> dict:
    recs = [r for r in report["recommendations"] if r["id"] == rec_id]
    assert recs, f"no recommendation {rec_id}: {[r['id'] for r in report['recommendations']]}"
    assert host in recs[0]["hosts"], recs[0]
    return recs[0]


def healthy_from(report: dict) -> list[dict]:
    return [c for c in report["checks"] if c["status"] == "FAIL"]


def test_a_healthy_lab_exits_0_for_a_settle_window(lab, fresh_lab, cache_dir, tmp_path):
    # On the lab as `make lab` leaves it (fresh_lab): the drills spend restart budgets on purpose, which the
    # doctor rightly reports for an hour.
    head = next(h for h in lab.values() if "head" in h.groups)
    ray_lab.wait_until(lambda: {h.address for h in lab.values()} <= set(ray_lab.alive(head)), 120, interval=2,
                       what="every lab host ALIVE in the Ray head")
    first_rc, first = doctor(cache_dir)
    time.sleep(5)
    rc, report = doctor(cache_dir, save=tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert (first_rc, rc) == (0, 0), [c for c in report["checks"] + first["checks"] if c["status"] == "FAIL"]
    assert not healthy_from(report)
    assert not [r for r in report["recommendations"] if r["priority"] == "HIGH"]
    assert {h["name"] for h in report["hosts"]} == set(lab)
    for host in report["hosts"]:
        conditions = {c["type"]: c["status"] for c in host["conditions"]}
        assert conditions["SSHReachable"] == "True" and conditions["RayJoined"] == "True", host
        assert conditions["DockerConfigDrifted"] == "False", host
    # Every worker is ALIVE in the head, as status shows it too.
    status = subprocess.run([sys.executable, "-m", "fleetwarden.cli", "status", "--json", "-i", str(INVENTORY_DIR)],
                            cwd=ray_lab.REPO, capture_output=True, text=True, timeout=60, check=True)
    rows = json.loads(status.stdout)["workers"]
    assert all(r["container"] == "running" for r in rows), rows
    ray_rows = [r for r in rows if r["ray"] is not None]  # the Ray head and workers; the drill worker is no Ray node
    assert sorted(r["host"] for r in ray_rows) == sorted(lab)
    assert all(r["ray"] == "ALIVE" for r in ray_rows), ray_rows


def test_sshd_stopped(lab, workers, cache_dir):
    victim = workers[0]
    ray_lab.host_run(victim, "systemctl", "stop", "ssh.service", check=True)
    try:
        rc, report = doctor(cache_dir)
        check = finding(report, "ssh.reachable", victim.name)
        assert check["status"] == "FAIL", check
        assert check["evidence"]["reason"] == "SSHConnectionRefused"
        rec = recommended(report, "start-sshd", victim.name)
        assert rec["priority"] == "HIGH" and rc == 1
        assert rec["command"] == f"docker exec {victim.container} systemctl start ssh"
        others = [c for c in report["checks"] if c["id"] == "ssh.reachable" and c["host"] != victim.name]
        assert others and all(c["status"] == "OK" for c in others)
    finally:
        ray_lab.host_run(victim, "systemctl", "start", "ssh.service", check=True)


def test_a_wrong_key_in_authorized_keys(lab, workers, cache_dir, tmp_path):
    victim = workers[0]
    original = ray_lab.host_run(victim, "cat", "/root/.ssh/authorized_keys", check=True).stdout
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "intruder", "-f", str(tmp_path / "k")],
                   check=True)
    wrong = (tmp_path / "k.pub").read_text()
    # The lab's own login key lives in /etc/ssh/fleetwarden-lab/, so the controller still gets in.
    ray_lab.host_run(victim, "sh", "-c", "cat > /root/.ssh/authorized_keys", input_text=wrong, check=True)
    try:
        rc, report = doctor(cache_dir)
        check = finding(report, "ssh.authorized_keys", victim.name)
        assert check["status"] == "FAIL", check
        wrong_fp = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")], capture_output=True,
                                  text=True, check=True).stdout.split()[1]
        assert check["evidence"]["root"]["undeclared"] == [wrong_fp]
        assert len(check["evidence"]["root"]["missing"]) == 1
        rec = recommended(report, "apply-ssh-keys", victim.name)
        assert rec["priority"] == "HIGH" and rc == 1
        assert f"--tags ssh_keys --limit {victim.name}" in rec["command"]
        # The other worker is not blamed. A lab reused across checkouts may hold earlier lab keys there (the lab
        # declares root's keys not exclusive): a WARN for those, never a FAIL, and never the intruder's key.
        other = finding(report, "ssh.authorized_keys", workers[1].name)
        assert other["status"] in ("OK", "WARN") and other["evidence"]["root"]["missing"] == [], other
        assert wrong_fp not in other["evidence"]["root"]["undeclared"], other
    finally:
        ray_lab.host_run(victim, "sh", "-c", "cat > /root/.ssh/authorized_keys", input_text=original, check=True)


def test_live_restore_turned_off_by_hand(lab, workers, cache_dir):
    victim = workers[0]
    original = ray_lab.host_run(victim, "cat", "/etc/docker/daemon.json", check=True).stdout
    changed = json.dumps(dict(json.loads(original), **{"live-restore": False}), indent=2)
    ray_lab.host_run(victim, "sh", "-c", "cat > /etc/docker/daemon.json && systemctl reload docker",
                     input_text=changed, check=True)
    try:
        ray_lab.wait_until(lambda: "false" in ray_lab.host_run(
            victim, "docker", "info", "--format", "{{.LiveRestoreEnabled}}").stdout, 30, what="live-restore off")
        rc, report = doctor(cache_dir)
        check = finding(report, "host.docker_settings", victim.name)
        assert check["status"] == "FAIL" and check["evidence"]["live_restore"] == {"declared": True, "running": False}
        rec = recommended(report, "apply-docker-settings", victim.name)
        assert rec["priority"] == "HIGH" and rc == 1
        assert f"--tags docker_engine --limit {victim.name}" in rec["command"]
        drifted = {c["type"]: c for h in report["hosts"] if h["name"] == victim.name for c in h["conditions"]}
        assert drifted["DockerConfigDrifted"]["status"] == "True"
    finally:
        ray_lab.host_run(victim, "sh", "-c", "cat > /etc/docker/daemon.json && systemctl reload docker",
                         input_text=original, check=True)
        ray_lab.wait_until(lambda: "true" in ray_lab.host_run(
            victim, "docker", "info", "--format", "{{.LiveRestoreEnabled}}").stdout, 30, what="live-restore on")


def test_docker_root_almost_full(lab, workers, cache_dir, tmp_path):
    """The lab's docker roots share this machine's disk, so the test does not fill it to 95 %: it sets the
    victim's threshold just above today's use (a host variable, as an operator would) and then really writes
    1 % of the disk into docker's root, which crosses it."""
    victim = workers[0]
    df = ray_lab.host_run(victim, "df", "--output=used,avail,size", "-B1", "/var/lib/docker", check=True).stdout
    used, avail, size = (int(v) for v in df.split()[-3:])
    used_pct = 100.0 * used / (used + avail)
    step_pct = 100.0 * (size // 100) / (used + avail)
    limit = round(used_pct + step_pct / 2, 2)
    extra = tmp_path / "thresholds.yml"
    extra.write_text(yaml.safe_dump({"all": {"hosts": {victim.name: {
        "fleetwarden_doctor_disk_warn_pct": limit, "fleetwarden_doctor_disk_fail_pct": limit}}}}))
    fill = "/var/lib/docker/fleetwarden-doctor-fill"
    try:
        _rc, before = doctor(cache_dir, extra)
        docker_root = [c for c in before["checks"] if c["id"] == "host.disk" and c["host"] == victim.name
                       and c["evidence"]["path"] == "/var/lib/docker"]
        assert docker_root and docker_root[0]["status"] == "OK", docker_root
        ray_lab.host_run(victim, "fallocate", "-l", str(size // 100), fill, check=True)
        rc, report = doctor(cache_dir, extra)
        check = next(c for c in report["checks"] if c["id"] == "host.disk" and c["host"] == victim.name
                     and c["evidence"]["path"] == "/var/lib/docker")
        assert check["status"] == "FAIL" and "docker's root" in check["summary"], check
        rec = recommended(report, "free-disk", victim.name)
        assert rec["priority"] == "HIGH" and rc == 1 and "docker system prune" in rec["command"]
        assert victim.name in rec["command"]
    finally:
        ray_lab.host_run(victim, "rm", "-f", fill)


@pytest.fixture(scope="module")
def test_workers(lab, workers):
    """A worker that always crashes (restart budget 1) and one whose heartbeat can be stopped, on one host."""
    victim = workers[0]
    result = ray_lab.ansible_playbook(ray_lab.PLAYBOOKS / "worker_service.yml",
                                      extra_vars={"target": victim.name, "test_workers": [CRASHER, HEARTBEAT]})
    assert result.returncode == 0, result.stdout[-3000:]
    yield victim
    result = ray_lab.ansible_playbook(ray_lab.PLAYBOOKS / "worker_service.yml", extra_vars={
        "target": victim.name, "test_workers": [{"name": w["name"], "state": "absent"} for w in (CRASHER, HEARTBEAT)]})
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_worker_unit_failed_with_its_restarts_exhausted(test_workers, cache_dir):
    victim = test_workers
    unit = "fleetwarden-worker-fwd-crash.service"
    ray_lab.wait_until(lambda: ray_lab.unit(victim, unit).get("ActiveState") == "failed", 60,
                       what=f"{unit} failed for good")
    rc, report = doctor(cache_dir)
    check = finding(report, "worker.unit", victim.name, "fwd-crash")
    assert check["status"] == "FAIL" and "restarts are exhausted" in check["summary"], check
    assert check["evidence"]["unit"]["restarts_exhausted"] is True
    rec = recommended(report, "recover-worker", victim.name)
    assert rec["priority"] == "HIGH" and rc == 1
    assert rec["command"].endswith(f"playbooks/recover.yml -e target={victim.name}")


def test_a_stale_heartbeat(test_workers, cache_dir):
    victim = test_workers
    ray_lab.wait_until(lambda: (ray_lab.container(victim, "fwd-heartbeat") or {}).get("running"), 60,
                       what="fwd-heartbeat running")
    ray_lab.host_run(victim, "docker", "exec", "fwd-heartbeat", "touch", "/tmp/stop", check=True)
    try:
        time.sleep(6)
        rc, report = doctor(cache_dir)
        check = finding(report, "worker.heartbeat", victim.name, "fwd-heartbeat")
        assert check["status"] == "FAIL" and check["evidence"]["age_s"] > 4, check
        assert "recover-worker" == check["recommendation"]
        rec = recommended(report, "recover-worker", victim.name)
        assert rec["priority"] == "HIGH" and rc == 1
        assert finding(report, "worker.unit", victim.name, "fwd-heartbeat")["status"] == "OK"
    finally:
        ray_lab.host_run(victim, "docker", "exec", "fwd-heartbeat", "rm", "-f", "/tmp/stop")


def test_a_ray_worker_missing_from_the_head(lab, workers, cache_dir):
    """A network partition between a worker host and the head: the unit and container stay up, the head
    declares the node DEAD (about a minute: Ray's health checks), and the doctor says so."""
    head = next(h for h in lab.values() if "head" in h.groups)
    victim = workers[-1]
    rules = [["INPUT", "-s", head.address], ["OUTPUT", "-d", head.address]]
    for chain, *match in rules:
        ray_lab.host_run(victim, "iptables", "-I", chain, *match, "-p", "tcp", "-j", "REJECT", "--reject-with",
                         "tcp-reset", check=True)
    try:
        ray_lab.wait_until(lambda: victim.address not in ray_lab.alive(head), 150, interval=2,
                           what=f"the head no longer lists {victim.name} ALIVE")
        rc, report = doctor(cache_dir)
        check = finding(report, "worker.ray", victim.name, "ray-worker")
        assert check["status"] == "FAIL" and check["summary"] == "not ALIVE in the Ray head", check
        rec = recommended(report, "rejoin-ray", victim.name)
        assert rec["priority"] == "HIGH" and rc == 1
        assert rec["command"].endswith(f"playbooks/recover.yml -e target={victim.name}")
        joined = {c["type"]: c for h in report["hosts"] if h["name"] == victim.name for c in h["conditions"]}
        assert joined["RayJoined"]["status"] == "False"
    finally:
        for chain, *match in rules:
            ray_lab.host_run(victim, "iptables", "-D", chain, *match, "-p", "tcp", "-j", "REJECT", "--reject-with",
                             "tcp-reset")
        ray_lab.wait_until(lambda: victim.address in ray_lab.alive(head), 120, interval=2,
                           what=f"{victim.name} ALIVE in the head again")
