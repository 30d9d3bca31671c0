"""Unit tests for plugins/module_utils/_gcp.py and _http_retry.py: retries, time budget, errors, credentials."""

import json
import threading
from pathlib import Path

import httplib2
import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _gcp, _http_retry
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpMockSequence

ERRORS = Path(__file__).resolve().parents[3] / "fixtures" / "gcp" / "errors"
TPU = Path(__file__).resolve().parents[3] / "fixtures" / "gcp" / "tpu"


def error_response(code, name, headers=None):
    return (dict({"status": str(code)}, **(headers or {})), (ERRORS / name).read_text())


def tpu_get_request(http):
    service = _gcp.build_service("tpu", "v2", http)
    return service.projects().locations().nodes().get(name="projects/fw-ml-prod/locations/us-central2-b/nodes/n")


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def http_error(code, name):
    headers, body = error_response(code, name)
    return HttpError(httplib2.Response(headers), body.encode())


# --- backoff -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(0, 0.0, 0.5), (0, 1.0, 1.0), (3, 0.0, 4.0), (3, 1.0, 8.0), (10, 1.0, 32.0), (10, 0.0, 16.0)],
)
def test_backoff_delay_doubles_with_jitter_and_is_capped(attempt, rand, expected):
    assert _http_retry.backoff_delay(attempt, rand=lambda: rand) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry-after": "7"}, 7.0), ({"retry-after": "600"}, 60.0), ({"retry-after": "soon"}, None), ({}, None)],
)
def test_retry_after_seconds_reads_and_bounds_the_header(headers, expected):
    assert _http_retry.retry_after_seconds(headers) == expected


# --- ApiCaller ---------------------------------------------------------------------------------


def test_execute_retries_429_then_returns_the_page():
    http = HttpMockSequence(
        [error_response(429, "429_rate_limited_tpu.json"), ({"status": "200"}, (TPU / "node_ready.json").read_text())]
    )
    sleeps = Sleeps()
    retries_seen = []
    caller = _gcp.ApiCaller(
        lambda: http, retries=3, sleep=sleeps, rand=lambda: 0.0, on_retry=lambda *args: retries_seen.append(args)
    )
    node = caller.execute(tpu_get_request(http))
    assert node["state"] == "READY"
    assert sleeps == [0.5]
    assert retries_seen == [("HTTP 429", 1, 0.5)]
    assert len(http.request_sequence) == 2


def test_execute_honours_retry_after():
    http = HttpMockSequence(
        [
            error_response(503, "503_unavailable.json", {"retry-after": "3"}),
            ({"status": "200"}, (TPU / "node_ready.json").read_text()),
        ]
    )
    sleeps = Sleeps()
    _gcp.ApiCaller(lambda: http, sleep=sleeps).execute(tpu_get_request(http))
    assert sleeps == [3.0]


def test_execute_gives_up_after_the_bounded_retries():
    http = HttpMockSequence([error_response(503, "503_unavailable.json")] * 4)
    sleeps = Sleeps()
    caller = _gcp.ApiCaller(lambda: http, retries=3, sleep=sleeps, rand=lambda: 0.0)
    with pytest.raises(HttpError) as raised:
        caller.execute(tpu_get_request(http))
    assert raised.value.resp.status == 503
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(http.request_sequence) == 4


@pytest.mark.parametrize(
    ("code", "name"), [(403, "403_service_disabled_tpu.json"), (404, "404_node_not_found_tpu.json")]
)
def test_execute_does_not_retry_client_errors(code, name):
    http = HttpMockSequence([error_response(code, name)])
    sleeps = Sleeps()
    with pytest.raises(HttpError):
        _gcp.ApiCaller(lambda: http, sleep=sleeps).execute(tpu_get_request(http))
    assert sleeps == []


def test_execute_retries_connection_errors():
    class Flaky:
        calls = 0

        def execute(self, http):
            self.calls += 1
            if self.calls == 1:
                raise ConnectionResetError("reset by peer")
            return {"ok": True}

    sleeps = Sleeps()
    assert _gcp.ApiCaller(lambda: None, sleep=sleeps, rand=lambda: 0.0).execute(Flaky()) == {"ok": True}
    assert sleeps == [0.5]


