# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure parsers of nvidia-smi output (-q -x and --query-* --format=csv) and a per-GPU health verdict.

Runs on managed hosts: Python 3.9+ standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import xml.etree.ElementTree as ET

HEALTHY = "healthy"
DEGRADED = "degraded"
UNHEALTHY = "unhealthy"
ABSENT = "absent"
_RANK = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}

# The --query-gpu fields gpu_facts asks for in CSV mode (all valid on the 580 driver captures).
QUERY_GPU_FIELDS = (
    "index", "uuid", "name", "pci.bus_id", "driver_version", "memory.total", "memory.used", "memory.free",
    "utilization.gpu", "utilization.memory", "temperature.gpu", "power.draw", "power.limit",
    "clocks.current.sm", "ecc.errors.uncorrected.volatile.total", "ecc.errors.corrected.volatile.total",
    "retired_pages.pending", "persistence_mode", "compute_mode", "pstate", "clocks_event_reasons.active",
)
QUERY_COMPUTE_APPS_FIELDS = ("pid", "process_name", "used_gpu_memory", "gpu_uuid")

# XIDs (NVIDIA's "Xid Errors" catalogue) that mean the GPU itself, its memory, its link or its firmware failed:
# drain the host, then reset or replace the GPU. Any other XID is most often the application's fault (13 graphics
# engine exception, 31 memory page fault, 43 stopped processing, 45 preemptive cleanup): worth a look, not a drain.
XID_HARDWARE = {
    48: "double-bit ECC error", 61: "internal micro-controller breakpoint", 62: "internal micro-controller halt",
    63: "ECC page retirement or row remapping recorded", 64: "ECC page retirement or row remapping failed",
    74: "NVLink error", 79: "GPU has fallen off the bus", 92: "high single-bit ECC error rate",
    94: "contained ECC error", 95: "uncontained ECC error", 119: "GSP RPC timeout", 120: "GSP error",
    140: "unrecovered ECC error",
}

# clocks_event_reasons.active bits: 0x20 SW thermal slowdown, 0x40 HW thermal slowdown.
_THERMAL_SLOWDOWN_MASK = 0x20 | 0x40
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")
_UNAVAILABLE = ("", "n/a", "[n/a]", "not supported", "[not supported]", "unknown error", "[unknown error]",
                "requested functionality has been deprecated", "none")


def _text(value):
    if value is None:
        return None
    value = value.strip()
    return None if value.lower() in _UNAVAILABLE else value


def parse_number(value):
    """'81559 MiB' -> 81559, '88.94 W' -> 88.94, '0 %' -> 0, 'N/A' / '[N/A]' -> None."""
    value = _text(value)
    if value is None:
        return None
    match = _NUMBER.match(value)
    if not match:
        return None
    number = match.group(1)
    return float(number) if "." in number else int(number)


def parse_bool(value):
    """'Yes'/'Enabled'/'Active' -> True, 'No'/'Disabled'/'Not Active' -> False, N/A -> None."""
    value = _text(value)
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("yes", "enabled", "active", "true"):
        return True
    if lowered in ("no", "disabled", "not active", "false"):
        return False
    return None


def _find(node, path):
    found = node.find(path) if node is not None else None
    return found.text if found is not None else None


def _first(node, *paths):
    for path in paths:
        value = _find(node, path)
        if _text(value) is not None:
            return value
    return None


def _ecc_counts(node):
    """(uncorrectable, correctable) totals of an ecc_errors/volatile or /aggregate element.

    Driver 525+ lists sram_/dram_ counters; older drivers nest single_bit/double_bit with a total.
    None where ECC reports N/A (ECC off or unsupported).
    """
    if node is None:
        return None, None
    uncorrectable = correctable = None
    for child in node:
        if child.tag in ("single_bit", "double_bit"):
            value = parse_number(_find(child, "total"))
            is_uncorrectable = child.tag == "double_bit"
        elif child.tag.endswith("correctable") or "uncorrectable" in child.tag:
            value = parse_number(child.text)
            is_uncorrectable = "uncorrectable" in child.tag
        else:
            continue
        if value is None:
            continue
        if is_uncorrectable:
            uncorrectable = (uncorrectable or 0) + value
        else:
            correctable = (correctable or 0) + value
    return uncorrectable, correctable


