# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""Shared Google Cloud helpers for the gcp_tpu and gce_gpu inventories and the tpu_node module.

They run on the controller. Everything that can be a pure function is one: paging, backoff,
error shaping, hostname choice, filters and group names. Network and credential code stays thin.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import difflib
import fnmatch
import gc
import json
import os
import random
import socket
import threading
import time
from urllib.parse import urlsplit

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
RETRYABLE_STATUS = frozenset((429, 500, 502, 503, 504))
# Connection-level failures worth another try; anything else is a bug or a config error.
RETRYABLE_EXCEPTIONS = (socket.timeout, ConnectionError, TimeoutError)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
HOSTNAME_CHOICES = ("external_ip", "internal_ip", "name")
DEFAULT_HOSTNAMES = ("external_ip", "internal_ip", "name")

API_TITLES = {
    "tpu.googleapis.com": "Cloud TPU API",
    "compute.googleapis.com": "Compute Engine API",
}


class GcpError(Exception):
    """An error already shaped for a person: says what failed, where, and what to do."""


# ---------------------------------------------------------------------------------------------
# Credentials and the HTTP transport
# ---------------------------------------------------------------------------------------------


def validate_auth_options(auth_kind, service_account_file=None, access_token=None):
    """Check the cross-field auth rules; return nothing or raise one GcpError."""
    if auth_kind not in AUTH_KINDS:
        raise GcpError("auth_kind must be one of %s, got %r" % (", ".join(AUTH_KINDS), auth_kind))
    if auth_kind == "serviceaccount" and not service_account_file:
        raise GcpError("auth_kind=serviceaccount needs service_account_file (or GCP_SERVICE_ACCOUNT_FILE)")
    if auth_kind == "accesstoken" and not access_token:
        raise GcpError("auth_kind=accesstoken needs access_token (or GCP_ACCESS_TOKEN)")
    if auth_kind != "serviceaccount" and service_account_file:
        raise GcpError("service_account_file is only used with auth_kind=serviceaccount")


def load_credentials(auth_kind="application", service_account_file=None, access_token=None, scopes=DEFAULT_SCOPES):
    """Return google-auth credentials, or raise one GcpError that says how to provide them.

    application: application default credentials, which honour GOOGLE_APPLICATION_CREDENTIALS,
    the gcloud ADC file and the GCE metadata server. serviceaccount: a key file.
    accesstoken: a bearer token obtained elsewhere (for example `gcloud auth print-access-token`).
    """
    validate_auth_options(auth_kind, service_account_file, access_token)
    scopes = list(scopes or DEFAULT_SCOPES)
    if auth_kind == "accesstoken":
        return google.oauth2.credentials.Credentials(token=access_token, scopes=scopes)
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
    """Credentials travel as bearer tokens: only https, or plain http to this machine (an emulator)."""
    parts = urlsplit(url or "")
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return
    raise GcpError("endpoint must be an https:// URL (plain http only to a loopback address), got %r" % url)


def build_service(api, version, http, endpoint=None):
    """Build a client from the bundled static discovery document: no network, no discovery call."""
    if endpoint:
        check_endpoint(endpoint)
    client_options = {"api_endpoint": endpoint} if endpoint else None
    return discovery.build(
        api, version, http=http, static_discovery=True, cache_discovery=False, client_options=client_options
    )


class ApiCaller:
    """Executes requests with bounded retries, one transport per thread.

    `make_http` builds a transport; `sleep` and `rand` are injected so that tests never wait.
    """

    def __init__(self, make_http, retries=5, sleep=time.sleep, rand=random.random, on_retry=None):
        self.make_http = make_http
        self.retries = retries
        self.sleep = sleep
        self.rand = rand
        self.on_retry = on_retry
        self._local = threading.local()

    def _http(self):
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = self.make_http()
        return http

    def execute(self, request):
        attempt = 0
        while True:
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
            if self.on_retry is not None:
                self.on_retry(reason, attempt + 1, delay)
            self.sleep(delay)
            attempt += 1


def backoff_delay(attempt, base=1.0, cap=32.0, rand=random.random):
    """Exponential backoff with jitter: between half and all of min(cap, base * 2**attempt)."""
    ceiling = min(cap, base * (2**attempt))
    return ceiling / 2 + rand() * ceiling / 2


def retry_after_seconds(resp, cap=60.0):
    """The server's Retry-After in seconds (bounded), or None when absent or not a number."""
    value = resp.get("retry-after") if hasattr(resp, "get") else None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return min(max(seconds, 0.0), cap)


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