def test_no_retry_is_waited_for_past_the_deadline(clock):
    http = HttpMockSequence([error_response(503, "503_unavailable.json")] * 10)
    caller = _gcp.ApiCaller(lambda: http, retries=9, sleep=clock.sleep, clock=clock, rand=lambda: 1.0, deadline=107.5)
    with pytest.raises(_gcp.TimeBudgetSpent, match=r"time budget ran out \(last answer: HTTP 503\)"):
        caller.execute(tpu_get_request(http))
    assert clock.sleeps == [1.0, 2.0, 4.0]  # 8 s more would pass the deadline
    assert len(http.request_sequence) == 4


def test_no_request_is_sent_after_the_deadline(clock):
    http = HttpMockSequence([])
    caller = _gcp.ApiCaller(lambda: http, clock=clock, deadline=100.0)
    with pytest.raises(_gcp.TimeBudgetSpent):
        caller.execute(tpu_get_request(http))
    assert http.request_sequence == []


def test_a_429_pauses_the_other_threads_of_the_same_caller(clock):
    """The quota is shared: after one thread's 429, the next request of any thread waits for the pause."""
    ready = ({"status": "200"}, (TPU / "node_ready.json").read_text())
    http = HttpMockSequence([error_response(429, "429_rate_limited_tpu.json", {"retry-after": "5"}), ready, ready])
    caller = _gcp.ApiCaller(lambda: http, sleep=clock.sleep, clock=clock)
    caller.execute(tpu_get_request(http))  # 429, waits 5 s, then succeeds
    assert clock.sleeps == [5.0]
    other = []
    thread = threading.Thread(target=lambda: other.append(caller.execute(tpu_get_request(http))))
    clock.now -= 3.0  # the other thread's request starts 2 s into the pause
    thread.start()
    thread.join()
    assert clock.sleeps == [5.0, 3.0]  # it waited for the rest of the pause, then sent its request
    assert other[0]["state"] == "READY"


def test_the_drifted_runpod_cap_is_gone():
    """runpod had its own backoff capped at 16 s; every client now reads the one policy."""
    from ansible_collections.fleetwarden.fleet.plugins.inventory import runpod

    assert runpod.backoff_delay is _http_retry.backoff_delay
    assert runpod.RETRYABLE_STATUS is _http_retry.RETRYABLE_STATUS is _gcp.RETRYABLE_STATUS
    assert _http_retry.backoff_delay(10, rand=lambda: 1.0) == _http_retry.BACKOFF_CAP == 32.0


def test_iterate_pages_follows_next_until_none():
    pages = {"a": {"next": "b"}, "b": {"next": "c"}, "c": {}}
    seen = list(_gcp.iterate_pages("a", lambda request, page: page.get("next"), lambda request: pages[request]))
    assert seen == [{"next": "b"}, {"next": "c"}, {}]


# --- error shaping -----------------------------------------------------------------------------


def test_service_disabled_names_the_api_the_project_and_the_fix():
    message = _gcp.describe_http_error(
        http_error(403, "403_service_disabled_tpu.json"), "tpu.googleapis.com", "fw-ml-prod", "listing"
    )
    assert message.startswith("Cloud TPU API (tpu.googleapis.com) is disabled for project fw-ml-prod")
    assert "gcloud services enable tpu.googleapis.com --project fw-ml-prod" in message
    assert "console.developers.google.com/apis/api/tpu.googleapis.com" in message


def test_compute_service_disabled_is_recognised():
    message = _gcp.describe_http_error(
        http_error(403, "403_service_disabled_compute.json"), "compute.googleapis.com", "fw-ml-prod", "listing"
    )
    assert "Compute Engine API (compute.googleapis.com) is disabled for project fw-ml-prod" in message


def test_legacy_access_not_configured_counts_as_disabled():
    error = {"code": 403, "errors": [{"reason": "accessNotConfigured"}]}
    assert _gcp.service_disabled_info(error) == {}
    assert _gcp.service_disabled_info({"code": 403, "errors": [{"reason": "forbidden"}]}) is None


def test_permission_denied_is_not_reported_as_disabled():
    message = _gcp.describe_http_error(
        http_error(403, "403_permission_denied_tpu.json"), "tpu.googleapis.com", "fw-ml-prod", "listing TPU nodes"
    )
    assert message == (
        "Permission denied by the Cloud TPU API for project fw-ml-prod while listing TPU nodes: "
        "Permission 'tpu.nodes.list' denied on 'projects/fw-ml-prod/locations/-/nodes'"
    )


def test_exhausted_retries_say_so():
    message = _gcp.describe_http_error(
        http_error(429, "429_rate_limited_tpu.json"), "tpu.googleapis.com", "fw-ml-prod", "listing"
    )
    assert "kept failing with HTTP 429" in message
    assert "retries exhausted" in message


