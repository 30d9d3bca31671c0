"""fleetwarden.fleet.worker_service on a real lab host: systemd 252, its own dockerd 20.10, real units.

Needs the lab up (`fleetwarden lab up`); the worker image is built (cached) and loaded into the lab hosts.
Every test polls with a deadline; the module's teardown removes every worker it declared.
"""

from __future__ import annotations

import json
import time

import pytest
from fleetwarden_testing import ray_lab

pytestmark = pytest.mark.lab

# The first worker host in the gpu group and not in tpu, from the lab inventory (never a literal name).
HOST = next((h.name for h in sorted(ray_lab.read_inventory().values(), key=lambda h: h.name)
             if "gpu" in h.groups and "tpu" not in h.groups and "workers" in h.groups), "no-gpu-worker-in-the-lab")
IMAGE = "fleetwarden/ray-worker:latest"
SECRET = "hf_integrationSecret42"  # noqa: S105 - a fake token, to prove it never leaks
SEED_GCLOUD = ('mkdir -p /home/ray/.ssh && gcloud compute project-info describe '
               '--format="value(commonInstanceMetadata.items[?key==\\"ssh-keys\\"].value)" '
               '> /home/ray/.ssh/authorized_keys && chmod 600 /home/ray/.ssh/authorized_keys')
# A stand-in gcloud that prints its arguments, one per line: what the seed's command writes is then exactly the
# arguments bash passed, quotes and brackets included.
FAKE_GCLOUD = ("printf '#!/bin/sh\\nprintf \"%%s\\\\n\" \"$@\"\\n' > /usr/local/bin/gcloud"
               " && chmod +x /usr/local/bin/gcloud")
TRICKY = "printf '%s|' 'single' \"double\" $(echo sub) '(paren)' [br] 'back\\slash' \"a&&b\" > /tmp/tricky"
HEARTBEAT_LOOP = 'while :; do touch /tmp/heartbeat; sleep 1; done  # 100% "$HOME" stays literal'
NAMES = ("fwt-setup", "fwt-other", "fwt-crash", "fwt-mount")


def heartbeat_worker(name, **overrides):
    worker = {"name": name, "image": IMAGE, "pull": "never", "command": ["bash", "-c", HEARTBEAT_LOOP],
              "probe": {"heartbeat": {"path": "/tmp/heartbeat", "max_age": 4}, "interval": 1, "timeout": 1,
                        "failure_threshold": 2, "start_period": 10},
              "restart": {"max_per_hour": 30}}
    worker.update(overrides)
    return worker


@pytest.fixture(scope="module")
def host(lab_baseline):
    hosts = lab_baseline
    ray_lab.ensure_worker_image(hosts)
    if HOST not in hosts:
        pytest.fail(f"the lab has no worker host in group gpu outside tpu: {sorted(hosts)}")
    host = hosts[HOST]
    yield host
    ray_lab.ansible_playbook(ray_lab.PLAYBOOKS / "worker_service.yml", extra_vars={
        "target": HOST, "test_workers": [{"name": name, "state": "absent"} for name in NAMES]})
    ray_lab.host_run(host, "sh", "-c", "systemctl stop fleetwarden-gcsfuse-mnt-fwtest.service; "
                     "rm -f /etc/systemd/system/fleetwarden-gcsfuse-mnt-fwtest.service /run/fwt-alert; "
                     "systemctl daemon-reload")


def deploy(*workers, args=()):
    result = ray_lab.ansible_playbook(ray_lab.PLAYBOOKS / "worker_service.yml", *args,
                                      extra_vars={"target": HOST, "test_workers": list(workers)})
    return result


def deployed(*workers, args=()):
    result = deploy(*workers, args=args)
    assert result.returncode == 0, result.stdout[-3000:]
    return result


def running(host, name, other_than=None, timeout=60):
    def check():
        info = ray_lab.container(host, name)
        return info if info and info["running"] and info["id"] != other_than else None
    return ray_lab.wait_until(check, timeout, what=f"container {name} running (not {str(other_than)[:12]})")


def test_setup_commands_run_byte_exact_and_the_command_survives_systemd_quoting(host):
    worker = heartbeat_worker("fwt-setup", setup_commands=[FAKE_GCLOUD, SEED_GCLOUD, TRICKY])
    deployed(worker)
    info = running(host, "fwt-setup")
    keys = ray_lab.host_run(host, "docker", "exec", "fwt-setup", "cat", "/home/ray/.ssh/authorized_keys", check=True)
    assert keys.stdout.splitlines() == ["compute", "project-info", "describe",
                                        '--format=value(commonInstanceMetadata.items[?key=="ssh-keys"].value)']
    tricky = ray_lab.host_run(host, "docker", "exec", "fwt-setup", "cat", "/tmp/tricky", check=True)
    assert tricky.stdout == "single|double|sub|(paren)|[br]|back\\slash|a&&b|"
    # The worker command went through the unit's ExecStartPre (systemd's own parser) unchanged; the entrypoint
    # exec'd it as the container's main process (PID 1 is docker-init).
    assert info["args"][-3:] == ["bash", "-c", HEARTBEAT_LOOP]
    top = ray_lab.host_run(host, "docker", "top", "fwt-setup", "-o", "pid,ppid,args", check=True).stdout
    processes = [line.split(None, 2) for line in top.splitlines()[1:]]
    init = next(pid for pid, _, args in processes if args.startswith("/sbin/docker-init"))
    loop = next(ppid for _, ppid, args in processes if args.startswith("bash -c while :"))
    assert loop == init, top


