"""The alert rules shipped with the collection (roles/prometheus/files/fleetwarden-alerts.yml): their shape, and
`promtool check rules` / `promtool test rules` with a firing and a non-firing test for every alert.

The promtool test file is built here from CASES: each case lists input series and the labels the alert must carry;
the expected annotations are the rule's own templates with the labels filled in ({{ $labels.x }} only)."""

import re
import subprocess
from pathlib import Path

import yaml
from ansible_collections.fleetwarden.fleet.plugins.module_utils._fleet_metrics import METRICS

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "roles" / "prometheus" / "files" / "fleetwarden-alerts.yml"
ROLE_VARS = REPO / "roles" / "prometheus" / "vars" / "main.yml"
ALERTS = ("WorkerDown", "WorkerRestartsExhausted", "WorkerRestartLoop", "WorkerHeartbeatStale", "ContainerOOMKilled",
          "DockerDown", "DiskAlmostFull", "MountLost", "GPUMemoryHigh", "GPUUncorrectableECC", "GPUXid",
          "MetricsStale")
# Alerts with a remedy in playbooks/recover.yml (roles/recovery: recreate_worker, start_docker,
# prune_and_recreate, remount_and_restart).
REMEDIATING = {"WorkerDown", "WorkerRestartsExhausted", "WorkerHeartbeatStale", "DockerDown", "MountLost"}
NODE = {"fleet_host": "h1", "instance": "10.0.0.1:9100", "job": "node"}
WORKER = dict(NODE, worker="w1")
GPU = dict(NODE, gpu="0")
DOCKER_ROOT = dict(NODE, filesystem="docker_root", path="/var/lib/docker")
ROOT = dict(NODE, filesystem="root", path="/")


def rules():
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def s(name, labels, values):
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{inner}}}", "values": values}