# ---------------------------------------------------------------------------------------------
# Shaping for inventories
# ---------------------------------------------------------------------------------------------


def short_name(resource):
    """The last path segment of a resource name or URL: `.../zones/us-central1-a` -> `us-central1-a`."""
    return resource.rstrip("/").rsplit("/", 1)[-1] if resource else resource


def choose_host(candidates, order):
    """The first non-empty candidate in `order`; `candidates` maps each HOSTNAME_CHOICES to a value."""
    for key in order:
        value = candidates.get(key)
        if value:
            return value
    return None


def validate_hostnames(order, allowed=HOSTNAME_CHOICES):
    """Raise GcpError naming the bad entries when `hostnames` holds unsupported values."""
    if not isinstance(order, (list, tuple)) or not order:
        raise GcpError("hostnames must be a non-empty list drawn from: %s" % ", ".join(allowed))
    unknown = [value for value in order if value not in allowed]
    if unknown:
        raise GcpError(
            "hostnames has unsupported value(s) %s; supported: %s"
            % (", ".join(repr(value) for value in unknown), ", ".join(allowed))
        )


def validate_filters(filters):
    """Raise GcpError unless `filters` maps host var names to a pattern or a list of patterns."""
    if not isinstance(filters, dict):
        raise GcpError("filters must be a mapping of host variable to pattern(s), got %s" % type(filters).__name__)
    for key, value in filters.items():
        patterns = value if isinstance(value, list) else [value]
        if not all(isinstance(pattern, (str, int, bool)) for pattern in patterns):
            raise GcpError("filters.%s must be a string or a list of strings" % key)


def lookup(host_vars, dotted):
    """host_vars['a']['b'] for 'a.b'; None when any step is missing."""
    value = host_vars
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def matches_filters(host_vars, filters):
    """True when every filter key matches one of its glob patterns (keys AND, patterns OR)."""
    for key, patterns in (filters or {}).items():
        value = lookup(host_vars, key)
        if value is None:
            return False
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if not isinstance(patterns, list):
            patterns = [patterns]
        wanted = [str(pattern).lower() if isinstance(pattern, bool) else str(pattern) for pattern in patterns]
        if not any(fnmatch.fnmatchcase(text, pattern) for pattern in wanted):
            return False
    return True


def group_name(prefix, value):
    """A safe group name: `tpu_state` + `READY` -> `tpu_state_ready`."""
    cleaned = "".join(char if char.isalnum() else "_" for char in str(value).lower())
    return "%s_%s" % (prefix, cleaned)


def make_unsafe_tree(value, wrap):
    """Mark strings that hold template syntax as unsafe with `wrap` (ansible's wrap_var).

    API values are user-controlled (labels, names). Only a string with `{` can be a template,
    so a cheap test per string keeps 5,000 hosts fast; everything else is returned as is.
    """
    kind = type(value)
    if kind is str:
        return wrap(value) if "{" in value else value
    if kind is dict:
        return {make_unsafe_tree(key, wrap): make_unsafe_tree(item, wrap) for key, item in value.items()}
    if kind is list:
        return [make_unsafe_tree(item, wrap) for item in value]
    return value


def make_unsafe_vars(host_vars, wrap):
    """make_unsafe_tree for a host's vars, whose top-level keys are the plugin's own names."""
    return {
        key: (wrap(value) if "{" in value else value) if type(value) is str else make_unsafe_tree(value, wrap)
        for key, value in host_vars.items()
    }


