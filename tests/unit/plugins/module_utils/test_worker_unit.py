"""Unit tests for module_utils._worker_unit: validation, docker argv, env file, units, backoff per systemd version."""

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _worker_state as ws
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _worker_unit as wu
from systemd_words import unquote_like_systemd

REPO = Path(__file__).resolve().parents[4]
ENTRYPOINT = REPO / "roles" / "worker_service" / "files" / "worker-entrypoint"
# The seed's command that broke a hand-written retry script (000): quotes, $( ), brackets, parentheses, &&.
SEED_GCLOUD = ('mkdir -p /home/ray/.ssh && gcloud compute project-info describe '
               '--format="value(commonInstanceMetadata.items[?key==\\"ssh-keys\\"].value)" '
               '> /home/ray/.ssh/authorized_keys && chmod 600 /home/ray/.ssh/authorized_keys')
# The worker_unit module passes the docker CLI it resolved from its docker_cli option.
DOCKER = "/opt/docker-ce/bin/docker"
HOST_PATHS = {"docker": DOCKER}
PROFILES = {"cpu": {}, "gpu": {"runtime": "nvidia", "env": {"NVIDIA_VISIBLE_DEVICES": "all"}},
            "tpu": {"privileged": True, "host_network": True, "device_globs": ["/dev/accel*"],
                    "ulimits": {"memlock": -1}}}


def worker(**overrides):
    base = {"name": "ray-worker", "image": "fleet/ray:2.60.0",
            "command": ["ray", "start", "--address=head:6379", "--block"]}
    base.update(overrides)
    return base


def rendered(systemd_version=252, devices=(), **overrides):
    return wu.worker_unit_text(wu.normalize(worker(**overrides), profiles=PROFILES), systemd_version, HOST_PATHS,
                               devices=devices)


def exec_lines(unit, key):
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(key + "=")]


# --- validation --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("overrides", "field"), [
    ({"image": None}, "image is required"),
    ({"image": ""}, "image is required"),
    ({"restart": {"max_per_hour": 0}}, "restart.max_per_hour"),
    ({"restart": {"max_per_hour": -3}}, "restart.max_per_hour"),
    ({"accelerator": "fpga"}, "accelerator 'fpga' is not a profile"),
    ({"setup_commands": "echo hi"}, "setup_commands must be a list"),
    ({"setup_commands": ["ok", {"cmd": "x"}]}, "setup_commands[1]"),
    ({"env": {"1BAD": "x"}}, "env name '1BAD' is not a valid identifier"),
    ({"env": {"BAD-NAME": "x"}}, "env name 'BAD-NAME'"),
    ({"env": {"FLEETWARDEN_SETUP_0": "x"}}, "reserved"),
    ({"command": "ray start"}, "command must be a list"),
    ({"probe": {"failure_threshold": 0}}, "probe.failure_threshold"),
    ({"probe": {"heartbeat": {"path": "relative", "max_age": 5}}}, "probe.heartbeat"),
    ({"volumes": ["/data"]}, "volumes[0]"),
    ({"ulimits": {"memlok": -1}}, "ulimits.memlok"),
    ({"shm_size": "lots"}, "shm_size"),
    ({"alert": {"webhook": "ftp://x"}}, "alert.webhook"),
    ({"wait_for": [{"host": "head", "port": "6379"}]}, "wait_for[0]"),
    ({"name": "has space"}, "name must match"),
    ({"colour": "red"}, "unknown key colour"),
])
def test_bad_declarations_are_refused_naming_the_field(overrides, field):
    errors = wu.workers_errors([worker(**overrides)], groups=["workers"], profiles=PROFILES)
    assert any(field in error for error in errors), errors


def test_a_worker_without_an_image_is_refused():
    decl = worker()
    del decl["image"]
    assert wu.workers_errors([decl], profiles=PROFILES) == [
        "worker ray-worker: image is required: a docker image reference, got None"]


def test_tpu_needs_a_host_in_the_tpu_group():
    assert wu.workers_errors([worker(accelerator="tpu")], groups=["tpu", "workers"], profiles=PROFILES) == []
    errors = wu.workers_errors([worker(accelerator="tpu")], groups=["gpu", "workers"], profiles=PROFILES)
    assert errors == ["worker ray-worker: accelerator tpu needs a host in group tpu; this host is in: gpu, workers"]