# (alert, interval, input series, eval time, labels of each alert expected to fire ([] = none fires))
CASES = [
    ("WorkerDown", "5s", [s("fleetwarden_worker_up", WORKER, "0x20")], "40s", [WORKER]),
    ("WorkerDown", "5s", [s("fleetwarden_worker_up", WORKER, "1x20")], "40s", []),
    ("WorkerDown", "5s", [s("fleetwarden_worker_up", WORKER, "0 0 0 0 1x20")], "40s", []),  # shorter than for:
    ("WorkerDown", "5s", [s("fleetwarden_worker_up", WORKER, "0x10 1x40")], "150s", [WORKER]),  # keep_firing_for
    ("WorkerRestartsExhausted", "5s", [s("fleetwarden_worker_start_limit_hit", WORKER, "1x5"),
                                       s("fleetwarden_worker_restart_budget_remaining", WORKER, "2x5")],
     "10s", [WORKER]),
    # the hour's budget spent as the collector counted it, while systemd still restarts the unit (activating):
    # only systemd's verdict fires it
    ("WorkerRestartsExhausted", "5s", [s("fleetwarden_worker_start_limit_hit", WORKER, "0x5"),
                                       s("fleetwarden_worker_restart_budget_remaining", WORKER, "0x5"),
                                       s("fleetwarden_worker_unit_active", WORKER, "0x5")],
     "10s", []),
    # the hour's budget spent, but the unit runs again (the limit reset and the worker started): nothing to remedy
    ("WorkerRestartsExhausted", "5s", [s("fleetwarden_worker_start_limit_hit", WORKER, "0x5"),
                                       s("fleetwarden_worker_restart_budget_remaining", WORKER, "0x5"),
                                       s("fleetwarden_worker_unit_active", WORKER, "1x5")], "10s", []),
    # ...and it stops firing once the unit is active again (after keep_firing_for: 5m)
    ("WorkerRestartsExhausted", "5s", [s("fleetwarden_worker_start_limit_hit", WORKER, "1x3 0x100"),
                                       s("fleetwarden_worker_restart_budget_remaining", WORKER, "0x103"),
                                       s("fleetwarden_worker_unit_active", WORKER, "0x3 1x100")], "6m", []),
    ("WorkerRestartsExhausted", "5s", [s("fleetwarden_worker_start_limit_hit", WORKER, "0x5"),
                                       s("fleetwarden_worker_restart_budget_remaining", WORKER, "2x5")], "10s", []),
    ("WorkerRestartLoop", "1m", [s("fleetwarden_worker_restarts_total", WORKER, "0 1 2 3 4 5")], "5m", [WORKER]),
    ("WorkerRestartLoop", "1m", [s("fleetwarden_worker_restarts_total", WORKER, "0 0 0 1 1 1")], "5m", []),
    ("WorkerHeartbeatStale", "5s", [s("fleetwarden_worker_heartbeat_age_seconds", WORKER, "100x20"),
                                    s("fleetwarden_worker_heartbeat_max_age_seconds", WORKER, "30x20")],
     "40s", [WORKER]),
    ("WorkerHeartbeatStale", "5s", [s("fleetwarden_worker_heartbeat_age_seconds", WORKER, "5x20"),
                                    s("fleetwarden_worker_heartbeat_max_age_seconds", WORKER, "30x20")], "40s", []),
    ("ContainerOOMKilled", "1m", [s("fleetwarden_container_oom_kills_total", dict(WORKER, container="w1"),
                                    "0 0 1 1 1")], "4m", [dict(WORKER, container="w1")]),
    # a container that is no worker: the collector's worker="" is no label in Prometheus
    ("ContainerOOMKilled", "1m", [s("fleetwarden_container_oom_kills_total", dict(NODE, container="c"),
                                    "_ _ _ _ 1 1")], "5m", [dict(NODE, container="c")]),
    ("ContainerOOMKilled", "1m", [s("fleetwarden_container_oom_kills_total", dict(WORKER, container="w1"),
                                    "2x20")], "15m", []),
    ("DockerDown", "5s", [s("fleetwarden_docker_up", NODE, "0x10")], "20s", [NODE]),
    ("DockerDown", "5s", [s("fleetwarden_docker_up", NODE, "1x10")], "20s", []),
    ("DiskAlmostFull", "5s", [s("fleetwarden_filesystem_avail_bytes", DOCKER_ROOT, "1e9x5"),
                              s("fleetwarden_filesystem_avail_min_bytes", DOCKER_ROOT, "2e9x5")],
     "10s", [dict(DOCKER_ROOT, remediate="true")]),
    ("DiskAlmostFull", "5s", [s("fleetwarden_filesystem_avail_bytes", ROOT, "1e9x5"),
                              s("fleetwarden_filesystem_avail_min_bytes", ROOT, "2e9x5")],
     "10s", [dict(ROOT, remediate="false")]),
    ("DiskAlmostFull", "5s", [s("fleetwarden_filesystem_avail_bytes", DOCKER_ROOT, "5e9x5"),
                              s("fleetwarden_filesystem_avail_min_bytes", DOCKER_ROOT, "2e9x5")], "10s", []),
    ("MountLost", "5s", [s("fleetwarden_worker_mounts_healthy", WORKER, "0x10")], "20s", [WORKER]),
    ("MountLost", "5s", [s("fleetwarden_worker_mounts_healthy", WORKER, "1x10")], "20s", []),
    ("GPUMemoryHigh", "1m", [s("fleetwarden_gpu_memory_used_bytes", GPU, "79e9x10"),
                             s("fleetwarden_gpu_memory_total_bytes", GPU, "80e9x10")], "6m", [GPU]),
    ("GPUMemoryHigh", "1m", [s("fleetwarden_gpu_memory_used_bytes", GPU, "10e9x10"),
                             s("fleetwarden_gpu_memory_total_bytes", GPU, "80e9x10")], "6m", []),
    ("GPUUncorrectableECC", "5s", [s("fleetwarden_gpu_ecc_uncorrected_volatile_errors_total", GPU, "2x5")],
     "10s", [GPU]),
    ("GPUUncorrectableECC", "5s", [s("fleetwarden_gpu_remapped_rows_pending", GPU, "1x5")], "10s", [GPU]),
    ("GPUUncorrectableECC", "5s", [s("fleetwarden_gpu_ecc_uncorrected_volatile_errors_total", GPU, "0x5"),
                                   s("fleetwarden_gpu_remapped_rows_pending", GPU, "0x5"),
                                   s("fleetwarden_gpu_retired_pages_pending", GPU, "0x5")], "10s", []),
    ("GPUXid", "1m", [s("fleetwarden_gpu_xid_errors_total", dict(GPU, xid="79"), "0 0 1 1")], "3m",
     [dict(GPU, xid="79")]),
    ("GPUXid", "1m", [s("fleetwarden_gpu_xid_errors_total", dict(GPU, xid="79"), "0x20")], "15m", []),
    ("MetricsStale", "5s", [s("fleetwarden_collector_last_run_timestamp_seconds", NODE, "0+5x10")], "120s", [NODE]),
    ("MetricsStale", "5s", [s("up", NODE, "1x10")], "20s", [NODE]),  # node_exporter up, no collector file
    ("MetricsStale", "5s", [s("fleetwarden_collector_last_run_timestamp_seconds", NODE, "0+5x20"),
                            s("up", NODE, "1x20")], "60s", []),
]


