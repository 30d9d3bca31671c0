"""Under FLEETWARDEN_REQUIRE_LAB=1 (CI) a lab test that cannot run fails; without it, it skips.

Covers the three ways a lab test cannot run: no docker engine (the conftest hook, run in a real pytest
subprocess against a docker socket nobody listens on), no or a partial lab, and a lab host that is not running
(tests/integration/conftest.require_lab over fleetwarden_testing.ray_lab.require_lab, with the inventory and the
host's answer given).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fleetwarden_testing import ray_lab

from tests.integration.conftest import require_lab

REPO = Path(__file__).resolve().parents[3]
HEAD = ray_lab.LabHost("lab-head", "fw-lab-head", "10.0.0.2", ("head",))
W1 = ray_lab.LabHost("lab-worker-1", "fw-lab-worker-1", "10.0.0.3", ("workers", "gpu"))
W2 = ray_lab.LabHost("lab-worker-2", "fw-lab-worker-2", "10.0.0.4", ("workers", "tpu"))


def run_integration_test(tmp_path, require):
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/nobody.sock", PY_COLORS="0")
    env.pop("FLEETWARDEN_REQUIRE_LAB", None)
    if require:
        env["FLEETWARDEN_REQUIRE_LAB"] = "1"
    test = "tests/integration/test_ray_cluster.py::test_kill_9_of_the_raylet_inside_a_worker"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfs", test],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_no_engine_fails_under_require_lab(tmp_path):
    result = run_integration_test(tmp_path, require=True)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "FLEETWARDEN_REQUIRE_LAB=1 but this test cannot run: no docker engine answers" in result.stdout


def test_no_engine_skips_without_require_lab(tmp_path):
    result = run_integration_test(tmp_path, require=False)
    assert result.returncode == 0 and "1 skipped" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize(("hosts", "why"), [
    ({}, "no lab runs"),
    ({"lab-head": HEAD, "lab-worker-1": W1}, "needs a lab of a head and two workers, found lab-head, lab-worker-1"),
])
def test_a_missing_or_partial_lab_fails_under_require_lab(monkeypatch, hosts, why):
    monkeypatch.setattr(ray_lab, "read_inventory", lambda: hosts)
    monkeypatch.setenv("FLEETWARDEN_REQUIRE_LAB", "1")
    with pytest.raises(pytest.fail.Exception, match=why):
        require_lab()
    monkeypatch.delenv("FLEETWARDEN_REQUIRE_LAB")
    with pytest.raises(pytest.skip.Exception, match=why):
        require_lab()


def test_a_host_that_is_not_running_fails_under_require_lab(monkeypatch):
    monkeypatch.setattr(ray_lab, "read_inventory", lambda: {h.name: h for h in (HEAD, W1, W2)})
    answers = {"fw-lab-head": "running", "fw-lab-worker-1": "running", "fw-lab-worker-2": ""}
    monkeypatch.setattr(ray_lab, "host_run", lambda host, *argv, **kw: subprocess.CompletedProcess(
        argv, 0 if answers[host.container] else 1, answers[host.container] + "\n", ""))
    monkeypatch.setenv("FLEETWARDEN_REQUIRE_LAB", "1")
    with pytest.raises(pytest.fail.Exception, match="lab host lab-worker-2 is not running"):
        require_lab()
    answers["fw-lab-worker-2"] = "degraded"
    assert set(require_lab()) == {"lab-head", "lab-worker-1", "lab-worker-2"}