def _link_width(value):
    return parse_number((value or "").replace("x", ""))


def _xml_processes(gpu):
    processes = []
    for info in gpu.findall("processes/process_info"):
        processes.append({
            "pid": parse_number(_find(info, "pid")),
            "name": _text(_find(info, "process_name")),
            "type": _text(_find(info, "type")),
            "used_memory_mib": parse_number(_find(info, "used_memory")),
        })
    return processes


def _xml_gpu(index, gpu):
    ecc_volatile_unc, ecc_volatile_corr = _ecc_counts(gpu.find("ecc_errors/volatile"))
    ecc_aggregate_unc, _unused = _ecc_counts(gpu.find("ecc_errors/aggregate"))
    reasons = gpu.find("clocks_event_reasons")
    if reasons is None:
        reasons = gpu.find("clocks_throttle_reasons")  # drivers before 535
    thermal = None
    if reasons is not None:
        thermal = any(parse_bool(child.text) for child in reasons if child.tag.endswith("thermal_slowdown"))
    power = gpu.find("gpu_power_readings")
    if power is None:
        power = gpu.find("power_readings")  # drivers before 530
    return {
        "index": index,
        "uuid": _text(_find(gpu, "uuid")),
        "name": _text(_find(gpu, "product_name")),
        "pci_bus_id": gpu.get("id") or _text(_find(gpu, "pci/pci_bus_id")),
        "serial": _text(_find(gpu, "serial")),
        "minor_number": parse_number(_find(gpu, "minor_number")),
        "persistence_mode": _text(_find(gpu, "persistence_mode")),
        "compute_mode": _text(_find(gpu, "compute_mode")),
        "mig_mode": _text(_find(gpu, "mig_mode/current_mig")),
        "performance_state": _text(_find(gpu, "performance_state")),
        "memory_total_mib": parse_number(_find(gpu, "fb_memory_usage/total")),
        "memory_used_mib": parse_number(_find(gpu, "fb_memory_usage/used")),
        "memory_free_mib": parse_number(_find(gpu, "fb_memory_usage/free")),
        "memory_reserved_mib": parse_number(_find(gpu, "fb_memory_usage/reserved")),
        "utilization_gpu_pct": parse_number(_find(gpu, "utilization/gpu_util")),
        "utilization_memory_pct": parse_number(_find(gpu, "utilization/memory_util")),
        "temperature_c": parse_number(_find(gpu, "temperature/gpu_temp")),
        "memory_temperature_c": parse_number(_find(gpu, "temperature/memory_temp")),
        "power_draw_w": parse_number(_first(power, "average_power_draw", "power_draw", "instant_power_draw")),
        "power_instant_w": parse_number(_find(power, "instant_power_draw")),
        "power_limit_w": parse_number(_first(power, "current_power_limit", "power_limit")),
        "ecc_mode": _text(_find(gpu, "ecc_mode/current_ecc")),
        "ecc_volatile_uncorrected": ecc_volatile_unc,
        "ecc_volatile_corrected": ecc_volatile_corr,
        "ecc_aggregate_uncorrected": ecc_aggregate_unc,
        "retired_pages_pending": parse_bool(_first(gpu, "retired_pages/pending_retirement",
                                                   "retired_pages/pending_blacklist")),
        "remapped_rows_pending": parse_bool(_find(gpu, "remapped_rows/remapped_row_pending")),
        "remapped_rows_failure": parse_bool(_find(gpu, "remapped_rows/remapped_row_failure")),
        "remapped_rows_uncorrectable": parse_number(_find(gpu, "remapped_rows/remapped_row_unc")),
        "recovery_action": _text(_find(gpu, "gpu_recovery_action")),
        "thermal_slowdown": thermal,
        "pcie_link_width_current": _link_width(_find(gpu, "pci/pci_gpu_link_info/link_widths/current_link_width")),
        "pcie_link_width_max": _link_width(_find(gpu, "pci/pci_gpu_link_info/link_widths/max_link_width")),
        "processes": _xml_processes(gpu),
    }


