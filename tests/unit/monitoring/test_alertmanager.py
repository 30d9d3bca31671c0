"""Alertmanager's configuration as fleetwarden.fleet.prometheus writes it (the alertmanager_config filter, with the
role's defaults and the sample inventory's receiver), checked by Debian's amtool: `amtool check-config` and
`amtool config routes test`."""

import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.fleetwarden.fleet.plugins.filter import monitoring

from fleetwarden.lab.inventory import MONITORING_PORTS

REPO = Path(__file__).resolve().parents[3]
DEFAULTS = yaml.safe_load((REPO / "roles" / "prometheus" / "defaults" / "main.yml").read_text())
SAMPLE = yaml.safe_load((REPO / "inventory" / "sample" / "group_vars" / "all" / "monitoring.yml").read_text())
RECOVERY_URL = "http://monitoring-1.internal:9097/v1/alertmanager"


def config(tmp_path, recovery_url, user_receiver):
    data = monitoring.alertmanager_config(
        recovery_url, DEFAULTS["prometheus_alertmanager_recovery_credentials_file"], user_receiver,
        DEFAULTS["prometheus_alertmanager_group_by"], DEFAULTS["prometheus_alertmanager_recovery_timing"],
        DEFAULTS["prometheus_alertmanager_user_timing"])
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def route(amtool, path, *labels):
    result = subprocess.run([amtool, "config", "routes", "test", f"--config.file={path}", *labels],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.mark.parametrize("recovery_url", [RECOVERY_URL, ""], ids=["recovery-receiver", "no-recovery-receiver"])
def test_amtool_accepts_the_config_and_routes_by_remediate(tmp_path, recovery_url, amtool):
    path = config(tmp_path, recovery_url, SAMPLE["prometheus_alertmanager_user_receiver"])
    check = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout and " - 2 receivers" in check.stdout
    assert route(amtool, path, "alertname=WorkerDown", "remediate=true", "fleet_host=h1", "worker=w1") == \
        "fleetwarden-recovery"
    assert route(amtool, path, "alertname=GPUXid", "remediate=false", "fleet_host=h1") == "fleet-users"
    assert route(amtool, path, "alertname=Other") == "fleet-users"


def test_the_recovery_webhook_reads_its_token_from_a_file_and_the_default_has_no_integration(tmp_path):
    with_url = yaml.safe_load(config(tmp_path, RECOVERY_URL, {}).read_text())
    recovery = with_url["receivers"][0]
    assert recovery["name"] == "fleetwarden-recovery"
    hook = recovery["webhook_configs"][0]
    assert hook["url"] == RECOVERY_URL
    assert hook["http_config"]["authorization"] == {
        "type": "Bearer", "credentials_file": DEFAULTS["prometheus_alertmanager_recovery_credentials_file"]}
    without = yaml.safe_load(config(tmp_path, "", {}).read_text())
    assert without["receivers"] == [{"name": "fleetwarden-recovery"}, {"name": "fleet-users"}]
    # healing, not paging: recovery hears at once and again while the alert lasts; people are grouped longer
    assert without["route"]["routes"][0]["group_wait"] == "0s"
    assert without["route"]["group_by"] == ["alertname", "fleet_host", "worker"]


def test_prometheus_targets_come_from_each_hosts_variables():
    hostvars = {"b": {"node_exporter_address": "10.0.0.2", "node_exporter_port": 9101},
                "a": {"ansible_host": "10.0.0.1"}, "c": {}}
    assert monitoring.prometheus_targets(["b", "a", "c"], hostvars) == [
        {"targets": ["10.0.0.1:9100"], "labels": {"fleet_host": "a"}},
        {"targets": ["10.0.0.2:9101"], "labels": {"fleet_host": "b"}},
        {"targets": ["c:9100"], "labels": {"fleet_host": "c"}}]


def test_the_lab_publishes_the_ports_the_role_listens_on():
    assert MONITORING_PORTS == {"prometheus": DEFAULTS["prometheus_port"],
                                "alertmanager": DEFAULTS["prometheus_alertmanager_port"]}
