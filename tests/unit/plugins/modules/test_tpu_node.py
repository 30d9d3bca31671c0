"""Unit tests for the fleetwarden.fleet.tpu_node module, on recorded Cloud TPU v2 responses."""

import json
from pathlib import Path

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils._gcp import ApiCaller, build_service
from ansible_collections.fleetwarden.fleet.plugins.module_utils._tpu import node_spec
from ansible_collections.fleetwarden.fleet.plugins.modules import tpu_node
from googleapiclient.http import HttpMockSequence

GCP = Path(__file__).resolve().parents[3] / "fixtures" / "gcp"
NODE = "projects/fw-ml-prod/locations/us-central2-b/nodes/train-v4-8-c"
DEFAULTS = {
    "name": "train-v4-8-c",
    "project": "fw-ml-prod",
    "zone": "us-central2-b",
    "state": "present",
    "force": False,
    "accelerator_type": None,
    "runtime_version": None,
    "provisioning_model": None,
    "network": None,
    "subnetwork": None,
    "enable_external_ips": None,
    "labels": None,
    "metadata": None,
    "tags": None,
    "description": None,
    "wait": True,
    "timeout": 1800,
    "poll_interval": 10,
}


def ok(relative):
    return ({"status": "200"}, (GCP / relative).read_text())


def not_found():
    return ({"status": "404"}, (GCP / "errors/404_node_not_found_tpu.json").read_text())


def recorded(relative):
    return json.loads((GCP / relative).read_text())


class Failed(Exception):
    def __init__(self, result):
        super().__init__(result["msg"])
        self.result = result


class FakeModule:
    def __init__(self, check_mode=False, **params):
        self.params = dict(DEFAULTS, **params)
        self.check_mode = check_mode

    def fail_json(self, **result):
        raise Failed(result)


@pytest.fixture
def run(clock):
    """``run(responses, check_mode=False, **params)`` -> (the manager's result, the http mock, the clock)."""

    def run_manager(responses, check_mode=False, **params):
        http = HttpMockSequence(list(responses))
        caller = ApiCaller(lambda: http, sleep=clock.sleep)
        manager = tpu_node.TpuNodeManager(
            FakeModule(check_mode, **params), build_service("tpu", "v2", http), caller, sleep=clock.sleep, clock=clock
        )
        return manager.run(), http, clock

    return run_manager


def calls(http):
    prefix = "https://tpu.googleapis.com/v2/"
    return [(method, uri.split("?")[0].replace(prefix, "")) for uri, method, _, _ in http.request_sequence]


RECREATE = [
    ok("tpu/node_preempted.json"),
    ok("tpu/op_delete_running.json"),
    ok("tpu/op_delete_done.json"),
    ok("tpu/op_create_running.json"),
    ok("tpu/op_create_done.json"),
    ok("tpu/node_ready.json"),
]
OPERATION = recorded("tpu/op_delete_running.json")["name"]


def test_recreated_deletes_and_creates_a_preempted_spot_node_with_the_same_spec(run):
    result, http, clock = run(RECREATE, state="recreated")
    assert result["changed"] is True
    assert result["actions"] == ["delete", "create"]
    assert calls(http) == [
        ("GET", NODE),
        ("DELETE", NODE),
        ("GET", OPERATION),
        ("POST", "projects/fw-ml-prod/locations/us-central2-b/nodes"),
        ("GET", OPERATION),
        ("GET", NODE),
    ]
    create_uri, _, create_body, _ = http.request_sequence[3]
    assert "nodeId=train-v4-8-c" in create_uri
    sent = json.loads(create_body)
    assert sent == node_spec(recorded("tpu/node_preempted.json"))
    assert sent["acceleratorType"] == "v4-8"
    assert sent["runtimeVersion"] == "tpu-ubuntu2204-base"
    assert sent["schedulingConfig"] == {"spot": True}
    assert sent["labels"] == {"fleet": "ray", "team": "ml"}
    assert "startup-script" in sent["metadata"]
    assert sent["networkConfig"]["subnetwork"].endswith("/subnetworks/default")
    assert result["node"]["state"] == "READY"
    assert result["operations"] == [OPERATION, OPERATION]
    assert clock.sleeps == [10, 10]
    assert result["diff"]["before"] == {"state": "PREEMPTED", "spec": sent}
    assert result["diff"]["after"] == {"state": "READY", "spec": sent}