def test_secrets_stay_out_of_ansible_output_units_and_process_lists(host):
    result = deployed(heartbeat_worker("fwt-setup", setup_commands=[FAKE_GCLOUD, SEED_GCLOUD, TRICKY],
                                       env={"HF_TOKEN": SECRET}), args=("-vv", "--diff"))
    assert SECRET not in result.stdout
    running(host, "fwt-setup")
    shown = ray_lab.host_run(host, "sh", "-c", "systemctl status --no-pager -l fleetwarden-worker-fwt-setup.service; "
                             "ps -eo args; stat -c '%a %n' /etc/fleetwarden/workers/fwt-setup.*").stdout
    assert SECRET not in shown
    assert "600 /etc/fleetwarden/workers/fwt-setup.env" in shown
    assert "600 /etc/fleetwarden/workers/fwt-setup.json" in shown
    env = ray_lab.host_run(host, "docker", "exec", "fwt-setup", "printenv", "HF_TOKEN", check=True).stdout
    assert env.strip() == SECRET


def test_an_unchanged_rerun_changes_nothing_and_a_change_restarts_only_that_worker(host):
    workers = [heartbeat_worker("fwt-setup", env={"HF_TOKEN": SECRET}, setup_commands=[FAKE_GCLOUD, SEED_GCLOUD,
                                                                                       TRICKY]),
               heartbeat_worker("fwt-other")]
    deployed(*workers)
    first = {name: running(host, name) for name in ("fwt-setup", "fwt-other")}
    again = deployed(*workers)
    assert ray_lab.recap(again.stdout)[HOST]["changed"] == 0
    workers[1] = heartbeat_worker("fwt-other", env={"GENERATION": "2"})
    changed = deployed(*workers)
    assert ray_lab.recap(changed.stdout)[HOST]["changed"] > 0
    assert running(host, "fwt-other", other_than=first["fwt-other"]["id"])["env"].count("GENERATION=2") == 1
    assert ray_lab.container(host, "fwt-setup")["id"] == first["fwt-setup"]["id"]


def test_a_stale_heartbeat_restarts_the_worker(host):
    deployed(heartbeat_worker("fwt-other", env={"GENERATION": "2"}))
    before = running(host, "fwt-other")
    loop = ray_lab.host_run(host, "pgrep", "-f", "while :; do touch", check=True).stdout.split()
    pids = [pid for pid in loop if ray_lab.host_run(host, "cat", f"/proc/{pid}/cgroup").stdout.count(before["id"])]
    assert pids, "the worker's loop was not found"
    ray_lab.host_run(host, "kill", "-STOP", *pids, check=True)
    after = running(host, "fwt-other", other_than=before["id"], timeout=45)
    assert after["id"] != before["id"]
    journal = ray_lab.host_run(host, "journalctl", "-u", "fleetwarden-probe-fwt-other.service", "--no-pager",
                               "-n", "50").stdout
    assert "heartbeat file /tmp/heartbeat is" in journal and "killing the container" in journal


def test_restarts_run_out_after_max_per_hour_and_fire_the_alert(host):
    unit = "fleetwarden-worker-fwt-crash.service"
    crash = {"name": "fwt-crash", "image": IMAGE, "pull": "never", "command": ["sh", "-c", "exit 3"],
             "restart": {"max_per_hour": 2, "delay": 0.5},
             "alert": {"command": ["/bin/sh", "-c", 'echo "$FLEETWARDEN_UNIT $FLEETWARDEN_EXIT_STATUS {result}" '
                                   '>> /run/fwt-alert']}}

    def failed_for_good():
        state = ray_lab.unit(host, unit)
        return state if state["ActiveState"] == "failed" else None

    deploy(crash)  # the role's own start may meet the crash loop; the unit's state is what counts
    ray_lab.wait_until(failed_for_good, 60, what="fwt-crash failed for good")
    # That first give-up fires the alert too, asynchronously (OnFailure= starts the alert unit): wait for its line
    # before clearing the file, or it can land after the clear and be counted with the second give-up's.
    ray_lab.wait_until(lambda: ray_lab.host_run(host, "cat", "/run/fwt-alert").stdout, 30,
                       what="the first give-up's alert line")
    # Count from a clean start: systemd 252 forgets start counts on daemon-reload, which the role's deploy does.
    ray_lab.host_run(host, "rm", "-f", "/run/fwt-alert")
    since = ray_lab.host_run(host, "date", "+%Y-%m-%d %H:%M:%S", check=True).stdout.strip()
    time.sleep(1.1)
    ray_lab.host_run(host, "systemctl", "reset-failed", unit, check=True)
    ray_lab.host_run(host, "systemctl", "start", unit)
    state = ray_lab.wait_until(failed_for_good, 60, what="fwt-crash failed for good again")
    alert = ray_lab.wait_until(lambda: ray_lab.host_run(host, "cat", "/run/fwt-alert").stdout, 30,
                               what="the alert hook wrote its line")
    assert alert == f"{unit} 3 exit-code\n"
    assert state["ExecMainStatus"] == "3"
    journal = ray_lab.host_run(host, "journalctl", "-u", unit, "--since", since, "--no-pager", "-o", "cat").stdout
    # One start plus max_per_hour (2) restarts; the third failure stops restarts for the hour.
    assert journal.count(f"Started {unit}") == 3, journal
    assert "Start request repeated too quickly" in journal and "Triggering OnFailure= dependencies" in journal
    time.sleep(2)
    assert ray_lab.unit(host, unit)["ActiveState"] == "failed"


