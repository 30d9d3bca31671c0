"""The fault drill on what site.yml deploys: the lab as `make lab` leaves it (lab inventory, default restart
policy, the real Ray head), healed by playbooks/recover.yml with no extra variables.

Workers: the Ray head and Ray workers of ray_cluster, and `drill`, a worker declared in inventory/lab
(group_vars/workers.yml) that allocates or crashes on demand, for the faults a Ray worker cannot be made to have
at will (an OOM at its memory limit, exit 139, a crash at every start so that systemd's restarts run out).
For each fault: the cause named from the real dead container, the incident evidence kept (secrets redacted),
the worker healthy through the settle window and (Ray) ALIVE in the real head, a second recover.yml with
changed=0, and nothing else changed on any host (containers, units, daemon.json, the unit directory).

Disk full fills the drill worker's 16 MiB /scratch tmpfs (declared in inventory/lab), never the lab hosts' docker
root, which is a volume on this machine's disk. Faults that heal themselves (container killed,
mount process killed, head restarted) are asserted as such: back by systemd, ALIVE, and recover.yml then finds
nothing to do; the cause of the death comes from the record the worker's supervisor kept of the real dead
container before systemd replaced it (evidence.last_death, <incidents>/_deaths/<worker>/).
"""

from __future__ import annotations

import json
import time

import jsonschema
import pytest
from fleetwarden_testing import ray_lab
from fleetwarden_testing.site_lab import (
    DIAGNOSE,
    DRILL,
    DRILL_FAULT,
    DRILL_SECRET,
    EXHAUSTED,
    INCIDENTS,
    MOUNT_UNIT,
    RAY_HEAD,
    RAY_WORKER,
    REPO,
    SITE,
    SiteLab,
    changes,
    death_kept,
    exhaust,
    kill_mount_process,
    last_death,
    ray_worker_back,
    recap_of,
    unit_of,
    units_of,
)

pytestmark = [pytest.mark.lab, pytest.mark.ray]
SCHEMA = json.loads((REPO / "schemas" / "diagnosis-report.schema.json").read_text())
SETTLE_S = 15  # roles/recovery/defaults/main.yml recovery_settle_s


@pytest.fixture(scope="module")
def lab(tmp_path_factory, lab_baseline):
    hosts = lab_baseline
    lab = SiteLab(hosts, tmp_path_factory.mktemp("reports"))
    for host in lab.workers:
        lab.reset_worker(host, DRILL)
    # The lab as site.yml leaves it; when `make lab` already ran it, this run is its idempotence check.
    run = ray_lab.require_site()
    if any(counts.get("changed") for counts in ray_lab.recap(run.stdout).values()):
        run = lab.playbook(SITE)
        assert run.returncode == 0, run.stdout[-5000:]
    lab.site_recap = ray_lab.recap(run.stdout)
    lab.wait_calm()
    return lab


def test_site_yml_a_second_time_changes_nothing(lab):
    assert lab.site_recap and all(c.get("changed") == 0 and c.get("failed") == 0 for c in lab.site_recap.values()), \
        lab.site_recap


def test_diagnose_finds_every_worker_site_yml_deployed_with_no_variables(lab):
    run = lab.playbook(DIAGNOSE, "--check", "-e", "target=all")
    assert run.returncode == 0, run.stdout[-4000:]
    fleet = json.loads(sorted(lab.report_dir.glob("*/fleet.json"))[-1].read_text())
    jsonschema.validate(fleet, SCHEMA)
    found = {(w["host"], w["worker"]) for w in fleet["workers"]}
    assert (lab.head.name, RAY_HEAD) in found
    for host in lab.workers:
        assert {(host.name, RAY_WORKER), (host.name, DRILL)} <= found
    assert all(w["cause"] == "running" for w in fleet["workers"]), fleet["workers"]
    assert DRILL_SECRET not in json.dumps(fleet)


