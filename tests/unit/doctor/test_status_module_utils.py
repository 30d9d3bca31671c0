"""Pure shaping of fleet_status (plugins/module_utils/_fleet_status.py), on output recorded from lab hosts:
systemd 252, docker 20.10, Ray 2.60's state API (tests/fixtures/status/, docker inspect from tests/fixtures/diagnosis/).
"""

import json
import subprocess
from pathlib import Path

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _fleet_status as shape
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _worker_state as worker_state
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
    assert worker_state.restarts_exhausted(props) is exhausted


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
    summary = worker_state.container_summary(inspected, now=4102444800.0)
    assert summary["running"] is running
    assert "Env" not in json.dumps(summary)
    if code is None:
        assert summary["exit"] is None and summary["uptime_s"] > 0
    else:
        assert summary["exit"]["code"] == code and words in summary["exit"]["meaning"]
    assert worker_state.container_summary(None, 0)["status"] == "missing"


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


H100 = FIXTURES_DIR / "gpu-h100"
# Hand-built (tests/fixtures/monitoring/README.md): no XID was captured on the H100. Its PCI 0000:00:06 is the H100's
# bus (00000000:00:06.0 in query-gpu.csv); 0000:c1:00 is a GPU nvidia-smi does not list.
KERNEL_XID = FIXTURES_DIR / "monitoring" / "kernel-xid.txt"


def _h100():
    from ansible_collections.fleetwarden.fleet.plugins.module_utils._nvidia_smi import gpu_from_query_row, parse_csv

    return [gpu_from_query_row(row) for row in parse_csv((H100 / "query-gpu.csv").read_text())]


def test_gpu_rows_of_a_healthy_h100_keep_their_ecc_and_retired_pages_evidence():
    [row] = shape.gpu_rows(_h100(), {})
    assert (row["index"], row["name"], row["health"], row["reasons"], row["xids"]) == (
        0, "NVIDIA H100 80GB HBM3", "healthy", [], {})
    assert (row["ecc_volatile_uncorrected"], row["retired_pages_pending"], row["memory_total_mib"]) == (0, None, 81559)


def test_gpu_rows_with_the_kernels_xids_mark_the_gpu_and_a_gpu_gone_from_nvidia_smi():
    from ansible_collections.fleetwarden.fleet.plugins.module_utils._fleet_metrics import (
        count_xids,
        parse_xid_events,
    )

    gpus = _h100()
    rows = shape.gpu_rows(gpus, count_xids(None, parse_xid_events(KERNEL_XID.read_text()), gpus))
    h100, gone = rows
    assert h100["health"] == "unhealthy" and h100["xids"] == {"48": 1, "79": 2}
    assert h100["reasons"] == ["XID 48 (double-bit ECC error) logged 1 times since boot",
                               "XID 79 (GPU has fallen off the bus) logged 2 times since boot"]
    assert (gone["index"], gone["pci_bus_id"], gone["xids"], gone["health"]) == (None, "c1:00", {"13": 1}, "degraded")
    assert "not listed by nvidia-smi" in gone["name"] and "application" in gone["reasons"][0]


def test_gpu_rows_add_ecc_and_xid_reasons_together():
    gpus = _h100()
    gpus[0]["ecc_volatile_uncorrected"] = 2
    gpus[0]["retired_pages_pending"] = True
    [row] = shape.gpu_rows(gpus, {"0|94": 1})
    assert row["health"] == "unhealthy"
    assert row["reasons"] == ["XID 94 (contained ECC error) logged 1 times since boot",
                              "2 uncorrectable ECC errors since the driver loaded",
                              "page retirement pending: reset the GPU"]


class _FakeModule:
    """What FleetStatus._gpus asks of AnsibleModule: nvidia-smi's path and the output of each command."""

    def __init__(self, outputs):
        self.outputs = outputs
        self.params = {"docker_cli": "docker"}

    def get_bin_path(self, name, required=False):
        return f"/usr/bin/{name}" if name in self.outputs else None

    def run_command(self, argv, environ_update=None):
        return self.outputs[argv[0].rsplit("/", 1)[-1]]


def test_fleet_status_reads_xids_from_the_kernel_log_where_nvidia_smi_exists():
    from ansible_collections.fleetwarden.fleet.plugins.modules.fleet_status import FleetStatus

    status = FleetStatus(_FakeModule({"nvidia-smi": (0, (H100 / "query-gpu.csv").read_text(), ""),
                                      "journalctl": (0, KERNEL_XID.read_text(), "")}))
    rows = status._gpus()
    assert [(r["index"], r["health"]) for r in rows] == [(0, "unhealthy"), (None, "degraded")] and not status.errors
    # nvidia-smi cannot see the GPU any more (fallen off the bus): the error and the kernel's XIDs both show.
    status = FleetStatus(_FakeModule({"nvidia-smi": (15, "Unable to determine the device handle for GPU0000:00:06.0",
                                                     ""), "journalctl": (0, KERNEL_XID.read_text(), "")}))
    rows = status._gpus()
    assert "device handle" in rows[0]["error"] and {r["pci_bus_id"] for r in rows[1:]} == {"00:06", "c1:00"}
    # An unreadable kernel log is an error of the round, not a healthy verdict on XIDs.
    status = FleetStatus(_FakeModule({"nvidia-smi": (0, (H100 / "query-gpu.csv").read_text(), ""),
                                      "journalctl": (1, "", "Failed to get journal access")}))
    assert [r["health"] for r in status._gpus()] == ["healthy"]
    assert status.errors == ["cannot read the kernel log for XIDs: Failed to get journal access"]
    assert FleetStatus(_FakeModule({}))._gpus() is None
