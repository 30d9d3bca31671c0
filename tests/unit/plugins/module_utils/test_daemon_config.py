"""Unit tests for plugins/module_utils/_daemon_config.py: daemon.json merge, validation and log-opts drift."""

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _daemon_config as dc

ROLE_SETTINGS = {
    "log-driver": "json-file",
    "log-opts": {"max-size": "500m", "max-file": 3, "compress": True},
    "live-restore": True,
}


@pytest.mark.parametrize(("text", "expected"), [
    ("500m", 500_000_000),
    ("500M", 500_000_000),
    ("1g", 1_000_000_000),
    ("10MB", 10_000_000),
    ("2KiB", 2_000),
    ("1.5g", 1_500_000_000),
    ("500 m", 500_000_000),
    ("100", 100),
    (4096, 4096),
])
def test_parse_size_accepts_what_dockerd_accepts(text, expected):
    assert dc.parse_size(text) == expected


@pytest.mark.parametrize("text", ["500x", "", "m", "-1", "0", "0m", "1mm", "5 00m", "1e3", None, True, [], "1,5g"])
def test_parse_size_rejects_what_dockerd_refuses(text):
    with pytest.raises(ValueError):
        dc.parse_size(text)


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("1", True), ("T", True), ("False", False),
                                                ("0", False), ("f", False)])
def test_parse_go_bool(text, expected):
    assert dc.parse_go_bool(text) is expected


@pytest.mark.parametrize("text", ["yes", "on", "", "TrUe", "2"])
def test_parse_go_bool_rejects_what_strconv_refuses(text):
    with pytest.raises(ValueError):
        dc.parse_go_bool(text)


def test_load_empty_file_is_empty_config():
    assert dc.load_daemon_config("") == {}
    assert dc.load_daemon_config(" \n") == {}


@pytest.mark.parametrize(("text", "fragment"), [("{not json", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_load_rejects_what_is_not_a_json_object(text, fragment):
    with pytest.raises(dc.DaemonConfigError) as raised:
        dc.load_daemon_config(text)
    assert fragment in str(raised.value)


def test_merge_sets_owned_keys_and_keeps_the_others():
    current = {"debug": False, "data-root": "/data/docker", "log-opts": {"max-size": "10m"}, "live-restore": False}
    merged = dc.merge_daemon_config(current, ROLE_SETTINGS)
    assert merged == {
        "debug": False,
        "data-root": "/data/docker",
        "log-driver": "json-file",
        "log-opts": {"max-size": "500m", "max-file": "3", "compress": "true"},
        "live-restore": True,
    }
    assert current["log-opts"] == {"max-size": "10m"}, "the input must not be mutated"


def test_merge_keeps_other_runtimes():
    current = {"runtimes": {"kata": {"path": "/usr/bin/kata-runtime"}}}
    merged = dc.merge_daemon_config(current, {"runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime"}}})
    assert sorted(merged["runtimes"]) == ["kata", "nvidia"]
    replaced = dc.merge_daemon_config(current, {"runtimes": {"nvidia": {"path": "/x"}}}, merge_keys=())
    assert sorted(replaced["runtimes"]) == ["nvidia"]


def test_merge_with_none_removes_a_key():
    assert dc.merge_daemon_config({"debug": True, "icc": False}, {"debug": None}) == {"icc": False}


def test_normalize_log_opts_writes_strings():
    assert dc.normalize_log_opts({"max-file": 3, "compress": False, "max-size": "1g"}) == {
        "max-file": "3", "compress": "false", "max-size": "1g"}


def test_role_defaults_are_valid():
    assert dc.validate_daemon_config(dc.merge_daemon_config({}, ROLE_SETTINGS)) == []


def test_a_full_realistic_config_is_valid():
    config = dc.merge_daemon_config({
        "debug": False, "data-root": "/var/lib/docker", "storage-driver": "overlay2", "log-level": "warn",
        "registry-mirrors": ["https://mirror.gcr.io"], "max-concurrent-downloads": 6, "exec-opts": [],
        "runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime", "runtimeArgs": []}},
        "default-runtime": "nvidia",
    }, ROLE_SETTINGS)
    assert dc.validate_daemon_config(config) == []


