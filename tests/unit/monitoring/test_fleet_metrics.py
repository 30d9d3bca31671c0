"""Unit tests for plugins/module_utils/_fleet_metrics.py: GPU samples from the real H100 captures
(tests/fixtures/gpu-h100/), and the parsers on real docker/systemd output (tests/fixtures/monitoring/)."""

import os
from pathlib import Path

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _fleet_metrics as fm
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _nvidia_smi as smi
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _worker_state as worker_state
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _worker_unit as wu
from ansible_collections.fleetwarden.fleet.plugins.module_utils._systemd import parse_systemctl_show_units

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
H100 = FIXTURES / "gpu-h100"
MON = FIXTURES / "monitoring"


def by_name(samples):
    out = {}
    for name, labels, value in samples:
        out.setdefault(name, []).append((labels, value))
    return out


def declaration(**worker):
    decl = wu.normalize(dict({"name": "trainer", "image": "img:1"}, **worker))
    return wu.declaration_document(decl, 252)


def test_gpu_samples_from_the_h100_xml_capture():
    gpus = smi.parse_xml((H100 / "nvidia-smi-q.xml").read_text())["gpus"]
    samples = by_name(fm.gpu_samples(gpus))
    assert samples["fleetwarden_gpu_info"] == [({"gpu": "0", "uuid": "GPU-da209364-6291-0e16-59d7-4167312d9bd0",
                                                 "model": "NVIDIA H100 80GB HBM3",
                                                 "pci_bus_id": "00000000:00:06.0"}, 1)]
    assert samples["fleetwarden_gpu_memory_total_bytes"] == [({"gpu": "0"}, 81559 * 1024 * 1024)]
    used = samples["fleetwarden_gpu_memory_used_bytes"][0][1]
    assert 0 <= used < 1024 * 1024 * 1024  # idle capture
    assert samples["fleetwarden_gpu_utilization_ratio"] == [({"gpu": "0"}, 0)]
    temperature = samples["fleetwarden_gpu_temperature_celsius"][0][1]
    assert 20 <= temperature <= 60
    assert 50 < samples["fleetwarden_gpu_power_watts"][0][1] < 700
    assert samples["fleetwarden_gpu_ecc_uncorrected_volatile_errors_total"] == [({"gpu": "0"}, 0)]
    assert samples["fleetwarden_gpu_remapped_rows_pending"] == [({"gpu": "0"}, 0)]
    assert "fleetwarden_gpu_xid_errors_total" not in samples


def test_gpu_samples_from_the_h100_csv_capture_match_the_xml():
    rows = smi.parse_csv((H100 / "query-gpu.csv").read_text())
    csv = by_name(fm.gpu_samples([smi.gpu_from_query_row(row) for row in rows]))
    assert csv["fleetwarden_gpu_memory_total_bytes"] == [({"gpu": "0"}, 81559 * 1024 * 1024)]
    assert csv["fleetwarden_gpu_temperature_celsius"] == [({"gpu": "0"}, 35)]
    assert csv["fleetwarden_gpu_power_watts"] == [({"gpu": "0"}, 88.94)]
    # retired_pages.pending is [N/A] on the H100 (it remaps rows instead): no series rather than a false 0
    assert "fleetwarden_gpu_retired_pages_pending" not in csv


def test_an_ecc_error_and_a_pending_remap_show_in_the_samples():
    text = (H100 / "nvidia-smi-q.xml").read_text()
    text = text.replace("<remapped_row_pending>No</remapped_row_pending>",
                        "<remapped_row_pending>Yes</remapped_row_pending>", 1)
    gpu = smi.parse_xml(text)["gpus"][0]
    gpu["ecc_volatile_uncorrected"] = 2
    samples = by_name(fm.gpu_samples([gpu]))
    assert samples["fleetwarden_gpu_remapped_rows_pending"] == [({"gpu": "0"}, 1)]
    assert samples["fleetwarden_gpu_ecc_uncorrected_volatile_errors_total"] == [({"gpu": "0"}, 2)]


def test_a_host_without_gpus_exports_no_gpu_series():
    assert fm.gpu_samples([]) == []
    assert fm.gpu_samples([], {"0|79": 3}) == []


def test_xid_events_are_counted_per_gpu_by_pci_address():
    gpus = smi.parse_xml((H100 / "nvidia-smi-q.xml").read_text())["gpus"]
    events = fm.parse_xid_events((MON / "kernel-xid.txt").read_text())
    assert events == [("0000:00:06", 79), ("0000:00:06", 48), ("0000:c1:00", 13), ("0000:00:06", 79)]
    counts = fm.count_xids({"0|79": 1}, events, gpus)
    assert counts == {"0|79": 3, "0|48": 1, "c1:00|13": 1}  # an unknown GPU keeps its PCI address
    xids = by_name(fm.gpu_samples(gpus, counts))["fleetwarden_gpu_xid_errors_total"]
    assert ({"gpu": "0", "xid": "79"}, 3) in xids