QR_NODE = "projects/fw-ml-prod/locations/us-central2-b/nodes/qr-v4-16-e"
QUEUED_RESOURCE = "projects/fw-ml-prod/locations/us-central2-b/queuedResources/qr-v4-16-e"


def test_a_node_a_queued_resource_owns_is_recreated_through_the_queued_resource(run):
    """nodes.create would make a plain on-demand-shaped node and lose the queued request."""
    responses = [
        ok("tpu/node_preempted_queued.json"),
        ok("tpu/queued_resource_suspended.json"),
        ok("tpu/op_queued_delete_done.json"),
        ok("tpu/op_queued_create_done.json"),
        not_found(),  # the node itself comes back when the queued resource is served
    ]
    result, http, _ = run(responses, state="recreated", name="qr-v4-16-e")
    assert result["actions"] == ["delete_queued_resource", "create_queued_resource"]
    assert result["queued_resource"] == QUEUED_RESOURCE
    assert calls(http) == [
        ("GET", QR_NODE),
        ("GET", QUEUED_RESOURCE),
        ("DELETE", QUEUED_RESOURCE),
        ("POST", "projects/fw-ml-prod/locations/us-central2-b/queuedResources"),
        ("GET", QR_NODE),
    ]
    assert "force=true" in http.request_sequence[2][0]
    create_uri, _, create_body, _ = http.request_sequence[3]
    assert "queuedResourceId=qr-v4-16-e" in create_uri
    sent = json.loads(create_body)
    original = recorded("tpu/queued_resource_suspended.json")
    assert sent["tpu"] == original["tpu"]
    assert sent["spot"] == {}
    # Output fields and an absolute deadline that has passed are not sent back; the duration is.
    assert sorted(sent) == ["queueingPolicy", "spot", "tpu"]
    assert sent["queueingPolicy"] == {"validUntilDuration": "21600s"}
    assert not any(call == ("POST", "projects/fw-ml-prod/locations/us-central2-b/nodes") for call in calls(http))


def test_check_mode_plans_a_queued_resource_recreate_without_changing_anything(run):
    responses = [ok("tpu/node_preempted_queued.json"), ok("tpu/queued_resource_suspended.json")]
    result, http, _ = run(responses, check_mode=True, state="recreated", name="qr-v4-16-e")
    assert result["actions"] == ["delete_queued_resource", "create_queued_resource"]
    assert [method for method, _ in calls(http)] == ["GET", "GET"]
    assert result["diff"]["after"]["state"] == "QUEUED"


def test_recreated_leaves_a_ready_node_alone(run):
    result, http, _ = run([ok("tpu/node_ready.json")], state="recreated")
    assert result["changed"] is False
    assert result["actions"] == []
    assert "diff" not in result
    assert calls(http) == [("GET", NODE)]


def test_recreated_with_force_rebuilds_a_ready_node(run):
    responses = [
        ok("tpu/node_ready.json"),
        ok("tpu/op_delete_done.json"),
        ok("tpu/op_create_done.json"),
        ok("tpu/node_ready.json"),
    ]
    result, http, clock = run(responses, state="recreated", force=True)
    assert result["actions"] == ["delete", "create"]
    assert clock.sleeps == []  # both operations came back done
    assert [method for method, _ in calls(http)] == ["GET", "DELETE", "POST", "GET"]


