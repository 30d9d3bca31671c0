"""Unit tests for plugins/module_utils/_nvidia_smi.py on real H100 captures (tests/fixtures/gpu-h100/).

The captures come from one H100 80GB HBM3 on driver 580.159.04 (CUDA 13.0); the asserted values are the
ones those files hold.
"""

import re
from pathlib import Path

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _nvidia_smi as smi

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "gpu-h100"
UUID = "GPU-da209364-6291-0e16-59d7-4167312d9bd0"


def fixture(name):
    return (FIXTURES / name).read_text()


def h100_xml(old=None, new=None):
    text = fixture("nvidia-smi-q.xml")
    if old is not None:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def test_parse_xml_reads_the_h100_capture():
    parsed = smi.parse_xml(h100_xml())
    assert parsed["timestamp"] == "Tue Nov 24 15:49:42 2026"
    assert parsed["driver_version"] == "580.159.04"
    assert parsed["cuda_version"] == "13.0"
    assert parsed["attached_gpus"] == 1
    (gpu,) = parsed["gpus"]
    assert gpu == {
        "index": 0,
        "uuid": UUID,
        "name": "NVIDIA H100 80GB HBM3",
        "pci_bus_id": "00000000:00:06.0",
        "serial": "1651024041836",
        "minor_number": 0,
        "persistence_mode": "Enabled",
        "compute_mode": "Default",
        "mig_mode": "Disabled",
        "performance_state": "P0",
        "memory_total_mib": 81559,
        "memory_used_mib": 0,
        "memory_free_mib": 81079,
        "memory_reserved_mib": 480,
        "utilization_gpu_pct": 0,
        "utilization_memory_pct": 0,
        "temperature_c": 35,
        "memory_temperature_c": 41,
        "power_draw_w": 97.37,  # average_power_draw
        "power_instant_w": 72.29,
        "power_limit_w": 700.0,
        "ecc_mode": "Enabled",
        "ecc_volatile_uncorrected": 0,
        "ecc_volatile_corrected": 0,
        "ecc_aggregate_uncorrected": 0,
        "retired_pages_pending": None,  # N/A: Hopper remaps rows instead of retiring pages
        "remapped_rows_pending": False,
        "remapped_rows_failure": False,
        "remapped_rows_uncorrectable": 0,
        "recovery_action": None,  # <gpu_recovery_action>None</gpu_recovery_action>
        "thermal_slowdown": False,
        "pcie_link_width_current": 16,
        "pcie_link_width_max": 16,
        "processes": [],
    }


def test_the_h100_capture_is_healthy():
    (gpu,) = smi.parse_xml(h100_xml())["gpus"]
    assert smi.assess_gpu(gpu) == (smi.HEALTHY, [])


def test_parse_xml_reads_processes():
    # The XML capture was taken idle; this block carries the busy capture's process (compute-apps-busy.csv:
    # pid 460, python3, 10758 MiB) in the schema nvidia-smi -q -x uses for it.
    busy = h100_xml("<processes>\n\t\t</processes>", (
        "<processes>\n\t\t\t<process_info>\n\t\t\t\t<gpu_instance_id>N/A</gpu_instance_id>\n"
        "\t\t\t\t<compute_instance_id>N/A</compute_instance_id>\n\t\t\t\t<pid>460</pid>\n"
        "\t\t\t\t<type>C</type>\n\t\t\t\t<process_name>python3</process_name>\n"
        "\t\t\t\t<used_memory>10758 MiB</used_memory>\n\t\t\t</process_info>\n\t\t</processes>"))
    (gpu,) = smi.parse_xml(busy)["gpus"]
    assert gpu["processes"] == [{"pid": 460, "name": "python3", "type": "C", "used_memory_mib": 10758}]