def test_recover_on_a_healthy_host_changes_nothing(lab):
    before = lab.fleet_snapshot()
    run, report, _ = lab.recover(lab.worker)
    assert run.returncode == 0, run.stdout[-4000:]
    assert recap_of(run, lab.worker).get("changed") == 0
    assert {e["worker"] for e in report["workers"]} == {RAY_WORKER, DRILL}
    assert changes(before, lab.fleet_snapshot(), {}) == []


def test_a_stopped_ray_worker_unit_is_healed(lab):
    # The case: with the Ray worker's unit stopped, recover.yml said "no workers declared" and left it.
    host = lab.worker
    before = lab.fleet_snapshot()
    lab.sh(host, f"systemctl stop {unit_of(RAY_WORKER)}")
    run, report, _ = lab.recover(host)
    assert run.returncode == 0, run.stdout[-5000:]
    entry = next(e for e in report["workers"] if e["worker"] == RAY_WORKER)
    assert entry["cause"] != "running" and entry["action"] != "none" and entry["healthy"] is True
    assert entry["verification"]["healthy"] is True and entry["verification"]["settled_s"] >= SETTLE_S
    assert host.address in lab.alive()
    again, _, _ = lab.recover(host)
    assert again.returncode == 0 and recap_of(again, host).get("changed") == 0, again.stdout[-3000:]
    allowed = {host.name: units_of(RAY_WORKER)}
    assert changes(before, lab.fleet_snapshot(), allowed) == []


# --- faults on the drill worker, with systemd's restarts run out --------------------------------------------------
@pytest.mark.parametrize("fault", sorted(EXHAUSTED))
def test_a_fault_that_exhausted_the_restarts_is_diagnosed_and_healed(lab, fault):
    host = lab.worker
    fault_file, first_death, cause = EXHAUSTED[fault]
    lab.wait_calm()
    lab.reset_worker(host, DRILL)
    lab.wait_calm()
    before = lab.fleet_snapshot()
    exhaust(lab, host, fault_file, first_death)
    dead = ray_lab.container(host, DRILL)
    # systemd gave up: the unit is failed after max_per_hour (3, inventory/lab) restarts.
    assert int(ray_lab.unit(host, unit_of(DRILL)).get("NRestarts", "0")) >= 3
    assert "Start request repeated too quickly" in lab.sh(host, f"journalctl -u {unit_of(DRILL)} -n 30 -o cat")
    lab.sh(host, f"rm -f {DRILL_FAULT}")  # the fault was transient: the next start is healthy
    run, report, _ = lab.recover(host)
    assert run.returncode == 0, run.stdout[-6000:]
    jsonschema.validate(report, SCHEMA)
    entry = next(e for e in report["workers"] if e["worker"] == DRILL)
    # The cause, named from the real dead container.
    assert entry["cause"] == cause, entry["findings"]
    assert entry["container_id"] == dead["id"]
    if fault == "disk_full":  # the full filesystem named, from the dead container's log and its inspect
        assert "/scratch (tmpfs, 16 MiB)" in entry["findings"][0]["reason"], entry["findings"]
    # Healthy through the settle window, Ray untouched and whole.
    assert entry["healthy"] is True and entry["verification"]["settled_s"] >= SETTLE_S, entry["verification"]
    assert lab.drill_healthy(host) and lab.whole()
    # The evidence kept, secrets redacted everywhere.
    inspect = json.loads(lab.sh(host, f"cat {entry['incident_dir']}/inspect.json"))
    assert inspect[0]["Id"] == dead["id"]
    assert "drill worker started" in lab.sh(host, f"cat {entry['incident_dir']}/logs.txt")
    evidence = lab.sh(host, f"cat {entry['incident_dir']}/*")
    assert "DRILL_API_TOKEN=<redacted>" in evidence and DRILL_SECRET not in evidence
    assert DRILL_SECRET not in json.dumps(report) and DRILL_SECRET not in run.stdout
    # A second run finds nothing to do; nothing but the drill worker changed anywhere.
    again, _, _ = lab.recover(host)
    assert again.returncode == 0 and recap_of(again, host).get("changed") == 0, again.stdout[-3000:]
    allowed = {host.name: units_of(DRILL)}
    assert changes(before, lab.fleet_snapshot(), allowed) == []


