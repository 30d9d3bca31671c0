"""Unit tests for the docker_daemon_config module: main() against a daemon.json in tmp_path."""

import hashlib
import json
from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible_collections.fleetwarden.fleet.plugins.modules import docker_daemon_config

SETTINGS = {"log-driver": "json-file", "log-opts": {"max-size": "500m", "max-file": 3, "compress": True},
            "live-restore": True}


@pytest.fixture
def run_module(run_main):
    def run(params, check_mode=False, diff=False, docker=None):
        """Run main(); ``docker`` maps an argv tuple prefix to (rc, stdout, stderr) for the fake CLI."""
        calls = []

        def run_command(self, argv, **_kwargs):
            calls.append(argv)
            for prefix, answer in (docker or {}).items():
                if tuple(argv[1:len(prefix) + 1]) == prefix:
                    return answer
            return 1, "", "Cannot connect to the Docker daemon"

        result = run_main(docker_daemon_config, params, check_mode=check_mode, diff=diff, run_command=run_command,
                          get_bin_path=lambda self, name, *a, **k: "/usr/bin/" + name)
        result["_calls"] = calls
        return result
    return run


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def daemon_json(tmp_path):
    path = tmp_path / "docker" / "daemon.json"
    path.parent.mkdir()
    path.write_text('{"debug": false, "live-restore": false, "log-opts": {"max-size": "10m"}}')
    return path


def test_merge_writes_owned_keys_and_keeps_the_others(daemon_json, run_module):
    result = run_module({"path": str(daemon_json), "settings": SETTINGS})
    assert result["changed"] is True
    assert result["changed_keys"] == ["live-restore", "log-driver", "log-opts"]
    assert result["restart_required"] is True
    written = json.loads(daemon_json.read_text())
    assert written == {"debug": False, "live-restore": True, "log-driver": "json-file",
                       "log-opts": {"compress": "true", "max-file": "3", "max-size": "500m"}}
    assert result["after"] == written
    assert not [p for p in daemon_json.parent.iterdir() if p.name != "daemon.json"], "temporary file left behind"


def test_second_run_changes_nothing(daemon_json, run_module):
    run_module({"path": str(daemon_json), "settings": SETTINGS})
    before = digest(daemon_json)
    result = run_module({"path": str(daemon_json), "settings": SETTINGS})
    assert result["changed"] is False
    assert result["changed_keys"] == []
    assert result["restart_required"] is False
    assert digest(daemon_json) == before


def test_same_content_in_another_layout_is_not_rewritten(daemon_json, run_module):
    daemon_json.write_text('{"live-restore":true,"log-driver":"json-file",'
                           '"log-opts":{"compress":"true","max-file":"3","max-size":"500m"}}')
    before = digest(daemon_json)
    assert run_module({"path": str(daemon_json), "settings": SETTINGS})["changed"] is False
    assert digest(daemon_json) == before


def test_missing_file_is_created_with_mode_0644(tmp_path, run_module):
    path = tmp_path / "etc" / "docker" / "daemon.json"
    result = run_module({"path": str(path), "settings": {"live-restore": True}})
    assert result["changed"] is True and result["before"] == {}
    assert json.loads(path.read_text()) == {"live-restore": True}
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_check_mode_reports_and_diffs_without_writing(daemon_json, run_module):
    before = digest(daemon_json)
    result = run_module({"path": str(daemon_json), "settings": SETTINGS}, check_mode=True, diff=True)
    assert result["changed"] is True
    assert digest(daemon_json) == before
    assert '"live-restore": false' in result["diff"]["before"]
    assert '"live-restore": true' in result["diff"]["after"]
    assert json.loads(result["diff"]["after"])["log-opts"]["max-file"] == "3"


@pytest.mark.parametrize(("settings", "key"), [
    ({"log-opts": {"max-size": "500x"}}, "log-opts.max-size"),
    ({"log-driver": "bogus"}, "log-driver"),
    ({"live-restore": "yes"}, "live-restore"),
])
def test_invalid_result_fails_naming_the_key_and_leaves_the_file_untouched(daemon_json, settings, key, run_module):
    before = digest(daemon_json)
    result = run_module({"path": str(daemon_json), "settings": settings})
    assert result["failed"] is True
    assert key + ":" in result["msg"]
    assert "was not written" in result["msg"]
    assert digest(daemon_json) == before


def test_unparsable_file_fails_without_overwriting(daemon_json, run_module):
    daemon_json.write_text("{broken")
    result = run_module({"path": str(daemon_json), "settings": SETTINGS})
    assert result["failed"] is True
    assert "not valid JSON" in result["msg"]
    assert daemon_json.read_text() == "{broken"


def test_running_containers_with_other_log_opts_are_reported_and_warned(daemon_json, run_module):
    inspected = [
        {"Id": "a" * 64, "Name": "/ray-worker",
         "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}}}},
        {"Id": "b" * 64, "Name": "/fresh",
         "HostConfig": {"LogConfig": {"Type": "json-file",
                                      "Config": {"max-size": "500m", "max-file": "3", "compress": "true"}}}},
    ]
    docker = {("ps",): (0, "a" * 64 + "\n" + "b" * 64 + "\n", ""), ("inspect",): (0, json.dumps(inspected), "")}
    with mock.patch.object(basic.AnsibleModule, "warn") as warn:
        result = run_module({"path": str(daemon_json), "settings": SETTINGS}, docker=docker)
    assert result["containers_checked"] is True
    assert [c["name"] for c in result["containers_with_other_log_opts"]] == ["ray-worker"]
    assert warn.call_count == 1
    assert "ray-worker" in warn.call_args[0][0]
    assert ["/usr/bin/docker", "inspect", "a" * 64, "b" * 64] in result["_calls"]


def test_no_daemon_means_containers_not_checked(daemon_json, run_module):
    result = run_module({"path": str(daemon_json), "settings": SETTINGS})
    assert result["containers_checked"] is False
    assert result["containers_with_other_log_opts"] == []


def test_container_check_can_be_switched_off(daemon_json, run_module):
    result = run_module({"path": str(daemon_json), "settings": SETTINGS, "check_containers": False})
    assert result["_calls"] == []
    assert result["containers_checked"] is False


def test_the_docker_cli_option_names_the_cli_it_runs(daemon_json, run_module):
    result = run_module({"path": str(daemon_json), "settings": SETTINGS, "docker_cli": "podman"})
    assert result["_calls"] == [["/usr/bin/podman", "ps", "--quiet", "--no-trunc"]]