def test_env_values_are_never_in_error_messages():
    errors = wu.workers_errors([worker(env={"HF_TOKEN": "hf_secret\nvalue"})], profiles=PROFILES)
    assert errors and all("hf_secret" not in e for e in errors)


def test_a_valid_declaration_has_no_errors_and_names_are_unique():
    good = worker(env={"HF_TOKEN": "x"}, setup_commands=[SEED_GCLOUD], gcsfuse_mounts=["/mnt/data"],
                  probe={"raylet": {"port": 8076}}, restart={"max_per_hour": 10}, alert={"command": ["/bin/true"]})
    assert wu.workers_errors([good], profiles=PROFILES) == []
    assert wu.workers_errors([good, good], profiles=PROFILES) == ["worker ray-worker: name is declared twice"]


def test_absent_workers_need_only_a_name():
    assert wu.workers_errors([{"name": "old", "state": "absent"}]) == []


# --- docker argv ---------------------------------------------------------------------------------------------------
def test_argv_carries_the_whole_declaration_but_no_env_values():
    decl = wu.normalize(worker(env={"HF_TOKEN": "hf_secret"}, shm_size="16g", memory="64g", host_network=True,
                               volumes=["/tmp:/tmp"], devices=["/dev/fuse"], docker_args=["--cpus", "4"],
                               ulimits={"memlock": -1, "nofile": "1024:4096"}), profiles=PROFILES)
    argv = wu.docker_create_argv(decl, HOST_PATHS)
    assert argv[:4] == [DOCKER, "create", "--name", "ray-worker"]
    assert argv[-5:] == ["fleet/ray:2.60.0", "ray", "start", "--address=head:6379", "--block"]
    joined = " ".join(argv)
    for flag in ("--init", "--restart no", "--env-file /etc/fleetwarden/workers/ray-worker.env", "--network host",
                 "--shm-size 16g", "--memory 64g", "--volume /tmp:/tmp", "--device /dev/fuse", "--cpus 4",
                 "--ulimit memlock=-1:-1", "--ulimit nofile=1024:4096",
                 "--entrypoint /usr/local/libexec/fleetwarden/worker-entrypoint"):
        assert flag in joined
    assert "hf_secret" not in joined and "HF_TOKEN" not in joined


def test_profiles_add_runtime_privileges_devices_and_their_env():
    gpu = wu.normalize(worker(accelerator="gpu"), profiles=PROFILES)
    assert "--runtime nvidia" in " ".join(wu.docker_create_argv(gpu))
    assert gpu["env"] == {"NVIDIA_VISIBLE_DEVICES": "all"}
    tpu = wu.normalize(worker(accelerator="tpu"), profiles=PROFILES)
    argv = " ".join(wu.docker_create_argv(tpu, devices=["/dev/accel0", "/dev/accel1"]))
    assert "--privileged" in argv and "--device /dev/accel0 --device /dev/accel1" in argv
    assert "--network host" in argv and "--ulimit memlock=-1:-1" in argv
    # A worker's own keys win over its profile.
    assert not wu.normalize(worker(accelerator="tpu", host_network=False), profiles=PROFILES)["host_network"]


def test_gcsfuse_mounts_bind_into_the_container_and_the_unit_requires_the_mount():
    unit = rendered(gcsfuse_mounts=[{"mountpoint": "/mnt/gcs data", "container_path": "/data", "read_only": True}])
    create = unquote_like_systemd(exec_lines(unit, "ExecStartPre")[-1])
    assert create[create.index("--mount") + 1] == "type=bind,source=/mnt/gcs data,target=/data,readonly"
    # Requires=, never BindsTo= (roles/gcsfuse/README.md): a crashed mount must bring the worker back.
    assert "Requires=fleetwarden-gcsfuse-mnt-gcs\\x20data.service" in unit
    assert "BindsTo=fleetwarden-gcsfuse" not in unit
    assert "After=fleetwarden-gcsfuse-mnt-gcs\\x20data.service" in unit


