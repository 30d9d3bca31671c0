"""Pure shaping of fleet_status (plugins/module_utils/_fleet_status.py), on output recorded from lab hosts:
systemd 252, docker 20.10, Ray 2.60's state API (tests/fixtures/status/, docker inspect from tests/fixtures/diagnosis/).
"""

import json
import subprocess
from pathlib import Path

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _fleet_status as shape
from ansible_collections.fleetwarden.fleet.plugins.module_utils._systemd import parse_systemctl_show_units

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures"

STATUS = FIXTURES_DIR / "status"


def test_systemctl_show_blocks_become_one_dict_per_unit():
    units = parse_systemctl_show_units((STATUS / "systemctl-show-units.txt").read_text())
    assert sorted(units) == ["fleetwarden-probe-ray-worker.service", "fleetwarden-worker-nonexistent.service",
                             "fleetwarden-worker-ray-worker.service"]
    worker = units["fleetwarden-worker-ray-worker.service"]
    assert (worker["ActiveState"], worker["StartLimitBurst"]) == ("active", "61")
    assert units["fleetwarden-worker-nonexistent.service"]["LoadState"] == "not-found"


def test_unit_summary_ages_the_last_state_change_from_the_monotonic_clock():
    props = parse_systemctl_show_units((STATUS / "systemctl-show-units.txt").read_text())
    summary = shape.unit_summary(props["fleetwarden-worker-ray-worker.service"], uptime_s=645.2455)
    assert summary["since_s"] == pytest.approx(100.0, abs=0.1)
    assert (summary["active"], summary["restarts"], summary["main_code"], summary["restarts_exhausted"]) == \
        ("active", 0, None, False)
    assert shape.unit_summary({}, 10)["active"] == "unknown"


@pytest.mark.parametrize(("props", "exhausted"), [
    # systemd 252 after an automatic restart hits the limit: Result stays the last exit's.
    ({"ActiveState": "failed", "Result": "exit-code", "NRestarts": "4", "StartLimitBurst": "5"}, True),
    ({"ActiveState": "failed", "Result": "start-limit-hit", "NRestarts": "0", "StartLimitBurst": "5"}, True),
    ({"ActiveState": "failed", "Result": "exit-code", "NRestarts": "1", "StartLimitBurst": "11"}, False),
    ({"ActiveState": "activating", "Result": "exit-code", "NRestarts": "10", "StartLimitBurst": "11"}, False),
])
def test_restarts_exhausted(props, exhausted):
    assert shape.restarts_exhausted(props) is exhausted


def test_restarts_are_counted_per_unit_inside_the_window():
    lines = (STATUS / "journal-restart-scheduled.jsonl").read_text()
    stamps = sorted(int(json.loads(line)["__REALTIME_TIMESTAMP"]) / 1e6 for line in lines.splitlines())
    unit = "fleetwarden-worker-ray-worker.service"
    assert shape.restarts_by_unit(lines, [unit, "other.service"], stamps[0] - 1) == {unit: 3, "other.service": 0}
    assert shape.restarts_by_unit(lines, [unit], stamps[-1] - 0.5) == {unit: 1}
    assert shape.restarts_by_unit("not json\n", [unit], 0) == {unit: 0}


@pytest.mark.parametrize(("fixture", "running", "code", "words"), [
    ("diagnosis/recorded/inspect-oom.json", False, 137, "OOM killer"),
    ("diagnosis/recorded/inspect-127.json", False, 127, "not found"),
    ("diagnosis/inspect-running.json", True, None, None),
])
def test_container_summary_from_docker_inspect(fixture, running, code, words):
    inspected = json.loads((FIXTURES_DIR / fixture).read_text())
    inspected = inspected[0] if isinstance(inspected, list) else inspected
    summary = shape.container_summary(inspected, now=4102444800.0)
    assert summary["running"] is running
    assert "Env" not in json.dumps(summary)
    if code is None:
        assert summary["exit"] is None and summary["uptime_s"] > 0
    else:
        assert summary["exit"]["code"] == code and words in summary["exit"]["meaning"]
    assert shape.container_summary(None, 0)["status"] == "missing"


def test_ray_nodes_from_the_state_api():
    nodes = shape.ray_nodes(json.loads((STATUS / "ray-api-v0-nodes.json").read_text()))
    assert {n["state"] for n in nodes} <= {"ALIVE", "DEAD"}
    assert sum(n["is_head"] for n in nodes) == 1
    assert all(n["ip"].count(".") == 3 for n in nodes)
    with pytest.raises(ValueError, match="without a result"):
        shape.ray_nodes({"result": False, "msg": "boom"})


def test_dashboard_port_from_the_head_command():
    assert shape.dashboard_port(["ray", "start", "--head", "--dashboard-port=8300"]) == 8300
    assert shape.dashboard_port(["ray", "start"]) == 8265


def test_authorized_keys_summary_has_the_fingerprint_ssh_keygen_prints_and_no_key_material(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "op@laptop", "-f", str(tmp_path / "k")],
                   check=True)
    public = (tmp_path / "k.pub").read_text()
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")], capture_output=True, text=True,
                            check=True).stdout.split()
    keys = shape.authorized_key_summary(public + "\n# comment\nssh-ed25519 notbase64!\n")
    assert keys[0] == {"line": 1, "fingerprint": listed[1], "type": "ed25519", "bits": 256, "comment": "op@laptop"}
    assert keys[1]["line"] == 4 and keys[1]["error"]
    assert public.split()[1] not in json.dumps(keys)
