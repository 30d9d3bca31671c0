"""site.yml refuses a bad fleet configuration before any host changes, naming the field.

Each case runs the real site.yml on the lab with one bad value; the preflight play (fleet_config_check, on the
controller) must fail it, and on every host daemon.json and the unit directory must have the same checksums, and
every container and unit the same state, as before. Also: a worker whose image is missing and may not be pulled
fails the play before any unit starts, in one line naming host, worker and image.
"""

from __future__ import annotations

import pytest
import yaml
from fleetwarden_testing import ray_lab
from fleetwarden_testing.site_lab import SITE, SiteLab, changes

pytestmark = pytest.mark.lab
IMAGE = "fleetwarden/ray-worker:latest"


@pytest.fixture(scope="module")
def lab(tmp_path_factory, lab_baseline):
    return SiteLab(lab_baseline, tmp_path_factory.mktemp("reports"))


def worker(**keys):
    return {"name": "extra", "image": IMAGE, "pull": "never", **keys}


CASES = {
    "unknown_key": ({"worker_service_workers": [worker(gcsfuse_mount=["/mnt/lab-data"])]},
                    "worker_service_workers[0].gcsfuse_mount: unknown key (did you mean gcsfuse_mounts?)"),
    "invalid_name": ({"worker_service_workers": [worker(name="bad name")]},
                     "a worker name must be a valid unit and container name"),
    "name_twice": ({"worker_service_workers": [worker(name="ray-worker")]},
                   "worker_names: worker names must be unique on a host"),
    "undeclared_mount": ({"worker_service_workers": [worker(gcsfuse_mounts=["/mnt/not-declared"])]},
                         "worker extra: gcsfuse_mounts: /mnt/not-declared is not a mount declared"),
    "invalid_image": ({"ray_cluster_image": "Fleetwarden/Ray Worker:latest"}, "must be a docker image reference"),
    "restart_budget": ({"worker_service_workers": [worker(restart={"max_per_hour": 0})]},
                       "restart.max_per_hour must be a whole number of at least 1"),
    "carriage_return": ({"ray_cluster_env": {"HF_TOKEN": "hf-secret-value\r"}},
                        "ray_cluster_env.HF_TOKEN: an env value may not hold a newline, carriage return or NUL"),
}


def assert_refused_and_nothing_changed(lab, run, before, message):
    assert run.returncode != 0
    assert "the fleet configuration is invalid; nothing was changed" in run.stdout, run.stdout[-3000:]
    assert message in run.stdout, run.stdout[-3000:]
    # The first play failed on the controller: no later play started.
    assert "PLAY [Baseline" not in run.stdout
    assert changes(before, lab.fleet_snapshot(), {}) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_fleet_configuration_is_refused_before_any_host_changes(lab, case):
    extra, message = CASES[case]
    before = lab.fleet_snapshot()
    run = lab.playbook(SITE, extra_vars=extra, timeout=300)
    assert_refused_and_nothing_changed(lab, run, before, message)
    assert "hf-secret-value" not in run.stdout


def test_ray_workers_without_exactly_one_head_are_refused(lab, tmp_path):
    # A second host in the head group, through an extra inventory source.
    extra = tmp_path / "second-head.yml"
    extra.write_text(yaml.safe_dump({"all": {"children": {"head": {"hosts": {lab.worker.name: None}}}}}))
    before = lab.fleet_snapshot()
    run = lab.playbook(SITE, "-i", str(extra), timeout=300)
    assert_refused_and_nothing_changed(lab, run, before, "so group head must hold exactly one host")


def test_a_missing_image_that_may_not_be_pulled_fails_before_any_unit_starts(lab):
    host = lab.worker
    ghost = {"name": "ghost", "image": "fleetwarden/no-such-image:1", "pull": "never"}
    drill = yaml.safe_load((ray_lab.REPO / "inventory/lab/group_vars/workers.yml").read_text())
    run = lab.playbook(SITE, "--tags", "workers", "--limit", host.name,
                       extra_vars={"worker_service_workers": [*drill["worker_service_workers"], ghost],
                                   "lab_drill_worker_program": drill["lab_drill_worker_program"]}, timeout=600)
    assert run.returncode != 0
    line = (f"{host.name}: worker ghost needs image fleetwarden/no-such-image:1, which is not on the host, and its "
            "pull policy is never")
    assert line in run.stdout, run.stdout[-3000:]
    assert "Render the worker units" not in run.stdout.split(line)[-1]
    assert lab.sh(host, "ls /etc/systemd/system/fleetwarden-worker-ghost.service /etc/fleetwarden/workers/ghost.json "
                        "2>/dev/null", check=False).strip() == ""
