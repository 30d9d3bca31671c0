"""Fixtures for the inventory plugin tests; the helpers live in inventory_testlib.

Each test module has its own ``plugin`` fixture (the plugin it tests), which ``warnings`` uses.
"""

import pytest
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader


@pytest.fixture
def write_config(tmp_path):
    """Write an inventory config and return its path; the name decides which plugin accepts it."""

    def write(filename, text):
        path = tmp_path / filename
        path.write_text(text)
        return str(path)

    return write


@pytest.fixture
def inventory():
    return InventoryData()


@pytest.fixture
def loader():
    return DataLoader()


@pytest.fixture
def warnings(monkeypatch, plugin):
    """The warnings the test module's ``plugin`` shows, in order."""
    seen = []
    monkeypatch.setattr(plugin.display, "warning", lambda msg, *args, **kwargs: seen.append(msg))
    return seen