def test_check_mode_reports_the_plan_and_changes_nothing(run):
    result, http, _ = run([ok("tpu/node_preempted.json")], check_mode=True, state="recreated")
    assert result["changed"] is True
    assert result["actions"] == ["delete", "create"]
    assert result["operations"] == []
    assert result["node"]["state"] == "PREEMPTED"
    assert result["spec"]["acceleratorType"] == "v4-8"
    assert result["diff"]["before"]["state"] == "PREEMPTED"
    assert calls(http) == [("GET", NODE)]


def test_restarted_refuses_a_preempted_node(run):
    with pytest.raises(Failed) as failed:
        run([ok("tpu/node_preempted.json")], state="restarted")
    assert "is PREEMPTED" in failed.value.result["msg"]
    assert "use state=recreated" in failed.value.result["msg"]


def test_restarted_stops_and_starts_a_ready_node(run):
    responses = [
        ok("tpu/node_ready.json"),
        ok("tpu/op_stop_done.json"),
        ok("tpu/op_start_done.json"),
        ok("tpu/node_ready.json"),
    ]
    result, http, _ = run(responses, state="restarted")
    assert result["actions"] == ["stop", "start"]
    assert calls(http)[1:3] == [("POST", NODE + ":stop"), ("POST", NODE + ":start")]


def test_restarted_only_starts_a_stopped_node(run):
    responses = [ok("tpu/node_stopped.json"), ok("tpu/op_start_done.json"), ok("tpu/node_ready.json")]
    result, http, _ = run(responses, state="restarted")
    assert result["actions"] == ["start"]
    assert calls(http)[1] == ("POST", NODE + ":start")


def test_restarted_fails_for_a_missing_node(run):
    with pytest.raises(Failed, match="does not exist"):
        run([not_found()], state="restarted")


def test_absent_deletes_an_existing_node(run):
    result, _http, _ = run([ok("tpu/node_ready.json"), ok("tpu/op_delete_done.json"), not_found()], state="absent")
    assert result["actions"] == ["delete"]
    assert result["node"] == {}
    assert result["diff"]["after"]["state"] == "absent"


def test_absent_is_idempotent(run):
    result, http, _ = run([not_found()], state="absent")
    assert result["changed"] is False
    assert len(http.request_sequence) == 1


def test_present_creates_a_missing_node_from_the_options(run):
    responses = [not_found(), ok("tpu/op_create_done.json"), ok("tpu/node_ready.json")]
    result, http, _ = run(
        responses,
        accelerator_type="v4-8",
        runtime_version="tpu-ubuntu2204-base",
        provisioning_model="SPOT",
        labels={"fleet": "ray"},
    )
    assert result["actions"] == ["create"]
    assert json.loads(http.request_sequence[1][2]) == {
        "acceleratorType": "v4-8",
        "runtimeVersion": "tpu-ubuntu2204-base",
        "labels": {"fleet": "ray"},
        "schedulingConfig": {"spot": True},
    }


def test_present_needs_a_spec_to_create(run):
    with pytest.raises(Failed, match="needs accelerator_type and runtime_version"):
        run([not_found()])


def test_present_leaves_an_existing_node_alone(run):
    result, _, _ = run([ok("tpu/node_preempted.json")], accelerator_type="v5p-8", runtime_version="x")
    assert result["changed"] is False


def test_a_failed_operation_fails_with_its_message(run):
    responses = [ok("tpu/node_preempted.json"), ok("tpu/op_delete_done.json"), ok("tpu/op_create_error.json")]
    with pytest.raises(Failed) as failed:
        run(responses, state="recreated")
    assert failed.value.result["msg"].startswith(
        f"create of TPU node {NODE} failed: There is no more capacity in the zone"
    )
    assert failed.value.result["error"]["code"] == 8
    # The node is gone by now: the spec in the failure is what it takes to create it again.
    assert failed.value.result["spec"] == node_spec(recorded("tpu/node_preempted.json"))