@pytest.mark.parametrize(("config", "key"), [
    ({"log-opts": {"max-size": "500x"}}, "log-opts.max-size"),
    ({"log-opts": {"max-size": "0"}}, "log-opts.max-size"),
    ({"log-opts": {"max-file": "0"}}, "log-opts.max-file"),
    ({"log-opts": {"max-file": "three"}}, "log-opts.max-file"),
    ({"log-opts": {"max-file": 3}}, "log-opts.max-file"),  # a JSON number: dockerd refuses to start
    ({"log-opts": {"compress": "yes"}}, "log-opts.compress"),
    ({"log-opts": {"compress": "true", "max-size": "1m", "max-file": "1"}}, "log-opts.compress"),
    ({"log-opts": {"compress": "true", "max-file": "3"}}, "log-opts.compress"),
    ({"log-opts": {"max-sise": "1m"}}, "log-opts.max-sise"),
    ({"log-driver": "journald", "log-opts": {"max-size": "1m"}}, "log-opts.max-size"),
    ({"log-driver": "bogus"}, "log-driver"),
    ({"log-driver": "json-file", "log-opts": ["max-size=1m"]}, "log-opts"),
    ({"live-restore": "true"}, "live-restore"),
    ({"debug": 1}, "debug"),
    ({"log-level": "loud"}, "log-level"),
    ({"data-root": 5}, "data-root"),
    ({"registry-mirrors": "https://mirror"}, "registry-mirrors"),
    ({"max-concurrent-downloads": "6"}, "max-concurrent-downloads"),
    ({"runtimes": {"nvidia": "/usr/bin/nvidia-container-runtime"}}, "runtimes.nvidia"),
    ({"runtimes": {"nvidia": {"path": "/x", "runtimeArgs": "--debug"}}}, "runtimes.nvidia.runtimeArgs"),
    ({"runtimes": {"nvidia": {"path": "/x", "args": []}}}, "runtimes.nvidia.args"),
    ({"runtimes": []}, "runtimes"),
    ({"default-runtime": "nvidia"}, "default-runtime"),
])
def test_validation_names_the_bad_key(config, key):
    errors = dc.validate_daemon_config(config)
    assert errors, config
    assert any(error.startswith(key + ":") for error in errors), errors


def test_validation_reports_every_bad_key():
    errors = dc.validate_daemon_config({"log-opts": {"max-size": "1x", "max-file": "0"}, "live-restore": "yes"})
    assert [error.split(":")[0] for error in errors] == ["live-restore", "log-opts.max-size", "log-opts.max-file"]


def test_a_bad_size_is_reported_once_not_again_as_a_compress_problem():
    errors = dc.validate_daemon_config(dc.merge_daemon_config({}, dict(ROLE_SETTINGS, **{
        "log-opts": {"max-size": "500x", "max-file": 3, "compress": True}})))
    assert [error.split(":")[0] for error in errors] == ["log-opts.max-size"]


def test_remote_log_drivers_options_are_not_second_guessed():
    assert dc.validate_daemon_config({"log-driver": "gelf", "log-opts": {"gelf-address": "udp://1.2.3.4:12201"}}) == []


@pytest.mark.parametrize(("before", "after", "keys", "restart"), [
    ({}, {"debug": True}, ["debug"], False),
    ({"live-restore": False}, {"live-restore": True}, ["live-restore"], False),
    ({}, {"runtimes": {"nvidia": {"path": "/x"}}}, ["runtimes"], False),
    ({"log-opts": {"max-file": "3"}}, {"log-opts": {"max-file": "2"}}, ["log-opts"], True),
    ({"a": 1, "debug": False}, {"debug": True}, ["a", "debug"], True),
    ({"debug": False}, {"debug": False}, [], False),
])
def test_changed_keys_and_restart_required(before, after, keys, restart):
    assert dc.changed_keys(before, after) == keys
    assert dc.restart_required(keys) is restart


def test_render_is_stable_and_ends_with_a_newline():
    text = dc.render_daemon_config({"live-restore": True, "debug": False})
    assert text == '{\n  "debug": false,\n  "live-restore": true\n}\n'
    assert dc.load_daemon_config(text) == {"debug": False, "live-restore": True}


def _container(name, driver, opts):
    return {"Id": name * 8, "Name": "/" + name, "HostConfig": {"LogConfig": {"Type": driver, "Config": opts}}}


def test_containers_with_other_log_opts():
    config = dc.merge_daemon_config({}, ROLE_SETTINGS)
    same = _container("same", "json-file", {"max-size": "500m", "max-file": "3", "compress": "true"})
    older = _container("older", "json-file", {"max-size": "10m"})
    journald = _container("journald", "journald", {})
    drifted = dc.containers_with_other_log_opts([same, older, journald], config)
    assert [container["name"] for container in drifted] == ["older", "journald"]
    assert drifted[0] == {"id": "older" * 8, "name": "older", "log_driver": "json-file",
                          "log_opts": {"max-size": "10m"}}


def test_containers_under_a_config_without_log_keys():
    assert dc.containers_with_other_log_opts([_container("plain", "json-file", {})], {}) == []
    assert dc.containers_with_other_log_opts([{"Id": "x", "HostConfig": {}}], {}) == []