# --- the unit ------------------------------------------------------------------------------------------------------
def test_the_units_need_the_docker_cli_as_an_absolute_path():
    decl = wu.normalize(worker(probe={"heartbeat": {"path": "/tmp/hb", "max_age": 30}}), profiles=PROFILES)
    for docker in ("docker", "/opt/my docker/docker"):
        with pytest.raises(ValueError, match="docker CLI"):
            wu.worker_unit_text(decl, 252, {"docker": docker})
        with pytest.raises(ValueError, match="docker CLI"):
            wu.probe_unit_text(decl, {"docker": docker})


def test_every_start_removes_the_leftover_then_creates_from_the_declaration_then_supervises():
    unit = rendered()
    pre = exec_lines(unit, "ExecStartPre")
    assert pre[0] == "-" + DOCKER + " rm --force ray-worker"
    assert unquote_like_systemd(pre[1]) == wu.docker_create_argv(wu.normalize(worker()), HOST_PATHS)
    assert exec_lines(unit, "ExecStart") == [
        "/usr/bin/python3 /usr/local/libexec/fleetwarden/fleetwarden-worker supervise --stop-timeout 30 ray-worker"]
    assert "Type=notify" in unit and "KillMode=mixed" in unit


def test_a_worker_that_waits_removes_the_leftover_while_it_waits_then_creates():
    waits = [{"host": "head", "port": 6379, "check": "grpc"}, {"host": "db", "port": 5432}]
    unit = rendered(wait_for=waits)
    pre = exec_lines(unit, "ExecStartPre")
    # The first wait removes the leftover meanwhile; no separate rm runs before it.
    assert not any(" rm --force " in line for line in pre)
    assert unquote_like_systemd(pre[0])[2:] == ["wait-for", "--check", "grpc", "--timeout", "0",
                                                "--remove", "ray-worker", "head:6379"]
    assert unquote_like_systemd(pre[1])[2:] == ["wait-for", "--check", "tcp", "--timeout", "0", "db:5432"]
    assert unquote_like_systemd(pre[2]) == wu.docker_create_argv(wu.normalize(worker(wait_for=waits),
                                                                              profiles=PROFILES), HOST_PATHS)
    # Waiting for the head forever must not time the start out.
    assert "TimeoutStartSec=infinity" in unit
    assert exec_lines(unit, "ExecStart") == [
        "/usr/bin/python3 /usr/local/libexec/fleetwarden/fleetwarden-worker supervise --stop-timeout 30 ray-worker"]
    assert "Type=notify" in unit and "KillMode=mixed" in unit
    # Waiting for the head forever must not time the start out.
    assert "TimeoutStartSec=infinity" in unit


@pytest.mark.parametrize("arg", ['--format=value(items[?key==\\"ssh-keys\\"].value)', "100% $HOME", "a b\tc",
                                 "quote's", "back\\slash", "new\nline"])
def test_argv_elements_round_trip_through_systemd_quoting(arg):
    decl = wu.normalize(worker(command=["python3", "-c", arg]), profiles=PROFILES)
    line = exec_lines(wu.worker_unit_text(decl, 252, HOST_PATHS), "ExecStartPre")[-1]
    assert unquote_like_systemd(line)[-3:] == ["python3", "-c", arg]


def test_dockerd_is_wanted_not_required_so_its_restart_leaves_the_worker_alone():
    unit = rendered()
    assert "Wants=docker.service network-online.target" in unit
    assert "Requires=docker.service" not in unit and "BindsTo=docker.service" not in unit


def test_start_limit_allows_max_per_hour_restarts_then_fires_the_alert():
    unit = rendered(restart={"max_per_hour": 4})
    assert "StartLimitIntervalSec=3600" in unit
    assert "StartLimitBurst=5" in unit  # the first start plus 4 restarts
    assert "OnFailure=fleetwarden-alert@%n.service" in unit


@pytest.mark.parametrize(("version", "expected", "absent"), [
    (252, ["Restart=always", "RestartSec=0.1s"], ["RestartSteps", "RestartMaxDelaySec"]),
    (253, ["RestartSec=0.1s"], ["RestartSteps"]),
    (254, ["RestartSec=0.1s", "RestartSteps=5", "RestartMaxDelaySec=60s"], []),
    (256, ["RestartSteps=5", "RestartMaxDelaySec=60s"], []),
])
def test_backoff_options_follow_the_systemd_version(version, expected, absent):
    unit = rendered(systemd_version=version)
    for line in expected:
        assert line in unit.splitlines()
    for key in absent:
        assert key not in unit