# ---------------------------------------------------------------------------------------------
# The parse steps both Google Cloud inventories share (aws_ec2's shape: cached? query, populate)
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def paused_gc():
    """Pause the cyclic garbage collector for one parse, then restore it as it was.

    A parse decodes megabytes of JSON into hundreds of thousands of dicts and lists and holds the
    large compute discovery document; every automatic collection walks them all again. Measured on
    5,000 instances, that was half of the parse. Reference counting still frees everything acyclic
    at once; the few cycles wait for the collector, which runs again right after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def unknown_options(config, known):
    """Config keys that are not options, sorted; a typo must not be ignored silently."""
    return sorted(key for key in config if key not in known)


def describe_unknown_options(unknown, known):
    """`zone (did you mean zones?)` for each unknown key."""
    described = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(known), n=1)
        described.append("%s (did you mean %s?)" % (key, close[0]) if close else key)
    return ", ".join(described)


class GcpInventoryMixin:
    """Mixed into BaseInventoryPlugin + Constructable + Cacheable subclasses.

    A subclass sets ALL_GROUP (the group every host is in, directly or through the default groups,
    its children), DEFAULT_GROUPS ((host var, group prefix) pairs), HOSTNAME_VARS ((hostnames
    choice, host var) pairs) and make_unsafe (ansible's wrap_var).
    Records are [inventory_hostname, host_vars] pairs of plain data, so they cache as JSON.
    """

    ALL_GROUP = None
    DEFAULT_GROUPS = ()
    HOSTNAME_VARS = ()

    def _check_config(self, config):
        known = set(self._options) | {"plugin"}
        unknown = unknown_options(config, known)
        try:
            if unknown:
                raise GcpError(
                    "unknown option(s) %s; see `ansible-doc -t inventory %s`"
                    % (describe_unknown_options(unknown, known), self.NAME)
                )
            validate_hostnames(self.get_option("hostnames"))
            validate_filters(self.get_option("filters"))
            validate_auth_options(
                self.get_option("auth_kind"), self.get_option("service_account_file"), self.get_option("access_token")
            )
            if not self.get_option("projects"):
                raise GcpError("projects must list at least one project")
            if self.get_option("endpoint"):
                check_endpoint(self.get_option("endpoint"))
        except GcpError as exc:
            raise GcpError("%s: %s" % (self.NAME, exc)) from None

    def _api_caller(self, credentials):
        return ApiCaller(
            http_factory(credentials, timeout=self.get_option("request_timeout")),
            retries=self.get_option("retries"),
            on_retry=lambda reason, attempt, delay: self.display.vvv(
                "%s: %s, retry %d in %.1fs" % (self.NAME, reason, attempt, delay)
            ),
        )

    def _credentials(self):
        credentials = load_credentials(
            self.get_option("auth_kind"),
            self.get_option("service_account_file"),
            self.get_option("access_token"),
            self.get_option("scopes"),
        )
        return refresh_credentials(credentials, self.get_option("request_timeout"))

    def _cached_records(self, path, cache):
        """(records, cache_needs_update): records is None when the API must be queried."""
        use_cache = self.get_option("cache")
        if not use_cache:
            return None, False
        if not cache:  # --flush-cache or meta: refresh_inventory
            return None, True
        try:
            return self._cache[self.get_cache_key(path)], False
        except KeyError:
            return None, True

    def _populate(self, records):
        order = self.get_option("hostnames")
        filters = self.get_option("filters")
        compose = self.get_option("compose")
        groups = self.get_option("groups")
        keyed_groups = self.get_option("keyed_groups")
        strict = self.get_option("strict")
        extra_vars = self._vars if self.get_option("use_extra_vars") else None
        inventory = self.inventory
        # ALL_GROUP holds the default groups as children, so most hosts join it through them:
        # one group membership less per host (each costs as much as a few host vars).
        all_group = inventory.add_group(self.ALL_GROUP)
        group_names = {}  # (prefix, value) -> group, created once
        seen = set()
        for hostname, host_vars in records:
            if filters and not matches_filters(host_vars, filters):
                continue
            if hostname in seen:
                self.display.warning("%s: skipping a second host named %s" % (self.NAME, hostname))
                continue
            seen.add(hostname)
            host_vars = self.make_unsafe(host_vars)
            inventory.add_host(hostname)
            for key, value in host_vars.items():
                inventory.set_variable(hostname, key, value)
            candidates = {choice: host_vars.get(var) for choice, var in self.HOSTNAME_VARS}
            candidates["name"] = hostname
            ansible_host = choose_host(candidates, order)
            if ansible_host:
                inventory.set_variable(hostname, "ansible_host", ansible_host)
                host_vars["ansible_host"] = ansible_host
            grouped = False
            for var, prefix in self.DEFAULT_GROUPS:
                value = host_vars.get(var)
                if value:
                    group = group_names.get((prefix, value))
                    if group is None:
                        group = group_names[(prefix, value)] = inventory.add_group(group_name(prefix, value))
                        inventory.add_child(all_group, group)
                    inventory.add_child(group, hostname)
                    grouped = True
            if not grouped:
                inventory.add_child(all_group, hostname)
            if compose or groups or keyed_groups:
                if extra_vars:
                    host_vars = dict(host_vars, **extra_vars)
                self._set_composite_vars(compose, host_vars, hostname, strict=strict)
                self._add_host_to_composed_groups(groups, host_vars, hostname, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, host_vars, hostname, strict=strict)
