"""fleetwarden's metrics collector, run by fleetwarden-metrics.service (roles/fleet_metrics).

Every interval it reads the worker declarations in /etc/fleetwarden/workers/*.json (written by
worker_service, so every worker site.yml deploys is covered), asks systemd, dockerd, nvidia-smi and the
kernel log about them, and writes node_exporter's textfile (rendered by python3-prometheus-client,
renamed into place atomically). What each metric means: plugins/module_utils/_fleet_metrics.py and
docs/monitoring.md.

  fleetwarden-metrics [--config /etc/fleetwarden/metrics.json] [--once]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.environ.get("FLEETWARDEN_METRICS_LIB", "/usr/local/lib/fleetwarden/metrics"))

from ansible_collections.fleetwarden.fleet.plugins.module_utils import _fleet_metrics as fm
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _worker_state as worker_state
from ansible_collections.fleetwarden.fleet.plugins.module_utils._node import parse_mountinfo
from ansible_collections.fleetwarden.fleet.plugins.module_utils._nvidia_smi import parse_xml
from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

DEFAULT_CONFIG = {
    "output": "/var/lib/prometheus/node-exporter/fleetwarden.prom",
    "state_file": "/var/lib/fleetwarden/metrics/state.json",
    "workers_dir": worker_state.PATHS["config_dir"],
    "interval": 10,
    "command_timeout": 8,
    "docker": "/usr/bin/docker",
    "systemctl": "/usr/bin/systemctl",
    "journalctl": "/usr/bin/journalctl",
    "nvidia_smi": None,  # looked up on PATH
    "filesystems": [{"filesystem": "root", "path": "/", "min_free_ratio": 0.1, "min_free_bytes": 0},
                    {"filesystem": "docker_root", "path": None, "min_free_ratio": 0.1, "min_free_bytes": 0}],
}


def log(message):
    print(message, file=sys.stderr, flush=True)


def run(argv, timeout):
    """(rc, stdout, stderr); rc 124 on a timeout, 127 when the program is missing."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        return done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout}s"
    except OSError as exc:
        return 127, "", str(exc)


def load_json(path, default):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


def save_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


