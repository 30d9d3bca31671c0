"""fleetwarden.fleet.mitogen_linear imports without Mitogen (ansible-doc and ansible-test read it), and then
refuses to run, naming the package."""

import importlib.util
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleError

PLUGIN = Path(__file__).resolve().parents[4] / "plugins" / "strategy" / "mitogen_linear.py"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_mitogen_it_imports_and_refuses_to_run(monkeypatch):
    monkeypatch.setitem(sys.modules, "ansible_mitogen", None)  # import of it raises ImportError
    plugin = _load("mitogen_linear_without_mitogen")
    assert "DOCUMENTATION" in vars(plugin)
    with pytest.raises(AnsibleError, match="needs the mitogen package"):
        plugin.StrategyModule(None)


def test_with_mitogen_it_is_mitogens_strategy():
    pytest.importorskip("ansible_mitogen")
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

    assert _load("mitogen_linear_with_mitogen").StrategyModule is StrategyModule
