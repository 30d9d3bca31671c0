"""Integration tests run against real lab hosts and need a docker engine and the lab image.

Without an engine they skip, except under FLEETWARDEN_REQUIRE_LAB=1 (CI sets it): then they fail, so a run
that could not test the product never passes.
"""

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from fleetwarden_testing import baseline, ray_lab

REQUIRE_LAB = "FLEETWARDEN_REQUIRE_LAB"


def lab_required() -> bool:
    return os.environ.get(REQUIRE_LAB) == "1"


def cannot_run(reason: str):
    """Fails the test under FLEETWARDEN_REQUIRE_LAB=1, skips it otherwise."""
    if lab_required():
        pytest.fail(f"{REQUIRE_LAB}=1 but this test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def require_lab() -> dict[str, ray_lab.LabHost]:
    """The running 3-host lab (fleetwarden_testing.ray_lab.require_lab), or cannot_run saying why there is none."""
    try:
        return ray_lab.require_lab()
    except ray_lab.LabNotReady as why:
        cannot_run(str(why))
        raise  # cannot_run always raises (fail or skip); this only tells readers and linters so


def _engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


_ENGINE: list[bool] = []


def pytest_runtest_setup(item):
    if not _ENGINE:
        _ENGINE.append(_engine_answers())
    if not _ENGINE[0]:
        cannot_run("no docker engine answers; run scripts/install-engine.sh")


@pytest.fixture(scope="module")
def live_lab() -> dict[str, ray_lab.LabHost]:
    """The shared lab as `make lab` leaves it, its receiver live: restored at the start of the module
    (fleetwarden_testing.baseline: the worker set, the restart history, the receiver's limits), so that a
    module passes alone, in the default order and in reverse."""
    hosts = require_lab()
    baseline.end_maintenance()
    baseline.restore(hosts)
    return hosts


@pytest.fixture(scope="module")
def lab_baseline(request, live_lab) -> Iterator[dict[str, ray_lab.LabHost]]:
    """The same, for a module that breaks workers on purpose: its hosts are in the receiver's maintenance while
    the module runs, so the lab's live receiver records its alerts and leaves the healing to the test."""
    with baseline.maintenance(live_lab, f"lab test module {request.module.__name__}"):
        yield live_lab


@pytest.fixture
def fresh_lab(lab_baseline) -> dict[str, ray_lab.LabHost]:
    """The same, restored right before this test: for a test that needs the lab exactly as `make lab` leaves it,
    whatever the tests of its own module did before it."""
    baseline.restore(lab_baseline)
    return lab_baseline
