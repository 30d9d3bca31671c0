"""prometheus_alert_rule_timing (the alert_rules_timing filter): the shipped rules with `for` / `keep_firing_for`
replaced per alert name, everything else as shipped, still valid for `promtool check rules`; the lab's timing
names only rules that exist; bad input is an error naming the field."""

import subprocess

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.fleetwarden.fleet.plugins.filter import monitoring

from .test_alert_rules import REPO, RULES

LAB_MONITORING = REPO / "inventory" / "lab" / "group_vars" / "all" / "monitoring.yml"


def by_name(text):
    found = {}
    for group in yaml.safe_load(text)["groups"]:
        for rule in group["rules"]:
            found.setdefault(rule.get("alert"), []).append(rule)
    return found


def test_no_overrides_installs_the_shipped_text_unchanged():
    text = RULES.read_text()
    assert monitoring.alert_rules_timing(text, {}) == text
    assert monitoring.alert_rules_timing(text.rstrip("\n"), None) == text.rstrip("\n") + "\n"


def test_overrides_replace_only_the_named_timing(tmp_path, promtool):
    text = RULES.read_text()
    out = monitoring.alert_rules_timing(text, {"WorkerDown": {"for": "10s", "keep_firing_for": "30s"},
                                               "DiskAlmostFull": {"keep_firing_for": "1m"}})
    before, after = by_name(text), by_name(out)
    assert after["WorkerDown"][0]["for"] == "10s" and after["WorkerDown"][0]["keep_firing_for"] == "30s"
    # Both DiskAlmostFull rules (critical and warning) take the override.
    assert [r["keep_firing_for"] for r in after["DiskAlmostFull"]] == ["1m", "1m"]
    for name, rules in before.items():
        for old, new in zip(rules, after[name], strict=True):
            untouched = {k: v for k, v in old.items() if k not in ("for", "keep_firing_for") or name not in
                         ("WorkerDown", "DiskAlmostFull")}
            assert {k: new[k] for k in untouched} == untouched, name
    # Label and annotation templates are carried as text, and promtool accepts the result.
    assert "{{ $labels.fleet_host }}" in out
    path = tmp_path / "rules.yml"
    path.write_text(out)
    check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_lab_timing_names_rules_that_exist():
    lab = yaml.safe_load(LAB_MONITORING.read_text())["prometheus_alert_rule_timing"]
    out = by_name(monitoring.alert_rules_timing(RULES.read_text(), lab))
    for name, timing in lab.items():
        assert all(rule[key] == str(value) for rule in out[name] for key, value in timing.items())


def test_the_lab_holds_every_remediating_rule_30_s_after_its_fault_clears():
    """The lab's tests end quiet within a minute only if no remediating rule keeps its shipped hold."""
    lab = yaml.safe_load(LAB_MONITORING.read_text())["prometheus_alert_rule_timing"]
    held = {rule["alert"] for rules in by_name(RULES.read_text()).values() for rule in rules
            if rule.get("labels", {}).get("remediate") == "true" and "keep_firing_for" in rule}
    assert held and {name: lab.get(name, {}).get("keep_firing_for") for name in held} == dict.fromkeys(held, "30s")


class Tagged(str):
    """What Ansible passes a filter: its strings are str subclasses carrying their origin."""


def test_ansibles_own_strings_as_keys_and_values_install_a_timing_the_rule_did_not_have(tmp_path, promtool):
    # the second DiskAlmostFull rule (not remediating) ships without keep_firing_for
    assert any("keep_firing_for" not in rule for rule in by_name(RULES.read_text())["DiskAlmostFull"])
    text = monitoring.alert_rules_timing(RULES.read_text(),
                                         {Tagged("DiskAlmostFull"): {Tagged("keep_firing_for"): Tagged("30s")}})
    assert [rule["keep_firing_for"] for rule in by_name(text)["DiskAlmostFull"]] == ["30s", "30s"]
    rules = tmp_path / "rules.yml"
    rules.write_text(text)
    subprocess.run([promtool, "check", "rules", str(rules)], check=True, capture_output=True)


@pytest.mark.parametrize(("overrides", "named"), [
    ({"WorkerGone": {"for": "10s"}}, "'WorkerGone'"),
    ({"WorkerDown": {"fore": "10s"}}, "prometheus_alert_rule_timing.WorkerDown"),
    ({"WorkerDown": "10s"}, "prometheus_alert_rule_timing.WorkerDown"),
    (["WorkerDown"], "prometheus_alert_rule_timing"),
])
def test_bad_input_is_an_error_naming_the_field(overrides, named):
    with pytest.raises(AnsibleFilterError, match=named.replace(".", r"\.")):
        monitoring.alert_rules_timing(RULES.read_text(), overrides)