def test_fixed_delay_and_policy_are_configurable():
    lines = wu.restart_lines({"policy": "on-failure", "delay": 2.5, "max_delay": 2.5, "steps": 5}, 256)
    assert lines == ["Restart=on-failure", "RestartSec=2.5s"]


def test_the_probe_unit_is_bound_to_its_worker_and_only_rendered_when_a_check_is_declared():
    decl = wu.normalize(worker(probe={"raylet": {"port": 8076}}), profiles=PROFILES)
    unit = wu.worker_unit_text(decl, 252, HOST_PATHS)
    probe = wu.probe_unit_text(decl, HOST_PATHS)
    assert "Wants=fleetwarden-probe-ray-worker.service" in unit
    assert "BindsTo=fleetwarden-worker-ray-worker.service" in probe
    assert "After=fleetwarden-worker-ray-worker.service" in probe
    assert "Wants=fleetwarden-probe" not in rendered()
    assert wu.probe_config(decl)["raylet"] == {"port": 8076}


# --- env file and setup commands ------------------------------------------------------------------------------------
def test_env_file_holds_env_and_base64_setup_commands():
    decl = wu.normalize(worker(env={"HF_TOKEN": "hf secret", "N": 3, "ON": True}, setup_commands=[SEED_GCLOUD]))
    lines = wu.env_file_text(decl).splitlines()
    assert "HF_TOKEN=hf secret" in lines and "N=3" in lines and "ON=true" in lines
    assert "FLEETWARDEN_SETUP_COUNT=1" in lines
    encoded = next(line.split("=", 1)[1] for line in lines if line.startswith("FLEETWARDEN_SETUP_0="))
    assert base64.b64decode(encoded).decode() == SEED_GCLOUD


TRICKY = [
    SEED_GCLOUD.replace("gcloud compute project-info describe", "printf '%s\\n'").replace("/home/ray", "$OUT"),
    "printf '%s|' 'single' \"double\" $(echo sub) '(paren)' [br] 'back\\slash' \"a&&b\" >> \"$OUT/args\"",
    "(cd \"$OUT\" && printf 'x\\n\\n' > trailing)",
    "if [ -n \"$HF_TOKEN\" ]; then echo \"$HF_TOKEN\" > \"$OUT/token\"; fi",
]


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_entrypoint_runs_setup_commands_byte_exact_then_execs_the_worker(tmp_path, shell):
    if not Path(shell).exists():
        pytest.skip(f"{shell} is not installed")
    decl = wu.normalize(worker(env={"HF_TOKEN": "t0k3n", "OUT": str(tmp_path)}, setup_commands=TRICKY))
    env = {"PATH": os.environ["PATH"]}
    for line in wu.env_file_text(decl).splitlines()[1:]:
        key, value = line.split("=", 1)
        env[key] = value
    result = subprocess.run([shell, str(ENTRYPOINT), "sh", "-c", 'echo "worker: $FLEETWARDEN_SETUP_COUNT $0"'],
                            env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    # The worker command ran last, with the setup variables gone.
    assert result.stdout == "worker:  sh\n"
    assert (tmp_path / ".ssh" / "authorized_keys").read_text() == (
        '--format=value(commonInstanceMetadata.items[?key=="ssh-keys"].value)\n')
    assert (tmp_path / "args").read_text() == "single|double|sub|(paren)|[br]|back\\slash|a&&b|"
    assert (tmp_path / "trailing").read_bytes() == b"x\n\n"
    assert (tmp_path / "token").read_text() == "t0k3n\n"


def test_entrypoint_stops_at_a_failing_setup_command_unless_told_to_continue(tmp_path):
    decl = wu.normalize(worker(setup_commands=["exit 7", f"touch {tmp_path}/after"]))
    env = dict(line.split("=", 1) for line in wu.env_file_text(decl).splitlines()[1:])
    env["PATH"] = os.environ["PATH"]
    failed = subprocess.run(["/bin/sh", str(ENTRYPOINT), "true"], env=env, capture_output=True, text=True, check=False)
    assert failed.returncode == 7 and "failed with exit status 7" in failed.stderr
    assert not (tmp_path / "after").exists()
    env["FLEETWARDEN_SETUP_CONTINUE_ON_ERROR"] = "1"
    assert subprocess.run(["/bin/sh", str(ENTRYPOINT), "true"], env=env, check=False).returncode == 0
    assert (tmp_path / "after").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_rendered_unit(tmp_path):
    unit = tmp_path / "fleetwarden-worker-ray-worker.service"
    unit.write_text(rendered(systemd_version=252, restart={"max_per_hour": 3}, setup_commands=[SEED_GCLOUD]))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                            check=False)
    # Missing executables and a missing docker.service on this machine are fine; syntax errors are not.
    syntax = [line for line in result.stderr.splitlines() if "Unknown key" in line or "Failed to parse" in line
              or "Invalid" in line or "bad unit file setting" in line]
    assert syntax == []


