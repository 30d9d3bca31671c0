"""Unit tests for the gpu_facts module: main() with run_command answering the real H100 captures."""

from pathlib import Path

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils._nvidia_smi import (
    QUERY_COMPUTE_APPS_FIELDS,
    QUERY_GPU_FIELDS,
)
from ansible_collections.fleetwarden.fleet.plugins.modules import gpu_facts

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "gpu-h100"
UUID = "GPU-da209364-6291-0e16-59d7-4167312d9bd0"
NVIDIA_SMI = "/usr/bin/nvidia-smi"
XML_CALL = [NVIDIA_SMI, "-q", "-x"]
QUERY_GPU_CALL = [NVIDIA_SMI, "--query-gpu=" + ",".join(QUERY_GPU_FIELDS), "--format=csv"]
COMPUTE_APPS_CALL = [NVIDIA_SMI, "--query-compute-apps=" + ",".join(QUERY_COMPUTE_APPS_FIELDS), "--format=csv"]
DRIVER_GONE = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the "
               "latest NVIDIA driver is installed and running.\n")


def fixture(name):
    return (FIXTURES / name).read_text()


@pytest.fixture
def run_module(run_main):
    def run(params, calls, found=NVIDIA_SMI, check_mode=False):
        """Run main(); calls is the expected [(argv, (rc, out, err))] in order."""
        calls = list(calls)

        def run_command(self, argv, **kwargs):
            expected, answer = calls.pop(0)
            assert argv == expected
            return answer

        result = run_main(gpu_facts, params, check_mode=check_mode, run_command=run_command,
                          get_bin_path=lambda self, name, required=False, opt_dirs=None:
                          found if name == "nvidia-smi" else None)
        assert calls == [], "run_command calls not made"
        return result
    return run


def test_host_without_nvidia_smi_has_no_gpus_and_does_not_fail(run_module):
    result = run_module({}, [], found=None)
    assert not result.get("failed")
    assert result["changed"] is False
    assert (result["gpu_count"], result["gpus"], result["health"]) == (0, [], "absent")
    assert result["nvidia_smi"] == {"path": None, "present": False, "rc": None, "error": None}
    assert result["ansible_facts"]["fleet_gpu"]["gpu_count"] == 0


def test_xml_source_on_the_h100_capture(run_module):
    result = run_module({}, [(XML_CALL, (0, fixture("nvidia-smi-q.xml"), ""))])
    assert (result["gpu_count"], result["health"], result["reasons"]) == (1, "healthy", [])
    assert (result["driver_version"], result["cuda_version"]) == ("580.159.04", "13.0")
    (gpu,) = result["gpus"]
    assert (gpu["uuid"], gpu["name"], gpu["pci_bus_id"]) == (UUID, "NVIDIA H100 80GB HBM3", "00000000:00:06.0")
    assert (gpu["memory_total_mib"], gpu["memory_used_mib"], gpu["memory_free_mib"]) == (81559, 0, 81079)
    assert (gpu["utilization_gpu_pct"], gpu["temperature_c"], gpu["power_draw_w"]) == (0, 35, 97.37)
    assert (gpu["ecc_volatile_uncorrected"], gpu["remapped_rows_pending"], gpu["retired_pages_pending"]) == (
        0, False, None)
    assert (gpu["health"], gpu["reasons"]) == ("healthy", [])
    facts = dict(result["ansible_facts"]["fleet_gpu"])
    assert facts == dict((key, result[key]) for key in facts)


def test_csv_source_on_the_h100_captures(run_module):
    busy = "\n".join(fixture("compute-apps-busy.csv").splitlines()[:2]) + "\n"  # the compute-apps capture alone
    result = run_module({"source": "csv"}, [
        (QUERY_GPU_CALL, (0, fixture("query-gpu.csv"), "")),
        (COMPUTE_APPS_CALL, (0, busy, "")),
    ])
    assert (result["gpu_count"], result["health"], result["driver_version"]) == (1, "healthy", "580.159.04")
    (gpu,) = result["gpus"]
    assert (gpu["uuid"], gpu["memory_total_mib"], gpu["memory_free_mib"], gpu["power_draw_w"]) == (
        UUID, 81559, 81079, 88.94)
    assert gpu["processes"] == [{"pid": 460, "name": "python3", "type": "C", "used_memory_mib": 10758}]


def test_csv_source_idle(run_module):
    result = run_module({"source": "csv"}, [
        (QUERY_GPU_CALL, (0, fixture("query-gpu.csv"), "")),
        (COMPUTE_APPS_CALL, (0, fixture("compute-apps-idle.csv"), "")),
    ])
    assert result["gpus"][0]["processes"] == []


def test_failing_nvidia_smi_is_unhealthy_not_failed(run_module):
    result = run_module({}, [(XML_CALL, (9, DRIVER_GONE, ""))])
    assert not result.get("failed")
    assert (result["gpu_count"], result["health"]) == (0, "unhealthy")
    assert result["nvidia_smi"]["rc"] == 9
    assert result["reasons"] == ["nvidia-smi failed: " + DRIVER_GONE.strip()]


def test_unreadable_xml_is_unhealthy(run_module):
    result = run_module({}, [(XML_CALL, (0, "<nvidia_smi_log><gpu>", ""))])
    assert result["health"] == "unhealthy"
    assert result["reasons"][0].startswith("nvidia-smi failed: unreadable XML")


def test_nvidia_smi_path_and_thresholds_are_used(run_module):
    path = "/opt/nvidia/bin/nvidia-smi"
    result = run_module({"nvidia_smi_path": path, "temperature_threshold_c": 30},
                        [([path, "-q", "-x"], (0, fixture("nvidia-smi-q.xml"), ""))])
    assert result["nvidia_smi"]["path"] == path
    assert result["health"] == "degraded"
    assert result["gpus"][0]["reasons"] == ["GPU temperature 35 C >= 30 C"]


def test_bad_source_is_rejected(run_module):
    result = run_module({"source": "text"}, [])
    assert result["failed"] is True
    assert "value of source must be one of: xml, csv" in result["msg"]


def test_check_mode_reads_the_same(run_module):
    calls = [(XML_CALL, (0, fixture("nvidia-smi-q.xml"), ""))]
    assert run_module({}, calls, check_mode=True) == run_module({}, calls)