def parse_xml(text):
    """Parse `nvidia-smi -q -x` into {timestamp, driver_version, cuda_version, attached_gpus, gpus}.

    GPUs keep the order nvidia-smi lists them in, which is nvidia-smi's index order.
    """
    root = ET.fromstring(text)  # noqa: S314 - local nvidia-smi output; expat does not fetch the DTD
    return {
        "timestamp": _text(_find(root, "timestamp")),
        "driver_version": _text(_find(root, "driver_version")),
        "cuda_version": _text(_find(root, "cuda_version")),
        "attached_gpus": parse_number(_find(root, "attached_gpus")),
        "gpus": [_xml_gpu(index, gpu) for index, gpu in enumerate(root.findall("gpu"))],
    }


def _split_csv_line(line):
    return [field.strip() for field in line.split(",")]


def _field_name(header):
    # "memory.total [MiB]" -> "memory.total"
    return header.split(" [", 1)[0].strip()


def parse_csv(text, fields=None):
    """Parse `--format=csv` output (with or without header, units or not) into a list of dicts.

    Without a header, pass the queried field names. Keys are the query names ("memory.total").
    Reading stops at the first line whose field count differs from the header's, so that output
    followed by other text (a capture of several commands) yields only the first table.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if fields is None:
        if not lines:
            return []
        fields = [_field_name(name) for name in _split_csv_line(lines[0])]
        lines = lines[1:]
    rows = []
    for line in lines:
        values = _split_csv_line(line)
        if len(values) != len(fields):
            break
        rows.append(dict(zip(fields, values)))  # noqa: B905 - lengths checked above; strict= needs 3.10
    return rows


def parse_compute_apps_csv(text, fields=None):
    """Parse `--query-compute-apps=pid,process_name,used_gpu_memory,gpu_uuid --format=csv`."""
    processes = []
    for row in parse_csv(text, fields):
        processes.append({
            "pid": parse_number(row.get("pid")),
            "name": _text(row.get("process_name")),
            "type": "C",
            "used_memory_mib": parse_number(row.get("used_gpu_memory")),
            "gpu_uuid": _text(row.get("gpu_uuid")),
        })
    return processes


def _hex(value):
    value = _text(value)
    try:
        return int(value, 16) if value else None
    except ValueError:
        return None


def gpu_from_query_row(row):
    """Shape one --query-gpu row like parse_xml() does; facts the CSV lacks are None."""
    reasons = _hex(row.get("clocks_event_reasons.active", row.get("clocks_throttle_reasons.active")))
    return {
        "index": parse_number(row.get("index")),
        "uuid": _text(row.get("uuid")),
        "name": _text(row.get("name")),
        "pci_bus_id": _text(row.get("pci.bus_id")),
        "serial": _text(row.get("serial")),
        "minor_number": None,
        "persistence_mode": _text(row.get("persistence_mode")),
        "compute_mode": _text(row.get("compute_mode")),
        "mig_mode": _text(row.get("mig.mode.current")),
        "performance_state": _text(row.get("pstate")),
        "memory_total_mib": parse_number(row.get("memory.total")),
        "memory_used_mib": parse_number(row.get("memory.used")),
        "memory_free_mib": parse_number(row.get("memory.free")),
        "memory_reserved_mib": parse_number(row.get("memory.reserved")),
        "utilization_gpu_pct": parse_number(row.get("utilization.gpu")),
        "utilization_memory_pct": parse_number(row.get("utilization.memory")),
        "temperature_c": parse_number(row.get("temperature.gpu")),
        "memory_temperature_c": parse_number(row.get("temperature.memory")),
        "power_draw_w": parse_number(row.get("power.draw")),
        "power_instant_w": parse_number(row.get("power.draw.instant")),
        "power_limit_w": parse_number(row.get("power.limit")),
        "ecc_mode": _text(row.get("ecc.mode.current")),
        "ecc_volatile_uncorrected": parse_number(row.get("ecc.errors.uncorrected.volatile.total")),
        "ecc_volatile_corrected": parse_number(row.get("ecc.errors.corrected.volatile.total")),
        "ecc_aggregate_uncorrected": parse_number(row.get("ecc.errors.uncorrected.aggregate.total")),
        "retired_pages_pending": parse_bool(row.get("retired_pages.pending")),
        "remapped_rows_pending": parse_bool(row.get("remapped_rows.pending")),
        "remapped_rows_failure": parse_bool(row.get("remapped_rows.failure")),
        "remapped_rows_uncorrectable": parse_number(row.get("remapped_rows.uncorrectable")),
        "recovery_action": None,
        "thermal_slowdown": None if reasons is None else bool(reasons & _THERMAL_SLOWDOWN_MASK),
        "pcie_link_width_current": parse_number(row.get("pcie.link.width.current")),
        "pcie_link_width_max": parse_number(row.get("pcie.link.width.max")),
        "processes": [],
    }


def attach_processes(gpus, processes):
    """Give each GPU the compute processes whose gpu_uuid is its uuid."""
    for gpu in gpus:
        gpu["processes"] = [dict((k, v) for k, v in proc.items() if k != "gpu_uuid")
                            for proc in processes if proc.get("gpu_uuid") == gpu["uuid"]]
    return gpus


def assess_xids(xids):
    """({xid: count} as the kernel logged them) -> (unhealthy reasons, degraded reasons); XID_HARDWARE says which."""
    unhealthy, degraded = [], []
    for xid in sorted(xids or {}, key=int):
        count = xids[xid]
        what = XID_HARDWARE.get(int(xid))
        if what:
            unhealthy.append("XID {0} ({1}) logged {2} times since boot".format(xid, what, count))
        else:
            degraded.append("XID {0} logged {1} times since boot (most often the application's fault)".format(
                xid, count))
    return unhealthy, degraded


def assess_gpu(gpu, temperature_threshold_c=85, memory_temperature_threshold_c=95):
    """Return (health, reasons) for one GPU.

    unhealthy: uncorrectable ECC errors since the driver loaded, a pending or failed row remap,
    pending page retirement, a recovery action the driver asks for, or a hardware XID in the kernel log
    (``gpu["xids"]``, {xid: count}, where the caller read it): the GPU needs a reset,
    a drain or a replacement, and work placed on it may fail.
    degraded: hot, thermally throttled, a PCIe link narrower than the slot, or an application XID.
    """
    unhealthy, degraded = assess_xids(gpu.get("xids"))
    if gpu.get("ecc_volatile_uncorrected"):
        unhealthy.append("{0} uncorrectable ECC errors since the driver loaded".format(
            gpu["ecc_volatile_uncorrected"]))
    if gpu.get("remapped_rows_failure"):
        unhealthy.append("row remapping failed: the GPU needs replacing")
    if gpu.get("remapped_rows_pending"):
        unhealthy.append("row remapping pending: reset the GPU")
    if gpu.get("retired_pages_pending"):
        unhealthy.append("page retirement pending: reset the GPU")
    if gpu.get("recovery_action"):
        unhealthy.append("the driver asks for recovery action: {0}".format(gpu["recovery_action"]))
    temperature = gpu.get("temperature_c")
    if temperature is not None and temperature >= temperature_threshold_c:
        degraded.append("GPU temperature {0} C >= {1} C".format(temperature, temperature_threshold_c))
    memory_temperature = gpu.get("memory_temperature_c")
    if memory_temperature is not None and memory_temperature >= memory_temperature_threshold_c:
        degraded.append("memory temperature {0} C >= {1} C".format(
            memory_temperature, memory_temperature_threshold_c))
    if gpu.get("thermal_slowdown"):
        degraded.append("clocks are thermally slowed down")
    current, widest = gpu.get("pcie_link_width_current"), gpu.get("pcie_link_width_max")
    if current and widest and current < widest:
        degraded.append("PCIe link x{0} of x{1}".format(current, widest))
    if unhealthy:
        return UNHEALTHY, unhealthy + degraded
    if degraded:
        return DEGRADED, degraded
    return HEALTHY, []


def overall_health(gpus):
    """Worst per-GPU health; 'absent' where there are no GPUs."""
    if not gpus:
        return ABSENT
    return max((gpu["health"] for gpu in gpus), key=lambda health: _RANK[health])


# gpu_facts' defaults; container_diagnosis (gpu_facts=true) uses the same.
GPU_FACTS_DEFAULTS = {"source": "xml", "nvidia_smi_path": None, "temperature_threshold_c": 85,
                      "memory_temperature_threshold_c": 95}


class GpuFacts:
    """Runs nvidia-smi once (twice for CSV) and shapes its output, through ``module`` (run_command,
    get_bin_path): used by the gpu_facts module, and by container_diagnosis (gpu_facts=true) in its one call.
    ``params``: source, nvidia_smi_path, temperature_threshold_c, memory_temperature_threshold_c."""

    def __init__(self, module, params):
        self.module = module
        self.params = params

    def run(self):
        path = self.params["nvidia_smi_path"] or self.module.get_bin_path("nvidia-smi")
        facts = {
            "gpu_count": 0, "gpus": [], "health": ABSENT, "reasons": [], "driver_version": None,
            "cuda_version": None, "nvidia_smi": {"path": path, "present": bool(path), "rc": None, "error": None},
        }
        if not path:
            return facts
        try:
            if self.params["source"] == "xml":
                parsed = self._from_xml(path)
            else:
                parsed = self._from_csv(path)
        except NvidiaSmiError as exc:
            facts["nvidia_smi"].update(rc=exc.rc, error=exc.message)
            facts["health"] = UNHEALTHY
            facts["reasons"] = ["nvidia-smi failed: {0}".format(exc.message)]
            return facts
        facts["nvidia_smi"]["rc"] = 0
        for gpu in parsed["gpus"]:
            gpu["health"], gpu["reasons"] = assess_gpu(
                gpu, self.params["temperature_threshold_c"], self.params["memory_temperature_threshold_c"])
        facts.update(
            gpus=parsed["gpus"], gpu_count=len(parsed["gpus"]), health=overall_health(parsed["gpus"]),
            driver_version=parsed["driver_version"], cuda_version=parsed["cuda_version"])
        return facts

    def _run(self, argv):
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            raise NvidiaSmiError(rc, (err or out).strip() or "exit status {0}".format(rc))
        return out

    def _from_xml(self, path):
        out = self._run([path, "-q", "-x"])
        try:
            return parse_xml(out)
        except Exception as exc:  # ElementTree.ParseError and friends
            raise NvidiaSmiError(0, "unreadable XML: {0}".format(exc)) from exc

    def _from_csv(self, path):
        out = self._run([path, "--query-gpu=" + ",".join(QUERY_GPU_FIELDS), "--format=csv"])
        rows = parse_csv(out)
        gpus = [gpu_from_query_row(row) for row in rows]
        apps = self._run([path, "--query-compute-apps=" + ",".join(QUERY_COMPUTE_APPS_FIELDS), "--format=csv"])
        attach_processes(gpus, parse_compute_apps_csv(apps))
        driver = rows[0].get("driver_version") if rows else None
        return {"gpus": gpus, "driver_version": driver, "cuda_version": None}


class NvidiaSmiError(Exception):
    def __init__(self, rc, message):
        super(NvidiaSmiError, self).__init__(message)
        self.rc = rc
        self.message = message
