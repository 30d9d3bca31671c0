# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""Google Cloud client code that the tpu_node module needs, and the HTTP retry policy of every cloud client.

Credentials, the retrying request executor, paging and error wording. The inventories' controller-only
helpers (hostnames, filters, groups, the shared parse) live in plugins/plugin_utils/_gcp_inventory.py.
The retry policy itself (retryable statuses, backoff, Retry-After, which endpoints may get a token)
is module_utils/_http_retry.py's, shared with the runpod inventory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import random
import socket
import threading
import time

from ansible_collections.fleetwarden.fleet.plugins.module_utils._http_retry import (
    RETRYABLE_STATUS,
    backoff_delay,
    endpoint_problem,
    retry_after_seconds,
)

try:
    import google.auth
    import google.auth.exceptions
    import google.oauth2.credentials
    import google.oauth2.service_account
    import google_auth_httplib2
    import httplib2
    from googleapiclient import discovery
    from googleapiclient.errors import HttpError

    HAS_GOOGLE_LIBRARIES = True
    GOOGLE_IMPORT_ERROR = None
except ImportError as import_error:  # pragma: no cover - exercised only without the libraries
    HAS_GOOGLE_LIBRARIES = False
    GOOGLE_IMPORT_ERROR = import_error

    class HttpError(Exception):
        """Stand-in so that except clauses still compile without googleapiclient."""


AUTH_KINDS = ("application", "serviceaccount", "accesstoken")
DEFAULT_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
# Connection-level failures worth another try; anything else is a bug or a config error.
RETRYABLE_EXCEPTIONS = (socket.timeout, ConnectionError, TimeoutError)

API_TITLES = {
    "tpu.googleapis.com": "Cloud TPU API",
    "compute.googleapis.com": "Compute Engine API",
}


class GcpError(Exception):
    """An error already shaped for a person: says what failed, where, and what to do."""


class TimeBudgetSpent(GcpError):
    """The caller's total time budget ran out before a request could succeed."""


# ---------------------------------------------------------------------------------------------
# Credentials and the HTTP transport
# ---------------------------------------------------------------------------------------------


def validate_auth_options(auth_kind, service_account_file=None, access_token=None, service_account_contents=None):
    """Check the cross-field auth rules; return nothing or raise one GcpError."""
    if auth_kind not in AUTH_KINDS:
        raise GcpError("auth_kind must be one of %s, got %r" % (", ".join(AUTH_KINDS), auth_kind))
    if service_account_file and service_account_contents:
        raise GcpError("service_account_file and service_account_contents are mutually exclusive")
    key = service_account_file or service_account_contents
    if auth_kind == "serviceaccount" and not key:
        raise GcpError(
            "auth_kind=serviceaccount needs service_account_file (or GCP_SERVICE_ACCOUNT_FILE) "
            "or service_account_contents (or GCP_SERVICE_ACCOUNT_CONTENTS)"
        )
    if auth_kind == "accesstoken" and not access_token:
        raise GcpError("auth_kind=accesstoken needs access_token (or GCP_ACCESS_TOKEN)")
    if auth_kind != "serviceaccount" and service_account_file:
        raise GcpError("service_account_file is only used with auth_kind=serviceaccount")
    if auth_kind != "serviceaccount" and service_account_contents:
        raise GcpError("service_account_contents is only used with auth_kind=serviceaccount")


def service_account_info(contents):
    """The key as a dict from service_account_contents: JSON text (from a vault) or an already parsed dict."""
    if isinstance(contents, dict):
        return contents
    if not isinstance(contents, (str, bytes)):
        contents = str(contents)  # an inline vault value read from an inventory file decrypts on str()
    try:
        info = json.loads(contents)
    except (TypeError, ValueError):
        # Never echo the value: it is a private key.
        raise GcpError("service_account_contents is not a service-account JSON key") from None
    if not isinstance(info, dict):
        raise GcpError("service_account_contents is not a service-account JSON key")
    return info