def test_waiting_stops_at_the_timeout(run):
    responses = [ok("tpu/node_preempted.json")] + [ok("tpu/op_delete_running.json")] * 4
    with pytest.raises(tpu_node.OperationTimeout) as raised:
        run(responses, state="recreated", timeout=25, poll_interval=10)
    assert "timed out after 25s waiting for delete" in str(raised.value)
    assert OPERATION in str(raised.value)


def test_wait_false_returns_after_submitting(run):
    responses = [not_found(), ok("tpu/op_create_running.json")]
    result, http, clock = run(responses, wait=False, accelerator_type="v4-8", runtime_version="r")
    assert result["operations"] == [OPERATION]
    assert clock.sleeps == []
    assert len(http.request_sequence) == 2


# --- main(): argument handling and output ------------------------------------------------------


@pytest.fixture
def main_answering(run_main, monkeypatch):
    """Run main() with the API answering ``responses`` in order."""

    def run(responses, args):
        http = HttpMockSequence(list(responses))
        monkeypatch.setattr(tpu_node, "load_credentials", lambda *args: None)
        monkeypatch.setattr(tpu_node, "http_factory", lambda credentials, timeout: lambda: http)
        return run_main(tpu_node, args)
    return run


def test_main_in_check_and_diff_mode(main_answering):
    args = {
        "name": "train-v4-8-c",
        "project": "fw-ml-prod",
        "zone": "us-central2-b",
        "state": "recreated",
        "auth_kind": "accesstoken",
        "access_token": "ya29.secret-value",
        "_ansible_check_mode": True,
        "_ansible_diff": True,
    }
    result = main_answering([ok("tpu/node_preempted.json")], args)
    assert result["changed"] is True
    assert result["actions"] == ["delete", "create"]
    assert result["diff"]["before"]["state"] == "PREEMPTED"
    assert "ya29.secret-value" not in json.dumps(result)


def test_main_turns_service_disabled_into_one_message(main_answering):
    args = {"name": "train-v4-8-c", "project": "fw-ml-prod", "zone": "us-central2-b"}
    disabled = ({"status": "403"}, (GCP / "errors/403_service_disabled_tpu.json").read_text())
    result = main_answering([disabled], args)
    assert result["failed"] is True
    assert result["msg"].startswith("Cloud TPU API (tpu.googleapis.com) is disabled for project fw-ml-prod")


def test_main_passes_service_account_contents_to_the_credentials(run_main, monkeypatch):
    seen = []
    monkeypatch.setattr(
        tpu_node, "load_credentials", lambda kind, file, token, scopes, contents: seen.append((kind, file, contents))
    )
    monkeypatch.setattr(
        tpu_node, "http_factory", lambda credentials, timeout: lambda: HttpMockSequence([ok("tpu/node_ready.json")])
    )
    key = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----secret"}'
    args = {
        "name": "train-v4-8-c",
        "project": "fw-ml-prod",
        "zone": "us-central2-b",
        "auth_kind": "serviceaccount",
        "service_account_contents": key,
    }
    result = run_main(tpu_node, args)
    assert result["changed"] is False
    assert seen == [("serviceaccount", None, key)]
    assert "BEGIN PRIVATE KEY" not in json.dumps(result)


def test_main_refuses_a_key_file_and_key_contents_together(main_answering):
    args = {
        "name": "n",
        "project": "p",
        "zone": "z",
        "auth_kind": "serviceaccount",
        "service_account_file": "/k.json",
        "service_account_contents": "{}",
    }
    result = main_answering([], args)
    assert result["failed"] is True
    assert "mutually exclusive" in result["msg"]


def test_main_requires_the_token_for_accesstoken(main_answering):
    args = {"name": "n", "project": "p", "zone": "z", "auth_kind": "accesstoken"}
    result = main_answering([], args)
    assert result["failed"] is True
    assert "access_token" in result["msg"]