@pytest.mark.parametrize(("old", "new", "health", "reason"), [
    ("<dram_uncorrectable>0</dram_uncorrectable>", "<dram_uncorrectable>2</dram_uncorrectable>",
     smi.UNHEALTHY, "2 uncorrectable ECC errors since the driver loaded"),
    ("<sram_uncorrectable_secded>0</sram_uncorrectable_secded>",
     "<sram_uncorrectable_secded>1</sram_uncorrectable_secded>",
     smi.UNHEALTHY, "1 uncorrectable ECC errors since the driver loaded"),
    ("<remapped_row_pending>No</remapped_row_pending>", "<remapped_row_pending>Yes</remapped_row_pending>",
     smi.UNHEALTHY, "row remapping pending: reset the GPU"),
    ("<remapped_row_failure>No</remapped_row_failure>", "<remapped_row_failure>Yes</remapped_row_failure>",
     smi.UNHEALTHY, "row remapping failed: the GPU needs replacing"),
    ("<pending_retirement>N/A</pending_retirement>", "<pending_retirement>Yes</pending_retirement>",
     smi.UNHEALTHY, "page retirement pending: reset the GPU"),
    ("<gpu_recovery_action>None</gpu_recovery_action>", "<gpu_recovery_action>GPU Reset</gpu_recovery_action>",
     smi.UNHEALTHY, "the driver asks for recovery action: GPU Reset"),
    ("<gpu_temp>35 C</gpu_temp>", "<gpu_temp>88 C</gpu_temp>", smi.DEGRADED, "GPU temperature 88 C >= 85 C"),
    ("<memory_temp>41 C</memory_temp>", "<memory_temp>97 C</memory_temp>",
     smi.DEGRADED, "memory temperature 97 C >= 95 C"),
    ("<clocks_event_reason_hw_thermal_slowdown>Not Active</clocks_event_reason_hw_thermal_slowdown>",
     "<clocks_event_reason_hw_thermal_slowdown>Active</clocks_event_reason_hw_thermal_slowdown>",
     smi.DEGRADED, "clocks are thermally slowed down"),
    ("<current_link_width>16x</current_link_width>", "<current_link_width>8x</current_link_width>",
     smi.DEGRADED, "PCIe link x8 of x16"),
])
def test_health_verdict_on_altered_h100_capture(old, new, health, reason):
    (gpu,) = smi.parse_xml(h100_xml(old, new))["gpus"]
    verdict, reasons = smi.assess_gpu(gpu)
    assert verdict == health
    assert reason in reasons


def test_unhealthy_reasons_keep_degraded_ones_too():
    gpu = {"ecc_volatile_uncorrected": 3, "temperature_c": 90}
    assert smi.assess_gpu(gpu) == (smi.UNHEALTHY, ["3 uncorrectable ECC errors since the driver loaded",
                                                   "GPU temperature 90 C >= 85 C"])


def test_temperature_thresholds_are_parameters():
    (gpu,) = smi.parse_xml(h100_xml())["gpus"]
    assert smi.assess_gpu(gpu, temperature_threshold_c=35) == (smi.DEGRADED, ["GPU temperature 35 C >= 35 C"])
    assert smi.assess_gpu(gpu, memory_temperature_threshold_c=41) == (
        smi.DEGRADED, ["memory temperature 41 C >= 41 C"])


def test_parse_xml_reads_the_pre_525_ecc_and_power_schema():
    text = """<?xml version="1.0" ?>
<nvidia_smi_log><driver_version>470.223.02</driver_version><attached_gpus>1</attached_gpus>
<gpu id="00000000:00:04.0"><product_name>Tesla V100-SXM2-16GB</product_name><uuid>GPU-1</uuid>
<ecc_errors><volatile>
<single_bit><device_memory>4</device_memory><register_file>0</register_file><total>4</total></single_bit>
<double_bit><device_memory>1</device_memory><register_file>0</register_file><total>1</total></double_bit>
</volatile></ecc_errors>
<retired_pages><pending_retirement>Yes</pending_retirement></retired_pages>
<clocks_throttle_reasons><clocks_throttle_reason_sw_thermal_slowdown>Active</clocks_throttle_reason_sw_thermal_slowdown>
</clocks_throttle_reasons>
<power_readings><power_draw>61.21 W</power_draw><power_limit>300.00 W</power_limit></power_readings>
</gpu></nvidia_smi_log>"""
    (gpu,) = smi.parse_xml(text)["gpus"]
    assert (gpu["ecc_volatile_uncorrected"], gpu["ecc_volatile_corrected"]) == (1, 4)
    assert (gpu["power_draw_w"], gpu["power_limit_w"]) == (61.21, 300.0)
    assert gpu["retired_pages_pending"] is True
    assert gpu["thermal_slowdown"] is True
    assert smi.assess_gpu(gpu)[0] == smi.UNHEALTHY


def test_ecc_off_reads_as_unknown_not_zero():
    text = h100_xml()
    start, end = text.index("<volatile>"), text.index("</volatile>")
    volatile = re.sub(r">0<", ">N/A<", text[start:end])
    (gpu,) = smi.parse_xml(text[:start] + volatile + text[end:])["gpus"]
    assert (gpu["ecc_volatile_uncorrected"], gpu["ecc_volatile_corrected"]) == (None, None)
    assert gpu["ecc_aggregate_uncorrected"] == 0


def test_parse_csv_with_header_and_units():
    (row,) = smi.parse_csv(fixture("query-gpu.csv"))
    assert row["uuid"] == UUID
    assert row["memory.total"] == "81559 MiB"
    assert row["retired_pages.pending"] == "[N/A]"
    assert list(row)[:3] == ["index", "uuid", "name"]
    assert tuple(row) == smi.QUERY_GPU_FIELDS  # gpu_facts asks for exactly the captured fields