def load_credentials(
    auth_kind="application",
    service_account_file=None,
    access_token=None,
    scopes=DEFAULT_SCOPES,
    service_account_contents=None,
):
    """Return google-auth credentials, or raise one GcpError that says how to provide them.

    application: application default credentials, which honour GOOGLE_APPLICATION_CREDENTIALS,
    the gcloud ADC file and the GCE metadata server. serviceaccount: a key file, or the key's JSON
    content (service_account_contents, typically from a vault). accesstoken: a bearer token obtained
    elsewhere (for example `gcloud auth print-access-token`).
    """
    validate_auth_options(auth_kind, service_account_file, access_token, service_account_contents)
    scopes = list(scopes or DEFAULT_SCOPES)
    if auth_kind == "accesstoken":
        return google.oauth2.credentials.Credentials(token=access_token, scopes=scopes)
    if auth_kind == "serviceaccount" and service_account_contents:
        try:
            return google.oauth2.service_account.Credentials.from_service_account_info(
                service_account_info(service_account_contents), scopes=scopes
            )
        except ValueError as exc:
            raise GcpError("Cannot use service_account_contents: %s" % first_line(str(exc))) from None
    if auth_kind == "serviceaccount":
        path = os.path.realpath(os.path.expanduser(service_account_file))
        try:
            return google.oauth2.service_account.Credentials.from_service_account_file(path, scopes=scopes)
        except (OSError, ValueError) as exc:
            raise GcpError("Cannot use service_account_file %s: %s" % (path, exc)) from None
    try:
        credentials, _project = google.auth.default(scopes=scopes)
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise GcpError(
            "No Google Cloud credentials found. Set GOOGLE_APPLICATION_CREDENTIALS to a key file, "
            "or set auth_kind=serviceaccount and service_account_file, "
            "or run `gcloud auth application-default login`. (%s)" % first_line(str(exc))
        ) from None
    return credentials


def refresh_credentials(credentials, timeout=60):
    """Get a token once, before any fan-out: threads then share it, and a bad credential fails here, clearly."""
    if credentials is None or credentials.valid:
        return credentials
    try:
        credentials.refresh(google_auth_httplib2.Request(httplib2.Http(timeout=timeout)))
    except (
        google.auth.exceptions.RefreshError,
        google.auth.exceptions.TransportError,
        httplib2.HttpLib2Error,
        OSError,
    ) as exc:
        raise GcpError("Google Cloud credentials could not get an access token: %s" % first_line(str(exc))) from None
    return credentials


def http_factory(credentials, timeout=60):
    """Return a function that makes one authorized httplib2 transport; httplib2 is not thread-safe."""

    def make_http():
        return google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=timeout))

    return make_http


def check_endpoint(url):
    """Credentials travel as bearer tokens: raise GcpError for an endpoint that would expose them."""
    problem = endpoint_problem(url)
    if problem:
        raise GcpError(problem)


def build_service(api, version, http, endpoint=None):
    """Build a client from the bundled static discovery document: no network, no discovery call."""
    if endpoint:
        check_endpoint(endpoint)
    client_options = {"api_endpoint": endpoint} if endpoint else None
    return discovery.build(
        api, version, http=http, static_discovery=True, cache_discovery=False, client_options=client_options
    )