def test_a_crash_loop_is_not_called_healthy_and_repeats_need_a_person(lab):
    # The case: exit 1 two seconds after each start. recover.yml once reported it healthy at one
    # instant; now the settle window sees the restart, and the run fails naming the worker.
    host = lab.worker
    lab.wait_calm()
    lab.reset_worker(host, DRILL)
    lab.wait_calm()
    try:
        exhaust(lab, host, "exit1", "docker kill --signal KILL {name}")
        # It never settles: a short verification bound keeps the test short.
        run, report, _ = lab.recover(host, "-e", "recovery_verify_timeout=30")
        assert run.returncode != 0
        assert f"{DRILL} on {host.name} need a person" in run.stdout
        entry = next(e for e in report["workers"] if e["worker"] == DRILL)
        assert entry["healthy"] is False, entry["verification"]
        assert "settle window" in entry["verification"]["reason"] or "within" in entry["verification"]["reason"]
        assert report["needs_attention"] == [DRILL]
        # Two earlier deaths of other causes in the window: the third is flagged, not recreated (no loop).
        ray_lab.wait_until(lambda: ray_lab.unit(host, unit_of(DRILL)).get("ActiveState") == "failed", 120,
                           interval=1, what="the crash loop ran out of restarts again")
        now = time.time()
        history = {DRILL: [{"cause": "sigkill", "at": now - 600, "container_id": "earlier1"},
                           {"cause": "unknown", "at": now - 300, "container_id": "earlier2"}]}
        lab.sh(host, f"mkdir -p {INCIDENTS} && echo '{json.dumps(history)}' > {INCIDENTS}/history.json")
        dead = ray_lab.container(host, DRILL)
        run, report, _ = lab.recover(host, "-e", "recovery_verify_timeout=30")
        assert run.returncode != 0 and f"{DRILL} on {host.name} need a person" in run.stdout
        entry = next(e for e in report["workers"] if e["worker"] == DRILL)
        assert entry["remediation"] == "report_only" and entry["repeat"]["repeated"] is True
        assert entry["repeat"]["count"] >= 3 and entry["action"] == "report_only"
        assert ray_lab.container(host, DRILL)["id"] == dead["id"]  # left for a person: not recreated
    finally:
        lab.reset_worker(host, DRILL)
        lab.wait_calm()


# --- faults on the Ray workers and the host ---------------------------------------------------------------------
def test_a_killed_ray_worker_container_is_back_by_systemd_and_alive_in_the_head(lab):
    host = lab.worker
    lab.wait_calm()
    old_container, old_node = ray_lab.container(host, RAY_WORKER), lab.alive()[host.address]
    lab.sh(host, f"docker kill {RAY_WORKER}")
    ray_lab.wait_until(lambda: ray_worker_back(lab, host, old_container, old_node), 120, interval=1,
                       what="a new Ray worker container ALIVE in the head")
    run, report, _ = lab.recover(host)
    assert run.returncode == 0 and recap_of(run, host).get("changed") == 0, run.stdout[-3000:]
    assert all(e["cause"] == "running" for e in report["workers"])
    # The cause of the death systemd healed, named from the record the supervisor kept of the real dead container.
    last = last_death(report, RAY_WORKER)
    assert (last.get("cause"), last.get("container_id"), last.get("stopped_by_unit")) == (
        "sigkill", old_container["id"], False), last
    assert death_kept(lab, host, RAY_WORKER, old_container["id"])["state"]["ExitCode"] == 137