@pytest.mark.parametrize(("bus_id", "key"), [("00000000:00:06.0", "00:06"), ("0000:3B:00", "3b:00"),
                                             ("PCI", "pci")])
def test_pci_key(bus_id, key):
    assert fm.pci_key(bus_id) == key


def test_units_from_real_systemctl_show_output():
    units = parse_systemctl_show_units((MON / "systemctl-show.txt").read_text())
    assert set(units) == {"fwmon-fail.service", "docker.service", "fleetwarden-worker-nosuch.service"}
    failed = units["fwmon-fail.service"]
    assert (failed["ActiveState"], failed["Result"], failed["NRestarts"]) == ("failed", "exit-code", "3")
    # The capture's unit had StartLimitBurst=3 (fixtures README), as a worker with max_per_hour 2 has.
    decl = declaration(restart={"max_per_hour": 2})
    assert worker_state.restarts_exhausted(failed, decl)  # systemd 252 says exit-code, not start-limit-hit
    assert not worker_state.restarts_exhausted(units["docker.service"], decl)
    assert not worker_state.restarts_exhausted(failed, declaration(restart={"policy": "no", "max_per_hour": 2}))
    assert not worker_state.restarts_exhausted(failed, declaration())  # 3 of its 10 restarts: a dependency failed
    assert worker_state.restarts_exhausted({"ActiveState": "activating", "Result": "start-limit-hit"}, decl)


def test_oom_kills_and_last_death_from_real_docker_events():
    events = fm.parse_docker_events((MON / "docker-events-oom.jsonl").read_text() + "not json\n")
    assert [e["action"] for e in events] == ["oom", "die"]
    state = fm.count_events({}, events)
    assert state["oom_kills"] == {"fwmon-oom": 1}
    assert state["deaths"]["fwmon-oom"]["exit_code"] == 137
    assert state["deaths"]["fwmon-oom"]["oom_killed"] is True
    state = fm.count_events(state, events)  # a second window with the same kind of events adds up
    assert state["oom_kills"] == {"fwmon-oom": 2}
    samples = fm.oom_samples(state["oom_kills"], ["trainer"])
    assert samples == [("fleetwarden_container_oom_kills_total", {"container": "fwmon-oom", "worker": ""}, 2),
                       ("fleetwarden_container_oom_kills_total", {"container": "trainer", "worker": "trainer"}, 0)]


def test_a_die_without_oom_is_not_an_oom_death():
    events = [{"action": "die", "id": "b", "name": "w", "time": 2, "exit_code": 1}]
    assert fm.count_events({}, events)["deaths"]["w"] == {"exit_code": 1, "oom_killed": False, "time": 2}


def test_restart_window_counts_increments_within_the_hour():
    state, count = fm.restart_window(None, 0, now=1000)
    assert count == 0
    state, count = fm.restart_window(state, 2, now=1010)
    assert count == 2
    state, count = fm.restart_window(state, 5, now=2000)
    assert count == 5
    state, count = fm.restart_window(state, 5, now=1010 + 3600)
    assert count == 3  # the first two aged out
    state, count = fm.restart_window(state, 1, now=1020 + 3600)  # manual restart reset NRestarts
    assert count == 4


def test_restart_window_starts_afresh_when_an_exhausted_unit_runs_again():
    # systemd gave up (the collector saw the unit failed), then reset-failed and a start: systemd's count is reset.
    state, count = fm.restart_window(None, 0, now=1000)
    state, count = fm.restart_window(state, 60, now=1100, exhausted=True)
    assert count == 60
    state, count = fm.restart_window(state, 60, now=1105, exhausted=True)
    assert count == 60
    state, count = fm.restart_window(state, 0, now=1108)  # activating: reset-failed, then a start under way
    assert count == 60
    state, count = fm.restart_window(state, 0, now=1110, active=True)
    assert count == 0
    state, count = fm.restart_window(state, 2, now=1120, active=True)
    assert count == 2
    # A manual restart of a unit that never ran out keeps the count (systemd's does too).
    state, count = fm.restart_window(state, 0, now=1130, active=True)
    assert count == 2


