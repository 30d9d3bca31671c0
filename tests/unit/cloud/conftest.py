"""The cloud stand-in's tests reuse the inventory tests' plugin loader (inventory_testlib)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "inventory"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


import pytest
from fleetwarden_testing.standin import RunningStandIn


@pytest.fixture
def standin(tmp_path):
    running = RunningStandIn(tmp_path / ".lab" / "cloud")  # where `fleetwarden lab` finds it, project tmp_path
    yield running
    running.stop()
