"""Integration tests run against real lab hosts and need a docker engine and the lab image.

Without an engine they skip, except under FLEETWARDEN_REQUIRE_LAB=1 (CI sets it): then they fail, so a run
that could not test the product never passes.
"""

import os
import shutil
import subprocess

import pytest

REQUIRE_LAB = "FLEETWARDEN_REQUIRE_LAB"


def lab_required() -> bool:
    return os.environ.get(REQUIRE_LAB) == "1"


def cannot_run(reason: str):
    """Fails the test under FLEETWARDEN_REQUIRE_LAB=1, skips it otherwise."""
    if lab_required():
        pytest.fail(f"{REQUIRE_LAB}=1 but this test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


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