def render(template, labels):
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)


def expected(alert, labels):
    candidates = [r for r in rules() if r.get("alert") == alert
                  and all(labels.get(k, v) == v for k, v in r["labels"].items() if "{{" not in v)]
    assert len(candidates) == 1, (alert, labels)
    rule = candidates[0]
    static = dict((k, v) for k, v in rule["labels"].items() if "{{" not in v)
    series_labels = dict((k, v) for k, v in labels.items() if k not in static)
    all_labels = dict(series_labels, **dict((k, render(v, series_labels)) for k, v in rule["labels"].items()))
    return {"exp_labels": all_labels,
            "exp_annotations": dict((k, render(v, all_labels)) for k, v in rule["annotations"].items())}


def promtool_tests():
    tests = []
    for alert, interval, series, eval_time, firing in CASES:
        tests.append({"interval": interval, "input_series": series, "alert_rule_test": [
            {"eval_time": eval_time, "alertname": alert, "exp_alerts": [expected(alert, f) for f in firing]}]})
    return {"rule_files": [str(RULES)], "evaluation_interval": "5s", "tests": tests}


def test_promtool_check_rules(promtool):
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 13 rules found" in result.stdout


def test_promtool_test_rules_fires_each_alert_and_not_without_its_fault(tmp_path, promtool):
    test_file = tmp_path / "fleetwarden-alerts.test.yml"
    test_file.write_text(yaml.safe_dump(promtool_tests(), sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_non_firing_case():
    for alert in ALERTS:
        assert any(c[0] == alert and c[4] for c in CASES), alert
        assert any(c[0] == alert and not c[4] for c in CASES), alert
    assert {c[0] for c in CASES} == set(ALERTS)


def test_every_rule_has_the_labels_and_annotations_the_issue_asks_for():
    names = set()
    for rule in rules():
        names.add(rule["alert"])
        labels, annotations = rule["labels"], rule["annotations"]
        assert labels["severity"] in ("critical", "warning"), rule["alert"]
        assert labels["remediate"] in ("true", "false"), rule["alert"]
        assert labels["fleet_host"] == "{{ $labels.fleet_host }}", rule["alert"]
        for key in ("summary", "description"):
            assert "{{ $labels.fleet_host }}" in annotations[key], (rule["alert"], key)
            if "worker" in rule["expr"] or rule["alert"].startswith("Worker"):
                assert "{{ $labels.worker }}" in annotations[key], (rule["alert"], key)
        remediates = labels["remediate"] == "true"
        assert remediates == ("keep_firing_for" in rule), rule["alert"]
        if rule["alert"] != "DiskAlmostFull":
            assert remediates == (rule["alert"] in REMEDIATING), rule["alert"]
    assert names == set(ALERTS)
    assert set(yaml.safe_load(ROLE_VARS.read_text())["_prometheus_alert_names"]) == set(ALERTS)


def test_the_rules_use_only_metrics_the_collector_defines():
    used = set(re.findall(r"\b(fleetwarden_[a-z_]+)\b", RULES.read_text()))
    assert used, "no metric found"
    assert used <= set(METRICS), used - set(METRICS)