class ApiCaller:
    """Executes requests with bounded retries, one transport per thread, within an optional deadline.

    `make_http` builds a transport; `sleep`, `clock` and `rand` are injected so that tests never wait.
    `deadline` is a `clock()` time after which no request is sent and no retry waited for: the total
    time a caller may spend is bounded, whatever the retries.
    A 429 pauses every thread of this caller, not only the one that got it: the quota is shared, so the
    other requests in flight must not keep spending it while one backs off.
    """

    def __init__(
        self,
        make_http,
        retries=5,
        sleep=time.sleep,
        rand=random.random,
        on_retry=None,
        deadline=None,
        clock=time.monotonic,
    ):
        self.make_http = make_http
        self.retries = retries
        self.sleep = sleep
        self.rand = rand
        self.on_retry = on_retry
        self.deadline = deadline
        self.clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._paused_until = None

    def _http(self):
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = self.make_http()
        return http

    def _check_budget(self, needed=0.0, reason=None):
        if self.deadline is not None and self.clock() + needed >= self.deadline:
            raise TimeBudgetSpent("the time budget ran out%s" % (" (last answer: %s)" % reason if reason else ""))

    def _pause_all(self, delay):
        """Make every thread wait `delay` before its next request; return the time this pause ends."""
        with self._lock:
            until = self.clock() + delay
            if self._paused_until is None or until > self._paused_until:
                self._paused_until = until
            return until

    def _wait_for_pause(self):
        """Sleep until a 429 pause set by any thread is over; each thread waits once per pause."""
        with self._lock:
            until = self._paused_until
        if until is None or getattr(self._local, "waited_until", None) == until:
            return
        self._local.waited_until = until
        remaining = until - self.clock()
        if remaining > 0:
            self._check_budget(remaining, "HTTP 429")
            self.sleep(remaining)

    def execute(self, request):
        attempt = 0
        while True:
            self._wait_for_pause()
            self._check_budget()
            try:
                return request.execute(http=self._http())
            except HttpError as exc:
                status = exc.resp.status
                if status not in RETRYABLE_STATUS or attempt >= self.retries:
                    raise
                delay = retry_after_seconds(exc.resp) or backoff_delay(attempt, rand=self.rand)
                reason = "HTTP %s" % status
            except RETRYABLE_EXCEPTIONS as exc:
                if attempt >= self.retries:
                    raise
                delay = backoff_delay(attempt, rand=self.rand)
                reason = type(exc).__name__
            self._check_budget(delay, reason)
            if self.on_retry is not None:
                self.on_retry(reason, attempt + 1, delay)
            if reason == "HTTP 429":
                self._local.waited_until = self._pause_all(delay)
            self.sleep(delay)
            attempt += 1


# ---------------------------------------------------------------------------------------------
# Paging and errors
# ---------------------------------------------------------------------------------------------


def iterate_pages(first_request, next_request, execute):
    """Yield each page of a list call; `next_request(request, page)` returns None after the last."""
    request = first_request
    while request is not None:
        page = execute(request)
        yield page
        request = next_request(request, page)


def error_body(exc):
    """The decoded `error` object of a Google API error response, or {}."""
    content = getattr(exc, "content", b"") or b""
    try:
        data = json.loads(content.decode("utf-8") if isinstance(content, bytes) else content)
    except (ValueError, UnicodeDecodeError):
        return {}
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def error_reasons(error):
    """The machine-readable reasons in an error body: ErrorInfo.reason and legacy errors[].reason."""
    reasons = []
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("reason"):
            reasons.append(detail["reason"])
    for item in error.get("errors") or []:
        if isinstance(item, dict) and item.get("reason"):
            reasons.append(item["reason"])
    return reasons


def service_disabled_info(error):
    """ErrorInfo metadata of a SERVICE_DISABLED error, or None."""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("reason") == "SERVICE_DISABLED":
            return detail.get("metadata") or {}
    if "accessNotConfigured" in error_reasons(error):
        return {}
    return None


def describe_http_error(exc, api, project, action):
    """One sentence for an HttpError: the API, the project, the status and what to do."""
    status = getattr(getattr(exc, "resp", None), "status", None)
    error = error_body(exc)
    message = first_line(error.get("message") or getattr(exc, "reason", "") or "")
    title = API_TITLES.get(api, api)
    if status == 403:
        disabled = service_disabled_info(error)
        if disabled is not None:
            service = disabled.get("service") or api
            title = disabled.get("serviceTitle") or API_TITLES.get(service, title)
            return "%s (%s) is disabled for project %s. Enable it with `gcloud services enable %s --project %s`%s" % (
                title,
                service,
                project,
                service,
                project,
                " or at %s" % disabled["activationUrl"] if disabled.get("activationUrl") else "",
            )
        return "Permission denied by the %s for project %s while %s: %s" % (title, project, action, message)
    if status == 401:
        return "The %s rejected the credentials for project %s while %s: %s" % (title, project, action, message)
    if status == 404:
        return "Not found in the %s for project %s while %s: %s" % (title, project, action, message)
    if status in RETRYABLE_STATUS:
        return "The %s kept failing with HTTP %s for project %s while %s, retries exhausted: %s" % (
            title,
            status,
            project,
            action,
            message,
        )
    return "The %s returned HTTP %s for project %s while %s: %s" % (title, status, project, action, message)


def first_line(text):
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""
