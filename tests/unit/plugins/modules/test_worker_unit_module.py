"""Unit tests for the worker_unit module: main() writing into tmp_path, with a fake systemctl and docker."""

import json
import stat

import pytest
from ansible_collections.fleetwarden.fleet.plugins.modules import worker_unit

WORKER = {"name": "trainer", "image": "fleet/trainer:1.4", "command": ["python3", "-m", "trainer"],
          "setup_commands": ["mkdir -p /data/ckpt"], "probe": {"heartbeat": {"path": "/tmp/hb", "max_age": 30}}}
SECRET = "hf_SuperSecretToken"  # noqa: S105 - a fake token, to prove it never leaks


@pytest.fixture
def run_module(run_main):
    def run(tmp_path, worker=None, env=None, check_mode=False, diff=False, image_id="sha256:1111", **params):
        args = dict(worker=worker or WORKER, env={"HF_TOKEN": SECRET} if env is None else env,
                    unit_dir=str(tmp_path / "units"),
                    paths={"config_dir": str(tmp_path / "workers")}, profiles={"cpu": {}, "gpu": {}, "tpu": {}},
                    **params)
        (tmp_path / "units").mkdir(exist_ok=True)
        calls = []

        def run_command(self, argv, **_kwargs):
            calls.append(argv)
            if argv[:2] == ["systemctl", "--version"]:
                return 0, "systemd 252 (252.39-1~deb12u2)\n", ""
            if argv[1:3] == ["image", "inspect"]:
                return (0, image_id + "\n", "") if image_id else (1, "", "No such image")
            return 0, "", ""

        def get_bin_path(self, name, required=False, opt_dirs=None):  # the host's docker is in /usr/bin
            return name if name.startswith("/") else "/usr/bin/" + name

        result = run_main(worker_unit, args, check_mode=check_mode, diff=diff, run_command=run_command,
                          get_bin_path=get_bin_path)
        result["_calls"] = calls
        return result
    return run


def test_first_run_writes_units_env_and_declaration_with_private_modes(tmp_path, run_module):
    result = run_module(tmp_path)
    assert result["changed"] and result["restart_required"] and result["daemon_reload_required"]
    assert result["unit"] == "fleetwarden-worker-trainer.service"
    assert result["probe_unit"] == "fleetwarden-probe-trainer.service"
    env_file = tmp_path / "workers" / "trainer.env"
    declaration = tmp_path / "workers" / "trainer.json"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(declaration.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "workers").stat().st_mode) == 0o700
    assert f"HF_TOKEN={SECRET}" in env_file.read_text()
    doc = json.loads(declaration.read_text())
    assert doc["image_id"] == "sha256:1111" and doc["systemd_version"] == 252
    assert doc["probe"]["heartbeat"] == {"path": "/tmp/hb", "max_age": 30}
    unit = (tmp_path / "units" / "fleetwarden-worker-trainer.service").read_text()
    assert SECRET not in unit and f"--env-file {tmp_path}/workers/trainer.env" in unit
    assert (tmp_path / "units" / "fleetwarden-probe-trainer.service").exists()


def test_secrets_never_reach_the_result_or_the_diff(tmp_path, run_module):
    result = run_module(tmp_path, diff=True)
    text = json.dumps({k: v for k, v in result.items() if k != "_calls"})
    assert SECRET not in text
    assert result["declaration"]["env"] == {"HF_TOKEN": "********"}
    assert all("trainer.env" not in d["after_header"] for d in result["diff"])
    # A later change shows the old declaration masked too.
    result = run_module(tmp_path, env={"HF_TOKEN": SECRET + "2"}, diff=True)
    assert SECRET not in json.dumps(result["diff"])


def test_an_unchanged_rerun_changes_nothing(tmp_path, run_module):
    run_module(tmp_path)
    result = run_module(tmp_path)
    assert not result["changed"] and not result["restart_required"] and result["files"] == []


@pytest.mark.parametrize(("change", "files"), [
    ({"env": {"HF_TOKEN": "other"}}, ["trainer.env", "trainer.json"]),
    # The container's declaration label changes with setup commands, so the unit does too.
    ({"worker": dict(WORKER, setup_commands=["mkdir -p /data/other"])},
     ["trainer.env", "trainer.json", "worker-trainer.service"]),
    ({"worker": dict(WORKER, command=["python3", "-m", "trainer", "--fast"])},
     ["worker-trainer.service", "trainer.json"]),
    ({"image_id": "sha256:2222"}, ["trainer.json"]),
])
def test_a_change_to_the_declaration_requires_a_restart(tmp_path, change, files, run_module):
    run_module(tmp_path)
    result = run_module(tmp_path, **change)
    assert result["restart_required"]
    assert sorted(path.rsplit("/", 1)[1].replace("fleetwarden-", "") for path in result["files"]) == sorted(files)


def test_check_mode_reports_without_writing(tmp_path, run_module):
    result = run_module(tmp_path, check_mode=True)
    assert result["changed"] and result["restart_required"]
    assert not (tmp_path / "units" / "fleetwarden-worker-trainer.service").exists()


def test_a_bad_declaration_fails_before_writing_anything(tmp_path, run_module):
    result = run_module(tmp_path, worker=dict(WORKER, restart={"max_per_hour": 0}))
    assert result["failed"] and "restart.max_per_hour" in result["msg"]
    assert not (tmp_path / "workers").exists()


def test_the_units_and_the_worker_tool_run_the_docker_cli_the_option_names(tmp_path, run_module):
    result = run_module(tmp_path, docker_cli="/opt/docker-ce/bin/docker")
    unit = (tmp_path / "units" / "fleetwarden-worker-trainer.service").read_text()
    probe = (tmp_path / "units" / "fleetwarden-probe-trainer.service").read_text()
    assert "ExecStartPre=-/opt/docker-ce/bin/docker rm --force trainer" in unit
    for text in (unit, probe):
        assert "Environment=FLEETWARDEN_DOCKER=/opt/docker-ce/bin/docker" in text.splitlines()
    assert ["/opt/docker-ce/bin/docker", "image", "inspect", "--format", "{{.Id}}", "fleet/trainer:1.4"] in (
        result["_calls"])
    declaration = json.loads((tmp_path / "workers" / "trainer.json").read_text())
    assert declaration["docker_argv"][0] == "/opt/docker-ce/bin/docker"


def test_removing_the_probe_removes_its_unit(tmp_path, run_module):
    run_module(tmp_path)
    result = run_module(tmp_path, worker=dict(WORKER, probe={}))
    assert result["probe_unit"] is None and result["daemon_reload_required"]
    assert not (tmp_path / "units" / "fleetwarden-probe-trainer.service").exists()


def test_absent_stops_the_units_removes_the_container_and_the_files(tmp_path, run_module):
    run_module(tmp_path)
    result = run_module(tmp_path, worker={"name": "trainer", "state": "absent"})
    assert result["changed"]
    assert ["systemctl", "disable", "--now", "fleetwarden-worker-trainer.service"] in result["_calls"]
    assert ["/usr/bin/docker", "rm", "--force", "trainer"] in result["_calls"]
    assert not list((tmp_path / "workers").iterdir()) and not list((tmp_path / "units").iterdir())
    assert not run_module(tmp_path, worker={"name": "trainer", "state": "absent"})["changed"]