def test_worker_samples_of_a_running_worker_with_a_heartbeat():
    decl = declaration(probe={"heartbeat": {"path": "/tmp/hb", "max_age": 30}})
    container = worker_state.container_summary({"Name": "/trainer", "State": {
        "Running": True, "ExitCode": 0, "OOMKilled": False, "StartedAt": "2026-11-27T10:00:00.5Z", "Pid": 42},
        "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}}}, now=1795773700.0)
    unit = {"ActiveState": "active", "Result": "success", "NRestarts": "2"}
    samples = dict(((name, value) for name, _, value in
                    fm.worker_samples(decl, unit, container, None, 2, heartbeat_age=3.5, probe_ok=True)))
    assert samples["fleetwarden_worker_up"] == 1
    assert samples["fleetwarden_worker_restarts_total"] == 2
    assert samples["fleetwarden_worker_restart_budget_remaining"] == 8  # max_per_hour 10, 2 used
    assert samples["fleetwarden_worker_start_limit_hit"] == 0
    assert samples["fleetwarden_worker_heartbeat_age_seconds"] == 3.5
    assert samples["fleetwarden_worker_heartbeat_max_age_seconds"] == 30
    assert samples["fleetwarden_worker_container_start_time_seconds"] == 1795773600.5
    assert "fleetwarden_worker_last_exit_code" not in samples  # no death seen yet


def test_worker_samples_of_an_oom_killed_worker_read_from_its_exited_container():
    inspect = __import__("json").loads((FIXTURES / "diagnosis" / "inspect-oom-killed.json").read_text())[0]
    samples = dict((name, value) for name, _, value in fm.worker_samples(
        declaration(), {"ActiveState": "activating"}, worker_state.container_summary(inspect, now=0)))
    assert samples["fleetwarden_worker_up"] == 0
    assert samples["fleetwarden_worker_last_exit_code"] == 137
    assert samples["fleetwarden_worker_last_oom_killed"] == 1


def test_a_failing_probe_or_a_missing_container_is_down():
    running = {"running": True, "exit_code": 0, "oom_killed": False, "started_at": None, "pid": 1, "address": None}
    down = dict((n, v) for n, _, v in fm.worker_samples(declaration(), {}, running, probe_ok=False))
    assert (down["fleetwarden_worker_up"], down["fleetwarden_worker_probe_success"]) == (0, 0)
    gone = dict((n, v) for n, _, v in fm.worker_samples(declaration(), {}, None))
    assert gone["fleetwarden_worker_up"] == 0
    assert "fleetwarden_worker_probe_success" not in gone


def test_probe_targets_come_from_the_declaration():
    assert fm.probe_targets(declaration()) is None  # no heartbeat, command or raylet: no probe
    targets = fm.probe_targets(declaration(probe={"raylet": {"port": 8076}, "timeout": 1}))
    assert (targets["raylet_port"], targets["timeout"], targets["heartbeat"]) == (8076, 1, None)


def test_mounts_ok_reads_the_declared_mount_points():
    decl = declaration(gcsfuse_mounts=["/mnt/data", {"mountpoint": "/mnt/ckpt/"}])
    assert fm.mounts_ok(decl, {"/", "/mnt/data", "/mnt/ckpt"})
    assert not fm.mounts_ok(decl, {"/", "/mnt/data"})
    assert fm.mounts_ok(declaration(), set())


def test_filesystem_threshold_is_the_larger_of_ratio_and_bytes():
    st = os.statvfs_result((4096, 4096, 1000, 300, 250, 100, 50, 40, 0, 255))
    samples = dict((n, v) for n, _, v in fm.filesystem_samples("docker_root", "/var/lib/docker", st, 0.1, 0))
    assert samples["fleetwarden_filesystem_avail_bytes"] == 250 * 4096
    assert samples["fleetwarden_filesystem_avail_min_bytes"] == 100 * 4096
    assert samples["fleetwarden_filesystem_files_free"] == 40
    bigger = dict((n, v) for n, _, v in fm.filesystem_samples("root", "/", st, 0.1, 2_000_000))
    assert bigger["fleetwarden_filesystem_avail_min_bytes"] == 2_000_000


def test_every_metric_follows_the_naming_conventions():
    for name, (kind, help_text, labels) in fm.METRICS.items():
        assert name.startswith("fleetwarden_")
        assert name.endswith("_total") == (kind == "counter"), name
        assert help_text.endswith("."), name
        assert set(labels) <= {"worker", "gpu", "uuid", "model", "pci_bus_id", "xid", "filesystem", "path",
                               "container", "source"}
    with pytest.raises(KeyError):
        fm.sample("fleetwarden_no_such_metric", 1)


def test_the_role_copies_every_module_util_the_collector_imports():
    """roles/fleet_metrics copies _fleet_metrics_shared next to the collector: nothing it imports may be missing."""
    import ast

    import yaml

    repo = Path(__file__).resolve().parents[3]
    role_vars = yaml.safe_load((repo / "roles" / "fleet_metrics" / "vars" / "main.yml").read_text())
    shared = role_vars["_fleet_metrics_shared"]
    prefix = "ansible_collections.fleetwarden.fleet.plugins.module_utils"
    sources = [repo / "roles" / "fleet_metrics" / "files" / "fleetwarden_metrics.py",
               *(repo / "plugins" / "module_utils" / name for name in shared)]
    imported = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == prefix:
                imported.update(alias.name + ".py" for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(prefix + "."):
                imported.add(node.module.rsplit(".", 1)[1] + ".py")
    assert imported and imported <= set(shared), sorted(imported - set(shared))
