"""Every role's molecule scenarios, run for real: create, converge, idempotence, verify, destroy."""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REPORTS = REPO / "reports" / "molecule"
# Scenarios that a dedicated test runs itself (with extra assertions on its output).
RUN_ELSEWHERE = {"ssh_keys-default": "tests/molecule/test_no_secret_leak.py"}
SCENARIOS = [p for p in sorted(REPO.glob("roles/*/molecule/*/molecule.yml"))
             if f"{p.parts[-4]}-{p.parts[-2]}" not in RUN_ELSEWHERE]

pytestmark = pytest.mark.molecule


def _id(path: Path) -> str:
    return f"{path.parts[-4]}-{path.parts[-2]}"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[_id(p) for p in SCENARIOS])
def test_molecule_scenario(scenario: Path):
    role_dir = scenario.parents[2]
    name = scenario.parent.name
    env = {**os.environ, "MOLECULE_INSTANCE": f"fw-mol-{_id(scenario)}", "ANSIBLE_FORCE_COLOR": "false",
           "NO_COLOR": "1", "PY_COLORS": "0"}
    result = subprocess.run(["molecule", "test", "-s", name], cwd=role_dir, env=env, capture_output=True,
                            text=True, check=False, timeout=900)
    REPORTS.mkdir(parents=True, exist_ok=True)
    log = REPORTS / f"{_id(scenario)}.log"
    log.write_text(result.stdout + result.stderr)
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-60:])
    assert result.returncode == 0, f"molecule test failed for {_id(scenario)} (full log: {log}):\n{tail}"