def test_gpu_from_query_row_on_the_h100_capture():
    (row,) = smi.parse_csv(fixture("query-gpu.csv"))
    gpu = smi.gpu_from_query_row(row)
    expected = {
        "index": 0, "uuid": UUID, "name": "NVIDIA H100 80GB HBM3", "pci_bus_id": "00000000:00:06.0",
        "memory_total_mib": 81559, "memory_used_mib": 0, "memory_free_mib": 81079,
        "utilization_gpu_pct": 0, "utilization_memory_pct": 0, "temperature_c": 35,
        "power_draw_w": 88.94, "power_limit_w": 700.0,
        "ecc_volatile_uncorrected": 0, "ecc_volatile_corrected": 0, "retired_pages_pending": None,
        "persistence_mode": "Enabled", "compute_mode": "Default", "performance_state": "P0",
        "thermal_slowdown": False,  # clocks_event_reasons.active 0x1: idle only
        "remapped_rows_pending": None, "recovery_action": None, "processes": [],
    }
    assert dict((key, gpu[key]) for key in expected) == expected
    assert smi.assess_gpu(gpu) == (smi.HEALTHY, [])


def test_parse_csv_without_header_needs_the_field_names():
    # The capture does not record its --query-gpu list; these names match its values against the headed
    # capture (uuid, 81559 MiB total, 35 C).
    fields = ["index", "uuid", "memory.used", "memory.total", "utilization.gpu", "temperature.gpu",
              "ecc.errors.uncorrected.volatile.total"]
    (row,) = smi.parse_csv(fixture("query-gpu-noheader.csv"), fields)
    gpu = smi.gpu_from_query_row(row)
    assert (gpu["index"], gpu["uuid"], gpu["memory_used_mib"], gpu["memory_total_mib"]) == (0, UUID, 0, 81559)
    assert (gpu["utilization_gpu_pct"], gpu["temperature_c"], gpu["ecc_volatile_uncorrected"]) == (0, 35, 0)


def test_parse_compute_apps_busy_capture_stops_at_the_next_table():
    # compute-apps-busy.csv holds three captures in a row: compute apps, a query-gpu subset, nvidia-smi.
    assert smi.parse_compute_apps_csv(fixture("compute-apps-busy.csv")) == [
        {"pid": 460, "name": "python3", "type": "C", "used_memory_mib": 10758, "gpu_uuid": UUID}]


def test_busy_capture_query_gpu_subset():
    lines = fixture("compute-apps-busy.csv").splitlines()
    (row,) = smi.parse_csv("\n".join(lines[2:4]))
    gpu = smi.gpu_from_query_row(row)
    assert (gpu["memory_used_mib"], gpu["memory_total_mib"], gpu["utilization_gpu_pct"]) == (10767, 81559, 0)


def test_parse_compute_apps_idle_capture_is_empty():
    assert smi.parse_compute_apps_csv(fixture("compute-apps-idle.csv")) == []


def test_attach_processes_by_uuid():
    gpus = [{"uuid": UUID, "processes": []}, {"uuid": "GPU-other", "processes": []}]
    smi.attach_processes(gpus, smi.parse_compute_apps_csv(fixture("compute-apps-busy.csv")))
    assert gpus[0]["processes"] == [{"pid": 460, "name": "python3", "type": "C", "used_memory_mib": 10758}]
    assert gpus[1]["processes"] == []


@pytest.mark.parametrize(("text", "expected"), [
    ("81559 MiB", 81559), ("88.94 W", 88.94), ("0 %", 0), ("35 C", 35), ("-8 C", -8), ("81559", 81559),
    ("N/A", None), ("[N/A]", None), ("[Not Supported]", None), ("Unknown Error", None), ("", None), (None, None),
    ("Requested functionality has been deprecated", None),
])
def test_parse_number(text, expected):
    assert smi.parse_number(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Yes", True), ("Enabled", True), ("Active", True), ("No", False), ("Disabled", False),
    ("Not Active", False), ("N/A", None), ("[N/A]", None), ("maybe", None),
])
def test_parse_bool(text, expected):
    assert smi.parse_bool(text) is expected


@pytest.mark.parametrize(("healths", "expected"), [
    ([], smi.ABSENT),
    ([smi.HEALTHY], smi.HEALTHY),
    ([smi.HEALTHY, smi.DEGRADED], smi.DEGRADED),
    ([smi.DEGRADED, smi.UNHEALTHY, smi.HEALTHY], smi.UNHEALTHY),
])
def test_overall_health_is_the_worst(healths, expected):
    assert smi.overall_health([{"health": health} for health in healths]) == expected