def test_a_killed_mount_process_brings_the_ray_worker_back_with_the_new_mount(lab):
    # The case: kill -9 of the mount process left the worker that used it inactive (BindsTo=).
    host = lab.worker
    lab.wait_calm()
    old_container, old_node = ray_lab.container(host, RAY_WORKER), lab.alive()[host.address]
    pid = kill_mount_process(lab, host)
    ray_lab.wait_until(lambda: ray_worker_back(lab, host, old_container, old_node, mount=True), 120, interval=0.5,
                       what="the Ray worker back and ALIVE, the new mount visible inside it")
    assert ray_lab.unit(host, MOUNT_UNIT).get("ExecMainPID") != pid
    run, report, _ = lab.recover(host)
    assert run.returncode == 0 and recap_of(run, host).get("changed") == 0, run.stdout[-3000:]
    assert all(e["cause"] == "running" for e in report["workers"])
    # systemd stopped the old container with its unit when the mount went: the record says so, with its cause.
    last = last_death(report, RAY_WORKER)
    assert last.get("container_id") == old_container["id"] and last.get("stopped_by_unit") is True, last
    record = death_kept(lab, host, RAY_WORKER, old_container["id"])
    assert last["exit"]["code"] == record["state"]["ExitCode"] and last["cause"] == "sigterm", last


def test_dockerd_stopped_is_diagnosed_and_healed(lab):
    """live-restore keeps both containers running while dockerd is away: recover.yml starts dockerd, keeps the
    evidence, and verifies both through the settle window (Ray worker ALIVE) without recreating either."""
    host = lab.worker
    lab.wait_calm()
    before = lab.fleet_snapshot()
    ids = {name: ray_lab.container(host, name)["id"] for name in (RAY_WORKER, DRILL)}
    lab.sh(host, "systemctl stop docker.socket docker.service")
    run, report, _ = lab.recover(host)
    assert run.returncode == 0, run.stdout[-6000:]
    entries = {e["worker"]: e for e in report["workers"]}
    assert entries[RAY_WORKER]["cause"] == "daemon_down" and entries[DRILL]["cause"] == "daemon_down"
    assert all(e["healthy"] is True for e in entries.values()), [e["verification"] for e in entries.values()]
    assert all(e["incident_dir"] for e in entries.values())
    assert {name: e["action"] for name, e in entries.items()} == {RAY_WORKER: "started_docker", DRILL: "started_docker"}
    assert {name: ray_lab.container(host, name)["id"] for name in ids} == ids
    assert all(e["verification"]["container_id"] == ids[name] for name, e in entries.items())
    assert host.address in lab.alive()
    again, _, _ = lab.recover(host)
    assert again.returncode == 0 and recap_of(again, host).get("changed") == 0, again.stdout[-3000:]
    allowed = {host.name: {"docker.service", *units_of(RAY_WORKER), *units_of(DRILL)}}
    assert changes(before, lab.fleet_snapshot(), allowed) == []


def test_a_worker_killed_while_dockerd_was_away_is_replaced_and_the_survivor_kept(lab):
    """dockerd stopped and the Ray worker's container SIGKILLed during the outage: once recover.yml starts dockerd,
    the killed one is replaced (by its unit, whose supervisor records the death first, or by recover.yml, whichever
    comes first), the drill worker live-restore kept runs on untouched, and both settle."""
    host = lab.worker
    lab.reset_worker(host, DRILL)  # a fresh history: the earlier tests' deaths would make this one a repeat
    lab.wait_calm()
    old = {name: ray_lab.container(host, name) for name in (RAY_WORKER, DRILL)}
    lab.sh(host, f"systemctl stop docker.socket docker.service && kill -KILL {old[RAY_WORKER]['pid']}")
    run, report, _ = lab.recover(host)
    assert run.returncode == 0, run.stdout[-6000:]
    entries = {e["worker"]: e for e in report["workers"]}
    assert entries[RAY_WORKER]["cause"] == "daemon_down" and entries[DRILL]["cause"] == "daemon_down"
    assert all(e["healthy"] is True for e in entries.values()), [e["verification"] for e in entries.values()]
    assert ray_lab.container(host, DRILL)["id"] == old[DRILL]["id"] and entries[DRILL]["action"] == "started_docker"
    new = ray_lab.container(host, RAY_WORKER)
    assert new["running"] and new["id"] != old[RAY_WORKER]["id"]
    assert entries[RAY_WORKER]["verification"]["container_id"] == new["id"]
    record = death_kept(lab, host, RAY_WORKER, old[RAY_WORKER]["id"])
    assert record["state"]["ExitCode"] == 137, record["state"]
    assert host.address in lab.alive()
    again, _, _ = lab.recover(host)
    assert again.returncode == 0 and recap_of(again, host).get("changed") == 0, again.stdout[-3000:]