class Collector:
    def __init__(self, config, clock=time.time):
        self.config = dict(DEFAULT_CONFIG, **config)
        self.clock = clock
        self.state = load_json(self.config["state_file"], {})

    def cmd(self, argv):
        return run(argv, self.config["command_timeout"])

    # -- sources --------------------------------------------------------------------------------------------------
    def units(self, declarations):
        names = [d["units"]["worker"] for d in declarations]
        if not names:
            return {}, True
        found, error = worker_state.read_units(names, self.cmd, systemctl=self.config["systemctl"],
                                               journalctl=self.config["journalctl"])
        return found, error is None

    def docker_info(self):
        rc, out, _err = self.cmd([self.config["docker"], "info", "--format", "{{.DockerRootDir}}"])
        return (out.strip() or None) if rc == 0 else None, rc == 0

    def containers(self, names):
        if not names:
            return {}
        # rc is 1 when some name has no container; the others are still printed.
        _rc, out, _err = self.cmd([self.config["docker"], "inspect", "--type", "container", *names])
        try:
            found = json.loads(out or "[]")
        except ValueError:
            found = []
        now = self.clock()
        return dict((item.get("Name", "").lstrip("/"), worker_state.container_summary(item, now)) for item in found)

    def docker_events(self, now):
        since = self.state.get("events_until") or now - worker_state.RESTART_WINDOW_S
        rc, out, _err = self.cmd([self.config["docker"], "events", "--since", f"{since:.3f}", "--until", f"{now:.3f}",
                                  "--filter", "type=container", "--filter", "event=oom", "--filter", "event=die",
                                  "--format", "{{json .}}"])
        if rc == 0:
            self.state["events_until"] = now
            self.state["containers"] = fm.count_events(self.state.get("containers") or {},
                                                       fm.parse_docker_events(out))
        return rc == 0

    def gpus(self):
        nvidia_smi = self.config["nvidia_smi"] or shutil.which("nvidia-smi")
        if not nvidia_smi or not os.path.exists(nvidia_smi):
            return [], None  # no GPU here: no GPU series, no error
        rc, out, _err = self.cmd([nvidia_smi, "-q", "-x"])
        if rc != 0:
            return [], False
        try:
            return parse_xml(out)["gpus"], True
        except Exception:  # broad on purpose: a broken XML is a failed source, not a dead collector
            return [], False

    def kernel_xids(self, gpus):
        cursor = os.path.join(os.path.dirname(self.config["state_file"]), "kernel.cursor")
        argv = [self.config["journalctl"], "--dmesg", "--no-pager", "--quiet", "--output", "cat",
                "--cursor-file", cursor]
        if not os.path.exists(cursor):
            argv += ["--since", "-1h"]
        rc, out, err = self.cmd(argv)
        # systemd 252 exits 1, silently, when --cursor-file finds no new kernel entry
        ok = rc == 0 or (rc == 1 and not out.strip() and not err.strip())
        if ok:
            self.state["xids"] = fm.count_xids(self.state.get("xids"), fm.parse_xid_events(out), gpus)
        return ok

    def probe(self, decl, container):
        """(heartbeat age or None, probe verdict or None) for a running worker."""
        targets = fm.probe_targets(decl)
        if not targets or not container or not container["running"]:
            return None, None
        ok, age = True, None
        if targets["heartbeat"]:
            try:
                stat = os.stat("/proc/{}/root{}".format(container["pid"], targets["heartbeat"]["path"]))
                age = max(0.0, self.clock() - stat.st_mtime)
            except OSError:
                age = float("inf")
            ok = age <= targets["heartbeat"]["max_age"]
        if ok and targets["raylet_port"]:
            host = "127.0.0.1" if targets["host_network"] or not container["address"] else container["address"]
            try:
                with socket.create_connection((host, targets["raylet_port"]), timeout=targets["timeout"]):
                    pass
            except OSError:
                ok = False
        if ok and targets["command"]:
            rc, _out, _err = run([self.config["docker"], "exec", decl["container"], *targets["command"]],
                                 targets["timeout"])
            ok = rc == 0
        return age, ok

    def mounted_points(self):
        try:
            with open("/proc/self/mountinfo") as handle:
                return set(m["mount_point"] for m in parse_mountinfo(handle.read()))
        except OSError:
            return set()

    # -- one run --------------------------------------------------------------------------------------------------
    def collect(self):
        started = self.clock()
        samples, sources = [], {}
        declarations, _errors = worker_state.read_declarations(self.config["workers_dir"])
        sources["declarations"] = os.path.isdir(self.config["workers_dir"])
        units, sources["systemd"] = self.units(declarations)
        root_dir, sources["docker"] = self.docker_info()
        samples.append(fm.sample("fleetwarden_docker_up", fm._flag(sources["docker"])))
        containers = self.containers([d["container"] for d in declarations]) if sources["docker"] else {}
        if sources["docker"]:
            sources["docker_events"] = self.docker_events(started)
        kept = self.state.get("containers") or {}
        mounted = self.mounted_points() if any(d.get("gcsfuse_mounts") for d in declarations) else set()
        restarts = self.state.setdefault("restarts", {})
        for decl in declarations:
            unit = units.get(decl["units"]["worker"], {})
            restarts[decl["name"]], in_window = fm.restart_window(
                restarts.get(decl["name"]), fm._int(unit.get("NRestarts")), started,
                exhausted=worker_state.restarts_exhausted(unit, decl), active=unit.get("ActiveState") == "active")
            container = containers.get(decl["container"])
            age, probe_ok = self.probe(decl, container)
            samples += fm.worker_samples(decl, unit, container, (kept.get("deaths") or {}).get(decl["container"]),
                                         in_window, age, probe_ok, fm.mounts_ok(decl, mounted))
        for name in set(restarts) - set(d["name"] for d in declarations):
            del restarts[name]
        samples += fm.oom_samples(kept.get("oom_kills"), [d["container"] for d in declarations])
        gpus, gpu_source = self.gpus()
        if gpu_source is not None:
            sources["nvidia_smi"] = gpu_source
            sources["kernel_log"] = self.kernel_xids(gpus)
        samples += fm.gpu_samples(gpus, self.state.get("xids"))
        for fs in self.config["filesystems"]:
            path = fs.get("path") or root_dir or "/var/lib/docker"
            try:
                st = os.statvfs(path)
            except OSError:
                continue
            samples += fm.filesystem_samples(fs["filesystem"], path, st, fs.get("min_free_ratio", 0),
                                             fs.get("min_free_bytes", 0))
        for source, ok in sorted(sources.items()):
            samples.append(fm.sample("fleetwarden_collector_source_up", fm._flag(ok), source=source))
        samples.append(fm.sample("fleetwarden_collector_duration_seconds", self.clock() - started))
        samples.append(fm.sample("fleetwarden_collector_last_run_timestamp_seconds", self.clock()))
        return samples

    def write(self, samples):
        registry = CollectorRegistry()
        registry.register(SampleCollector(samples))
        output = self.config["output"]
        os.makedirs(os.path.dirname(output), exist_ok=True)
        write_to_textfile(output, registry)
        save_json(self.config["state_file"], self.state)


class SampleCollector:
    """Hands prometheus_client the samples of one run as metric families (declared in fm.METRICS)."""

    def __init__(self, samples):
        self.samples = samples

    def collect(self):
        families = {}
        for name, labels, value in self.samples:
            kind, help_text, label_names = fm.METRICS[name]
            if name not in families:
                family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                families[name] = family(name, help_text, labels=label_names)
            families[name].add_metric([str(labels[label]) for label in label_names], value)
        return [families[name] for name in fm.METRICS if name in families]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="/etc/fleetwarden/metrics.json")
    parser.add_argument("--once", action="store_true", help="one run, then exit")
    args = parser.parse_args(argv)
    collector = Collector(load_json(args.config, {}))
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    while not stopping:
        started = time.monotonic()
        try:
            collector.write(collector.collect())
        except Exception as exc:  # broad on purpose: one bad run must not stop the metrics
            log(f"collector run failed: {exc!r}")
            if args.once:
                return 1
        if args.once:
            return 0
        deadline = started + collector.config["interval"]
        while not stopping and time.monotonic() < deadline:
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