def test_parse_systemd_version():
    assert wu.parse_systemd_version("systemd 252 (252.39-1~deb12u2)\n+PAM +AUDIT") == 252
    with pytest.raises(ValueError):
        wu.parse_systemd_version("bash: systemctl: command not found")


def test_declaration_document_names_units_paths_and_digest():
    decl = wu.normalize(worker(probe={"raylet": {"port": 8076}}, ray_head_address="head:6379"), profiles=PROFILES)
    doc = wu.declaration_document(decl, 252, image_id="sha256:abc")
    assert doc["units"] == {"worker": "fleetwarden-worker-ray-worker.service",
                            "probe": "fleetwarden-probe-ray-worker.service", "alert": "fleetwarden-alert@.service"}
    assert doc["container"] == "ray-worker" and doc["ray_head_address"] == "head:6379"
    assert doc["paths"]["env_file"] == "/etc/fleetwarden/workers/ray-worker.env"
    assert doc["probe"]["enabled"] is True and doc["image_id"] == "sha256:abc"
    changed = wu.normalize(worker(probe={"raylet": {"port": 8077}}), profiles=PROFILES)
    assert wu.declaration_digest(changed) != doc["digest"]


# --- the on-host declarations, as recovery and the tools read them back -----------------------------------------
def test_read_declarations_returns_each_worker_without_env_values_or_setup_commands(tmp_path):
    decl = wu.normalize(worker(env={"HF_TOKEN": "hf_secretvalue123456789"}, setup_commands=["echo s3cret"]))
    doc = wu.declaration_document(decl, 252)
    (tmp_path / "ray-worker.json").write_text(json.dumps(doc))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"name": "someone-else", "image": "x"}')
    (tmp_path / "notes.txt").write_text("ignored")
    workers, errors = ws.read_declarations(str(tmp_path))
    assert [w["name"] for w in workers] == ["ray-worker"]
    assert workers[0]["env_names"] == ["HF_TOKEN"] and workers[0]["setup_command_count"] == 1
    assert "hf_secretvalue" not in str(workers) and "s3cret" not in str(workers)
    assert workers[0]["units"]["worker"] == "fleetwarden-worker-ray-worker.service"
    assert len(errors) == 2 and any("broken.json: cannot read it" in e for e in errors)
    assert any("other.json: not a worker declaration" in e for e in errors)


def test_read_declarations_of_a_host_without_workers_is_empty(tmp_path):
    assert ws.read_declarations(str(tmp_path / "missing")) == ([], [])


def test_unpullable_names_host_worker_and_image_in_one_line():
    workers = [worker(name="a", image="x/a:1", pull="never"), worker(name="b", image="x/b:1"),
               worker(name="c", image="x/c:1", state="absent", pull="never")]
    assert wu.unpullable_errors(workers, ["x/a:1", "x/b:1", "x/c:1"], "missing", "gpu-1") == [
        "gpu-1: worker a needs image x/a:1, which is not on the host, and its pull policy is never"]
    assert wu.unpullable_errors(workers, ["x/b:1"], "never", "gpu-1") == [
        "gpu-1: worker b needs image x/b:1, which is not on the host, and its pull policy is never"]


def test_an_env_value_with_a_carriage_return_is_refused_without_printing_it():
    errors = wu.worker_errors(worker(env={"HF_TOKEN": "abc123\r"}))
    assert any("env HF_TOKEN holds a newline, carriage return or NUL" in e for e in errors)
    assert not any("abc123" in e for e in errors)