def test_error_body_survives_non_json():
    class Broken:
        content = b"<html>bad gateway</html>"

    assert _gcp.error_body(Broken()) == {}


# --- credentials -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "file", "token", "fragment"),
    [
        ("serviceaccount", None, None, "needs service_account_file"),
        ("accesstoken", None, None, "needs access_token"),
        ("application", "/tmp/key.json", None, "only used with auth_kind=serviceaccount"),
        ("magic", None, None, "auth_kind must be one of"),
    ],
)
def test_validate_auth_options_rejects_inconsistent_settings(kind, file, token, fragment):
    with pytest.raises(_gcp.GcpError, match=fragment):
        _gcp.validate_auth_options(kind, file, token)


def test_missing_application_default_credentials_give_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud ADC file here
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # and no metadata server probe
    with pytest.raises(_gcp.GcpError) as raised:
        _gcp.load_credentials("application")
    message = str(raised.value)
    assert message.startswith("No Google Cloud credentials found.")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message
    assert "gcloud auth application-default login" in message


def test_google_application_credentials_pointing_nowhere_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(_gcp.GcpError, match=r"missing\.json"):
        _gcp.load_credentials("application")


def test_unreadable_service_account_file_is_reported(tmp_path):
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"type": "service_account"}))
    with pytest.raises(_gcp.GcpError, match="Cannot use service_account_file"):
        _gcp.load_credentials("serviceaccount", service_account_file=str(key))


@pytest.mark.parametrize("as_text", [True, False])
def test_service_account_contents_become_credentials(as_text, service_account_key):
    key = service_account_key("http://127.0.0.1:9/token")  # a closed port: nothing is asked for a token
    credentials = _gcp.load_credentials("serviceaccount", service_account_contents=json.dumps(key) if as_text else key)
    assert credentials.service_account_email == key["client_email"]


def test_bad_service_account_contents_never_echo_the_value():
    secret = "not-json-but-secret-material"  # noqa: S105 - a fake value the error must not echo
    with pytest.raises(_gcp.GcpError) as raised:
        _gcp.load_credentials("serviceaccount", service_account_contents=secret)
    assert secret not in str(raised.value)
    assert "service_account_contents is not a service-account JSON key" in str(raised.value)


def test_a_key_file_and_key_contents_are_exclusive():
    with pytest.raises(_gcp.GcpError, match="mutually exclusive"):
        _gcp.validate_auth_options("serviceaccount", "/tmp/key.json", None, "{}")


def test_access_token_becomes_bearer_credentials():
    credentials = _gcp.load_credentials("accesstoken", access_token="ya29.token")  # noqa: S106 - a fake token
    headers = {}
    credentials.apply(headers)
    assert headers["authorization"] == "Bearer ya29.token"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://tpu.googleapis.com/", True),
        ("http://127.0.0.1:8080/", True),
        ("http://localhost:9/compute/v1/", True),
        ("http://tpu.example.com/", False),
        ("ftp://127.0.0.1/", False),
    ],
)
def test_check_endpoint_keeps_tokens_off_clear_text(url, allowed):
    if allowed:
        _gcp.check_endpoint(url)
    else:
        with pytest.raises(_gcp.GcpError, match="https"):
            _gcp.check_endpoint(url)


def test_build_service_uses_the_endpoint_override():
    http = HttpMockSequence([({"status": "200"}, "{}")])
    service = _gcp.build_service("tpu", "v2", http, endpoint="http://127.0.0.1:9/")
    service.projects().locations().nodes().get(name="projects/p/locations/z/nodes/n").execute()
    assert http.request_sequence[0][0].startswith("http://127.0.0.1:9/v2/projects/p/locations/z/nodes/n")


def test_a_credential_that_cannot_get_a_token_fails_clearly():
    import google.oauth2.credentials

    credentials = google.oauth2.credentials.Credentials(
        token=None,
        refresh_token="r",  # noqa: S106 - fake
        client_id="c",
        client_secret="s",  # noqa: S106 - fake
        token_uri="http://127.0.0.1:9/token",  # noqa: S106 - a URL; nothing listens on the discard port
    )
    with pytest.raises(_gcp.GcpError, match="could not get an access token"):
        _gcp.refresh_credentials(credentials, timeout=2)


def test_a_valid_credential_is_not_refreshed():
    credentials = _gcp.load_credentials("accesstoken", access_token="ya29.token")  # noqa: S106 - a fake token
    assert _gcp.refresh_credentials(credentials) is credentials
    assert _gcp.refresh_credentials(None) is None