def test_the_worker_follows_its_gcsfuse_mount(host):
    deployed(heartbeat_worker("fwt-mount", gcsfuse_mounts=[{"mountpoint": "/mnt/fwtest", "container_path": "/data"}]))
    first = running(host, "fwt-mount")
    unit = ray_lab.host_run(host, "systemctl", "show", "fleetwarden-worker-fwt-mount.service",
                            "--property=After,Requires,BindsTo", check=True).stdout
    props = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line)
    assert "fleetwarden-gcsfuse-mnt-fwtest.service" in props.get("Requires", "")
    assert "fleetwarden-gcsfuse" not in props.get("BindsTo", "")
    generation = ray_lab.host_run(host, "docker", "exec", "fwt-mount", "cat", "/data/generation", check=True).stdout
    assert generation == ray_lab.host_run(host, "cat", "/mnt/fwtest/generation").stdout
    ray_lab.host_run(host, "systemctl", "restart", "fleetwarden-gcsfuse-mnt-fwtest.service", check=True)
    second = running(host, "fwt-mount", other_than=first["id"])
    fresh = ray_lab.host_run(host, "docker", "exec", "fwt-mount", "cat", "/data/generation", check=True).stdout
    assert fresh != generation and fresh == ray_lab.host_run(host, "cat", "/mnt/fwtest/generation").stdout
    assert second["id"] != first["id"]


@pytest.mark.parametrize(("worker", "named"), [
    ({"name": "fwt-bad"}, "image is required"),
    ({"name": "fwt-bad", "image": IMAGE, "restart": {"max_per_hour": 0}}, "restart.max_per_hour"),
    ({"name": "fwt-bad", "image": IMAGE, "restart": {"max_per_hour": -1}}, "restart.max_per_hour"),
    ({"name": "fwt-bad", "image": IMAGE, "accelerator": "fpga"}, "accelerator 'fpga' is not a profile"),
    ({"name": "fwt-bad", "image": IMAGE, "accelerator": "tpu"}, "accelerator tpu needs a host in group tpu"),
    ({"name": "fwt-bad", "image": IMAGE, "setup_commands": "echo hi"}, "setup_commands must be a list"),
    ({"name": "fwt-bad", "image": IMAGE, "setup_commands": ["ok", ["nested"]]}, "setup_commands[1]"),
    ({"name": "fwt-bad", "image": IMAGE, "env": {"NOT-AN-IDENTIFIER": "x"}}, "env name 'NOT-AN-IDENTIFIER'"),
])
def test_bad_input_is_refused_before_the_host_changes(host, worker, named):
    result = deploy(worker, args=("--tags", "worker_service"))
    assert result.returncode != 0
    assert "worker fwt-bad: " + named in result.stdout
    before_failure = result.stdout.split("fatal:")[0]
    tasks = [line for line in before_failure.splitlines() if line.startswith("TASK [")]
    assert "Check the worker declarations" in tasks[-1]
    assert "\nchanged:" not in before_failure
    left = ray_lab.host_run(host, "sh", "-c", "ls /etc/systemd/system/fleetwarden-worker-fwt-bad.service "
                            "/etc/fleetwarden/workers/fwt-bad.json 2>/dev/null; docker ps -aq -f name=^fwt-bad$")
    assert left.stdout == ""


def test_the_declaration_file_describes_the_worker_as_deployed(host):
    deployed(heartbeat_worker("fwt-other", env={"GENERATION": "2"}))
    text = ray_lab.host_run(host, "cat", "/etc/fleetwarden/workers/fwt-other.json", check=True).stdout
    doc = json.loads(text)
    assert doc["container"] == "fwt-other"
    assert doc["units"]["worker"] == "fleetwarden-worker-fwt-other.service"
    assert doc["probe"]["heartbeat"] == {"path": "/tmp/heartbeat", "max_age": 4}
    assert doc["image_id"].startswith("sha256:") and doc["systemd_version"] == 252
