"""Unit tests for plugins/module_utils/_incident.py: redacting docker inspect, the death history, retention."""

import json

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _incident

TOKEN = "hf_abcdefghijklmnopqrstuvwx"  # noqa: S105 - a fake token, to prove it is redacted


def test_secrets_of_every_inspected_container_redact_its_env_args_cmd_and_entrypoint():
    inspect = [{"Args": ["--token", TOKEN, 3], "Config": {"Env": ["HF_TOKEN=" + TOKEN, "LANG=C.UTF-8"],
                                                         "Cmd": ["login", "--token=" + TOKEN],
                                                         "Entrypoint": ["/bin/sh", "-c", "echo " + TOKEN]}},
               {"Config": {"Env": None, "Cmd": None}}]
    secrets = _incident.inspect_secrets(inspect)
    assert TOKEN in secrets
    redacted = _incident.redact_inspect(inspect, secrets)
    assert TOKEN not in json.dumps(redacted)
    assert redacted[0]["Config"]["Env"] == ["HF_TOKEN=<redacted>", "LANG=C.UTF-8"]
    assert redacted[0]["Args"][0] == "--token" and redacted[0]["Args"][2] == 3
    assert redacted[1] == {"Config": {"Env": None, "Cmd": None}}


def test_anything_but_a_list_of_containers_has_no_secrets_and_is_left_alone():
    assert _incident.inspect_secrets({"message": "no such container"}) == []
    assert _incident.redact_inspect({"message": "x"}, [TOKEN]) == {"message": "x"}


def test_merge_history_adds_a_death_once_and_drops_expired_and_malformed_records():
    now = 10000.0
    record = {"cause": "sigkill", "at": 9990.0, "container_id": "c1"}
    history = {"w": [{"cause": "oom_killed", "at": 100.0}, "junk", {"cause": "x"}, {"cause": "y", "at": 9000.0}],
               "other": [{"cause": "sigkill", "at": 1.0}]}
    records = _incident.merge_history(history, "w", record, now, 3600)
    assert records == [{"cause": "y", "at": 9000.0}, record] == history["w"]
    assert _incident.merge_history(history, "w", dict(record), now, 3600) == records
    assert _incident.merge_history(history, "w", dict(record, container_id="c2"), now, 3600)[-1]["container_id"] == "c2"
    assert history["other"] == [{"cause": "sigkill", "at": 1.0}]
    assert _incident.merge_history({}, "new", None, now, 3600) == []


def test_retention_removes_the_oldest_beyond_keep_whatever_the_listing_order():
    names = ["20250301T000000Z", "20250101T000000Z", "20250305T140010Z", "20250201T000000Z"]
    assert _incident.incidents_to_remove(names, 2) == ["20250101T000000Z", "20250201T000000Z"]
    assert _incident.incidents_to_remove(names, 4) == []
    assert _incident.incidents_to_remove(names[:1], 1) == []


def test_histories_from_the_hosts_history_file():
    records = {"ray-worker": [{"cause": "oom_killed", "at": 5.0, "container_id": "x"}, "junk"], "other": "junk"}
    assert _incident.parse_histories(json.dumps(records)) == {
        "ray-worker": [{"cause": "oom_killed", "at": 5.0, "container_id": "x"}]}


@pytest.mark.parametrize("text", ["", "  ", "not json", "[]", "null"])
def test_a_missing_or_broken_history_is_empty(text):
    assert _incident.parse_histories(text) == {}
