"""google-api-python-client services pointed at a running stand-in, and the admin call, for the tests."""

import json
import time
import urllib.request

import google.oauth2.credentials
import google_auth_httplib2
import httplib2
from googleapiclient import discovery


def clients(standin):
    """(tpu v2 service, compute v1 service, admin(kind, target, **fields)) on the stand-in's loopback URL."""
    credentials = google.oauth2.credentials.Credentials(token=standin.api_token)
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=30))
    tpu = discovery.build("tpu", "v2", http=http, static_discovery=True,
                          client_options={"api_endpoint": standin.url + "/"})
    compute = discovery.build("compute", "v1", http=http, static_discovery=True,
                              client_options={"api_endpoint": standin.url + "/compute/v1/"})

    def admin(kind, target, **fields):
        return admin_call(standin, {"kind": kind, "target": target, **fields})

    return tpu, compute, admin


def admin_call(standin, body, token=None, method="POST"):
    request = urllib.request.Request(  # noqa: S310 - a loopback URL the test made
        standin.url + "/admin/v1/faults", data=json.dumps(body).encode() if method == "POST" else None,
        method=method, headers={"Authorization": f"Bearer {token or standin.admin_token}",
                                "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - a loopback URL the test made
        return json.loads(answer.read())


def wait(service, operation, zone=None, timeout=20):
    """Poll an operation (TPU, or compute with zone={project, zone}) until it is done; return its last body."""
    deadline = time.monotonic() + timeout
    while True:
        if zone is None:
            if operation.get("done"):
                return operation
            operation = service.projects().locations().operations().get(name=operation["name"]).execute()
        else:
            if operation.get("status") == "DONE":
                return operation
            operation = service.zoneOperations().get(operation=operation["name"], **zone).execute()
        assert time.monotonic() < deadline, f"operation {operation['name']} not done in {timeout} s"
        time.sleep(0.02)
