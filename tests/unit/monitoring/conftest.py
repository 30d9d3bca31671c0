"""Fixtures the monitoring tests share: the Prometheus tools Debian ships, found on PATH."""

import os
import shutil

import pytest


def installed_tool(name, package):
    """The path of ``name``; missing, the test fails under FLEETWARDEN_REQUIRE_LAB=1 (CI) and skips otherwise."""
    path = shutil.which(name)
    if path is None and os.environ.get("FLEETWARDEN_REQUIRE_LAB") == "1":
        pytest.fail(f"{name} is missing: scripts/install-engine.sh installs Debian's {package}")
    if path is None:
        pytest.skip(f"{name} is missing (apt-get install {package})")
    return path


@pytest.fixture
def promtool():
    return installed_tool("promtool", "prometheus")


@pytest.fixture
def amtool():
    return installed_tool("amtool", "prometheus-alertmanager")