def test_dockerd_that_will_not_start_keeps_the_evidence_and_fails_naming_it(lab):
    """remediate.yml's rescue: dockerd masked, so `systemctl start` refuses; both workers' evidence is kept without
    inspect and logs (dockerd cannot give them), the run fails naming the host and systemd's reason, and once
    dockerd can start again the next recover.yml heals the host."""
    host = lab.worker
    lab.reset_worker(host, DRILL)  # a fresh history: this test's two runs must not count as repeats of earlier ones
    lab.wait_calm()
    listed = f"for w in {RAY_WORKER} {DRILL}; do ls -1 {INCIDENTS}/$w 2>/dev/null | sed \"s|^|$w/|\"; done"
    before = set(lab.sh(host, listed).split())
    lab.sh(host, "systemctl stop docker.socket docker.service && systemctl mask --runtime docker.service")
    try:
        run, _, _ = lab.recover(host)
    finally:
        lab.sh(host, "systemctl unmask --runtime docker.service")
    assert run.returncode != 0, run.stdout[-4000:]
    assert f"dockerd on {host.name} did not start" in run.stdout and "masked" in run.stdout, run.stdout[-4000:]
    kept = sorted(set(lab.sh(host, listed).split()) - before)
    assert sorted(path.split("/")[0] for path in kept) == sorted([DRILL, RAY_WORKER]), kept
    for path in kept:
        files = lab.sh(host, f"ls -1 {INCIDENTS}/{path}").split()
        assert "diagnosis.json" in files and "inspect.json" not in files, (path, files)
        diagnosis = json.loads(lab.sh(host, f"cat {INCIDENTS}/{path}/diagnosis.json"))
        assert diagnosis["cause"] == "daemon_down", diagnosis
    try:
        healed, report, _ = lab.recover(host)
        assert healed.returncode == 0, healed.stdout[-6000:]
        assert all(e["healthy"] is True for e in report["workers"]), [e["verification"] for e in report["workers"]]
        assert host.address in lab.alive()
    finally:
        lab.sh(host, f"rm -f {INCIDENTS}/history.json")  # nor may they count for the tests after this one


def test_a_restarted_head_gets_every_ray_worker_back_alive(lab):
    lab.wait_calm()
    old_head = ray_lab.container(lab.head, RAY_HEAD)
    lab.sh(lab.head, f"systemctl restart {unit_of(RAY_HEAD)}")
    lab.wait_whole(240)
    for host in [lab.head, *lab.workers]:
        run, report, _ = lab.recover(host)
        assert run.returncode == 0 and recap_of(run, host).get("changed") == 0, run.stdout[-3000:]
        assert all(e["cause"] == "running" for e in report["workers"])
        if host is lab.head:  # the old head's death, stopped by its unit's restart, named from its record
            last = last_death(report, RAY_HEAD)
            assert last.get("container_id") == old_head["id"] and last.get("stopped_by_unit") is True, last
            record = death_kept(lab, host, RAY_HEAD, old_head["id"])
            assert last["exit"]["code"] == record["state"]["ExitCode"] and last["cause"] == "sigterm", last
