# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters of the monitoring roles (fleetwarden.fleet.prometheus).

- ``fleetwarden.fleet.alertmanager_config``: Alertmanager's configuration as data. remediate="true" alerts go to
  fleetwarden's recovery receiver (a webhook with a bearer token read from a file), everything else to the users'
  receiver. An empty recovery URL leaves the recovery receiver without integrations: Alertmanager keeps those
  alerts (UI, ``amtool alert query``) and sends them nowhere.
- ``fleetwarden.fleet.prometheus_targets``: file_sd target groups, one per inventory host, labelled fleet_host.
- ``fleetwarden.fleet.alert_rules_timing``: the shipped alert rules (text) with ``for`` and ``keep_firing_for``
  replaced per alert name (prometheus_alert_rule_timing); the text as it is when there is nothing to replace.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import yaml
from ansible.errors import AnsibleFilterError

RECOVERY_RECEIVER = "fleetwarden-recovery"
USER_RECEIVER = "fleet-users"
REMEDIATE_MATCHER = 'remediate="true"'


def alertmanager_config(recovery_url, credentials_file, user_receiver=None, group_by=None, recovery_timing=None,
                        user_timing=None):
    recovery = {"name": RECOVERY_RECEIVER}
    if recovery_url:
        recovery["webhook_configs"] = [{
            "url": recovery_url, "send_resolved": True, "max_alerts": 50,
            "http_config": {"authorization": {"type": "Bearer", "credentials_file": credentials_file}},
        }]
    users = dict(user_receiver or {})
    users["name"] = USER_RECEIVER
    recovery_route = {"receiver": RECOVERY_RECEIVER, "matchers": [REMEDIATE_MATCHER]}
    recovery_route.update(recovery_timing or {})
    route = {"receiver": USER_RECEIVER, "group_by": list(group_by or ["alertname", "fleet_host", "worker"])}
    route.update(user_timing or {})
    route["routes"] = [recovery_route]
    return {"route": route, "receivers": [recovery, users]}


def prometheus_targets(hosts, hostvars, default_port=9100):
    """[{targets: [address:port], labels: {fleet_host: host}}] for each host, from its node_exporter_* variables."""
    groups = []
    for host in sorted(hosts):
        variables = hostvars[host]
        address = variables.get("node_exporter_address") or variables.get("ansible_host") or host
        port = variables.get("node_exporter_port") or default_port
        groups.append({"targets": ["%s:%s" % (address, port)], "labels": {"fleet_host": host}})
    return groups


RULE_TIMING_KEYS = ("for", "keep_firing_for")


def alert_rules_timing(text, overrides=None):
    """The rules file `text` with each named alert's `for` / `keep_firing_for` replaced by `overrides`
    ({alertname: {for: 10s, keep_firing_for: 1m}}; a rule of that name in any group, every one if several).
    An unknown alert name or key is an error naming it. No overrides: `text` unchanged (ending in a newline)."""
    if not overrides:
        return text if text.endswith("\n") else text + "\n"
    if not isinstance(overrides, dict):
        raise AnsibleFilterError("prometheus_alert_rule_timing: expected a dict of alert name -> timing, got %r"
                                 % (overrides,))
    data = yaml.safe_load(text)
    rules = [rule for group in data["groups"] for rule in group["rules"]]
    names = set(rule.get("alert") for rule in rules)
    for name, timing in overrides.items():
        if name not in names:
            raise AnsibleFilterError("prometheus_alert_rule_timing: no alert rule named %r (rules: %s)"
                                     % (name, ", ".join(sorted(n for n in names if n))))
        unknown = sorted(set(timing or {}) - set(RULE_TIMING_KEYS))
        if unknown or not isinstance(timing, dict):
            raise AnsibleFilterError("prometheus_alert_rule_timing.%s: only %s may be set, got %r"
                                     % (name, " and ".join(RULE_TIMING_KEYS), timing))
    for rule in rules:
        for key, value in (overrides.get(rule.get("alert")) or {}).items():
            # plain str: Ansible's own (tagged) strings are str subclasses, which yaml.safe_dump refuses
            rule[str(key)] = str(value)
    return ("# fleetwarden-alerts.yml of the fleetwarden.fleet.prometheus role, with prometheus_alert_rule_timing "
            "applied.\n" + yaml.safe_dump(data, sort_keys=False, width=120, default_flow_style=False))


class FilterModule:
    def filters(self):
        return {"alertmanager_config": alertmanager_config, "prometheus_targets": prometheus_targets,
                "alert_rules_timing": alert_rules_timing}
