"""The settings_check action plugin (plugins/action/settings_check.py): its argument check, and real
ansible-playbook runs on the controller (the plugin needs no host)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.fleetwarden.fleet.plugins.action.settings_check import check_entries

REPO = Path(__file__).resolve().parents[4]


@pytest.mark.parametrize("checks, problem", [
    ([], "checks must be a non-empty list"),
    ("x is defined", "checks must be a non-empty list"),
    (["x is defined"], "checks[0] must be a mapping"),
    ([{"that": "x", "msg": "m", "if": "y"}], "checks[0] has unknown keys ['if']"),
    ([{"that": "x"}], "checks[0] needs that and a msg"),
    ([{"msg": "m"}], "checks[0] needs that and a msg"),
])
def test_bad_checks_are_named(checks, problem):
    assert any(problem in p for p in check_entries(checks)), check_entries(checks)


def play(tmp_path, checks, variables):
    """Runs one settings_check task on localhost; returns (rc, the task's result)."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False, "vars": variables,
        "tasks": [{"name": "check", "fleetwarden.fleet.settings_check": {"checks": checks},
                   "register": "outcome", "ignore_errors": True},
                  {"name": "show", "ansible.builtin.debug": {"var": "outcome"}}]}]))
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"), ANSIBLE_CONFIG=str(config),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    run = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
                          str(playbook)], capture_output=True, text=True, env=env, check=False, timeout=120)
    report = json.loads(run.stdout)
    tasks = report["plays"][0]["tasks"]
    return tasks[0]["hosts"]["localhost"], run


def test_every_failing_check_is_reported_and_passing_or_skipped_ones_are_not(tmp_path):
    result, _run = play(tmp_path, [
        {"that": "size is match('^[0-9]+[KMGT]?$')", "msg": "size must be like 500M, got {{ size }}"},
        {"that": ["count | int >= 1", "count | int <= 9"], "msg": "count must be 1 to 9, got {{ count }}"},
        {"that": "count | int >= 2", "when": "compress", "msg": "compress needs count >= 2"},
        {"that": "false", "when": ["not compress"], "msg": "{{ only_defined_on_failure }}"},
        {"that": "port | int > 0", "msg": "port must be positive"},
    ], {"size": "lots", "count": 0, "compress": True, "port": 80})
    assert result["failed"] is True
    assert result["failures"] == ["size must be like 500M, got lots", "count must be 1 to 9, got 0",
                                  "compress needs count >= 2"]
    assert result["msg"] == "\n".join(result["failures"])
    assert result["checked"] == 4  # the fourth check's when did not hold; its message was never templated
    assert result["changed"] is False


def test_a_good_configuration_passes(tmp_path):
    result, _run = play(tmp_path, [
        {"that": "size is match('^[0-9]+[KMGT]?$')", "msg": "size must be like 500M, got {{ size }}"},
        {"that": "count | int >= 2", "when": "compress", "msg": "compress needs count >= 2"},
    ], {"size": "500M", "count": 1, "compress": False})
    assert not result.get("failed")
    assert result["failures"] == [] and result["checked"] == 1


def test_a_malformed_check_fails_the_task_naming_it(tmp_path):
    result, _run = play(tmp_path, [{"that": "true", "msg": "m", "unless": "x"}], {})
    assert result["failed"] is True
    assert "checks[0] has unknown keys ['unless']" in result["msg"]
