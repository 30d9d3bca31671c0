"""The fleet_metrics collector (roles/fleet_metrics/files/fleetwarden_metrics.py), run for real against stand-in
docker, systemctl, journalctl and nvidia-smi programs that print real captures, on declarations rendered by
worker_service's own code. Its output must pass `promtool check metrics` (Debian's prometheus package)."""

import importlib.util
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _worker_unit as wu

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
TOOL = REPO / "roles" / "fleet_metrics" / "files" / "fleetwarden_metrics.py"
spec = importlib.util.spec_from_file_location("fleetwarden_metrics", TOOL)
collector_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(collector_module)


def program(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def with_h100(tmp_path, config):
    """The host has the recorded H100: its nvidia-smi prints the capture."""
    config["nvidia_smi"] = program(tmp_path / "bin" / "nvidia-smi", f"cat {FIXTURES}/gpu-h100/nvidia-smi-q.xml\n")


@pytest.fixture
def host(tmp_path):
    """A host: two declared workers (one with a heartbeat and a raylet port, one stopped), stand-in programs."""
    workers_dir = tmp_path / "workers"
    workers_dir.mkdir()
    heartbeat = tmp_path / "heartbeat"
    heartbeat.write_text("")
    raylet = socket.socket()
    raylet.bind(("127.0.0.1", 0))
    raylet.listen()
    port = raylet.getsockname()[1]
    for worker in ({"name": "trainer", "image": "img:1",
                    "probe": {"heartbeat": {"path": str(heartbeat), "max_age": 30}, "raylet": {"port": port}}},
                   {"name": "server", "image": "img:2", "restart": {"max_per_hour": 3}}):
        decl = wu.declaration_document(wu.normalize(worker), 252)
        (workers_dir / (worker["name"] + ".json")).write_text(json.dumps(decl))
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
    inspect = [{"Name": "/trainer", "State": {"Running": True, "ExitCode": 0, "OOMKilled": False, "StartedAt": now,
                                             "Pid": os.getpid()}, "NetworkSettings": {"Networks": {}}},
               {"Name": "/server", "State": {"Running": False, "ExitCode": 137, "OOMKilled": True,
                                            "StartedAt": now, "Pid": 0}, "NetworkSettings": {"Networks": {}}}]
    (tmp_path / "inspect.json").write_text(json.dumps(inspect))
    units = ("Id=fleetwarden-worker-trainer.service\nActiveState=active\nResult=success\nNRestarts=1\n\n"
             "Id=fleetwarden-worker-server.service\nActiveState=failed\nResult=exit-code\nNRestarts=3\n")
    (tmp_path / "units.txt").write_text(units)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    config = {
        "output": str(tmp_path / "textfile" / "fleetwarden.prom"), "state_file": str(tmp_path / "state" / "s.json"),
        "workers_dir": str(workers_dir), "interval": 5,
        "docker": program(bin_dir / "docker", f"""case "$1" in
  info) echo {tmp_path} ;;
  inspect) cat {tmp_path}/inspect.json; exit 1 ;;
  events) cat {FIXTURES}/monitoring/docker-events-oom.jsonl ;;
  *) exit 2 ;;
esac
"""),
        "systemctl": program(bin_dir / "systemctl", f"cat {tmp_path}/units.txt\n"),
        "journalctl": program(bin_dir / "journalctl", f"cat {FIXTURES}/monitoring/kernel-xid.txt\n"),
        "nvidia_smi": str(tmp_path / "no-nvidia-smi"),
        "filesystems": [{"filesystem": "root", "path": "/", "min_free_ratio": 0.1, "min_free_bytes": 0},
                        {"filesystem": "docker_root", "path": None, "min_free_ratio": 0, "min_free_bytes": 1 << 60}],
    }
    yield tmp_path, config
    raylet.close()


def series(text):
    """Exposition text -> {'name{labels}': value} (comments dropped)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_one_run_writes_every_worker_and_node_series(host):
    tmp_path, config = host
    collector = collector_module.Collector(config)
    collector.write(collector.collect())
    text = Path(config["output"]).read_text()
    got = series(text)
    assert got['fleetwarden_worker_up{worker="trainer"}'] == 1
    assert got['fleetwarden_worker_probe_success{worker="trainer"}'] == 1
    assert got['fleetwarden_worker_heartbeat_age_seconds{worker="trainer"}'] < 30
    assert got['fleetwarden_worker_restarts_total{worker="trainer"}'] == 1
    assert got['fleetwarden_worker_up{worker="server"}'] == 0
    assert got['fleetwarden_worker_start_limit_hit{worker="server"}'] == 1
    assert got['fleetwarden_worker_restart_budget_remaining{worker="server"}'] == 0
    assert got['fleetwarden_worker_last_exit_code{worker="server"}'] == 137
    assert got['fleetwarden_worker_last_oom_killed{worker="server"}'] == 1
    assert got['fleetwarden_container_oom_kills_total{container="fwmon-oom",worker=""}'] == 1
    assert got['fleetwarden_container_oom_kills_total{container="trainer",worker="trainer"}'] == 0
    assert got["fleetwarden_docker_up"] == 1
    docker_root = f'{{filesystem="docker_root",path="{tmp_path}"}}'
    assert got["fleetwarden_filesystem_avail_min_bytes" + docker_root] == 1 << 60
    assert got['fleetwarden_collector_source_up{source="docker_events"}'] == 1
    # no nvidia-smi: no GPU series, no error, and the kernel log is not read for XIDs
    assert not [key for key in got if key.startswith("fleetwarden_gpu_")]
    assert 'source="nvidia_smi"' not in text
    assert not list(Path(config["output"]).parent.glob("*.prom.*"))  # the temporary file was renamed


def test_a_stale_heartbeat_and_a_closed_raylet_port_fail_the_probe(host):
    tmp_path, config = host
    old = time.time() - 300
    os.utime(tmp_path / "heartbeat", (old, old))
    got = series(_run(config))
    assert got['fleetwarden_worker_heartbeat_age_seconds{worker="trainer"}'] >= 299
    assert got['fleetwarden_worker_probe_success{worker="trainer"}'] == 0
    assert got['fleetwarden_worker_up{worker="trainer"}'] == 0
    (tmp_path / "heartbeat").unlink()
    assert series(_run(config))['fleetwarden_worker_heartbeat_age_seconds{worker="trainer"}'] == float("inf")


def test_gpu_series_and_xids_on_the_h100_capture(host):
    tmp_path, config = host
    with_h100(tmp_path, config)
    got = series(_run(config))
    assert got['fleetwarden_gpu_memory_total_bytes{gpu="0"}'] == 81559 * 1024 * 1024
    assert got['fleetwarden_gpu_xid_errors_total{gpu="0",xid="79"}'] == 2
    assert got['fleetwarden_collector_source_up{source="nvidia_smi"}'] == 1


def test_no_new_kernel_entry_is_no_error(host):
    """journalctl --cursor-file exits 1 without a word when nothing is new (systemd 252, seen on the lab)."""
    tmp_path, config = host
    with_h100(tmp_path, config)
    config["journalctl"] = program(tmp_path / "bin" / "journalctl-quiet", "exit 1\n")
    got = series(_run(config))
    assert got['fleetwarden_collector_source_up{source="kernel_log"}'] == 1
    assert not [key for key in got if key.startswith("fleetwarden_gpu_xid_errors_total")]
    config["journalctl"] = program(tmp_path / "bin" / "journalctl-broken", "echo 'Failed to open' >&2; exit 1\n")
    assert series(_run(config))['fleetwarden_collector_source_up{source="kernel_log"}'] == 0


def test_the_state_survives_a_collector_restart(host):
    _, config = host
    _run(config)
    # the next run reads docker events since the last one: the same OOM capture counts as a second kill
    got = series(_run(config))
    assert got['fleetwarden_container_oom_kills_total{container="fwmon-oom",worker=""}'] == 2


def test_docker_down_is_a_series_not_a_crash(host):
    tmp_path, config = host
    config["docker"] = program(tmp_path / "bin" / "docker-down", "echo 'Cannot connect' >&2; exit 1\n")
    got = series(_run(config))
    assert got["fleetwarden_docker_up"] == 0
    assert got['fleetwarden_worker_up{worker="trainer"}'] == 0
    assert got['fleetwarden_collector_source_up{source="docker"}'] == 0


def test_promtool_check_metrics_is_clean(host, promtool):
    tmp_path, config = host
    with_h100(tmp_path, config)
    text = _run(config)
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr)


def test_the_service_loop_writes_and_stops_on_sigterm(host):
    tmp_path, config = host
    (tmp_path / "metrics.json").write_text(json.dumps(dict(config, interval=1)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen([sys.executable, str(TOOL), "--config", str(tmp_path / "metrics.json")], env=env)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not Path(config["output"]).exists():
            time.sleep(0.1)
        first = Path(config["output"]).stat().st_mtime
        while time.monotonic() < deadline and Path(config["output"]).stat().st_mtime == first:
            time.sleep(0.1)
        assert Path(config["output"]).stat().st_mtime > first, "the collector did not write a second time"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def _run(config):
    collector = collector_module.Collector(config)
    collector.write(collector.collect())
    return Path(config["output"]).read_text()
