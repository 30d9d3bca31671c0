"""The lab fleet as the cloud makes it: what `fleetwarden lab up` asks the stand-in for, through the real APIs.

A GCE VM that is the Ray head, the monitoring host and the controller; a GCE spot VM with a GPU (group gpu);
a 2-host spot TPU slice, v4-16 (group tpu). Their labels are the ones inventory/sample's groups read
(docs/inventories.md, "Your fleet in 10 minutes"). `create` takes google-api-python-client services, so the
same calls work against the stand-in and, with a real project, against Google.
"""

from __future__ import annotations

import time

from fleetwarden.cloud.shapes import ROLE_LABEL

GCE_ZONE = "us-central1-a"
TPU_ZONE = "us-central2-b"
FLEET_LABEL = {"fleet": "ray"}


def instances(prefix: str = "lab") -> list[dict]:
    """instances.insert bodies: the head (monitoring, controller) and the spot GPU worker."""
    return [
        {"name": f"{prefix}-head", "machineType": f"zones/{GCE_ZONE}/machineTypes/n2-standard-4",
         "labels": {**FLEET_LABEL, ROLE_LABEL: "head", "monitoring": "true", "controller": "true"}},
        {"name": f"{prefix}-gpu", "machineType": f"zones/{GCE_ZONE}/machineTypes/g2-standard-4",
         "labels": {**FLEET_LABEL, ROLE_LABEL: "worker"},
         "guestAccelerators": [{"acceleratorType": "nvidia-l4", "acceleratorCount": 1}],
         "scheduling": {"provisioningModel": "SPOT", "preemptible": True, "automaticRestart": False,
                        "onHostMaintenance": "TERMINATE", "instanceTerminationAction": "STOP"}},
    ]


def tpu_nodes(prefix: str = "lab") -> dict[str, dict]:
    """{node id: nodes.create body}: one spot v4-16 slice, two TPU VM hosts."""
    return {f"{prefix}-tpu": {"acceleratorType": "v4-16", "runtimeVersion": "tpu-ubuntu2204-base",
                              "schedulingConfig": {"spot": True}, "labels": {**FLEET_LABEL, ROLE_LABEL: "worker"}}}


def wait_tpu(tpu, operation: dict, timeout: float, poll: float = 0.2) -> dict:
    deadline = time.monotonic() + timeout
    while not operation.get("done"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"operation {operation['name']} not done after {timeout:.0f} s")
        time.sleep(poll)
        operation = tpu.projects().locations().operations().get(name=operation["name"]).execute()
    if operation.get("error"):
        raise RuntimeError(f"{operation['metadata']['target']}: {operation['error']['message']}")
    return operation


def wait_compute(compute, project: str, operation: dict, timeout: float, poll: float = 0.2) -> dict:
    deadline = time.monotonic() + timeout
    while operation.get("status") != "DONE":
        if time.monotonic() > deadline:
            raise TimeoutError(f"operation {operation['name']} not done after {timeout:.0f} s")
        time.sleep(poll)
        operation = compute.zoneOperations().get(project=project, zone=GCE_ZONE, operation=operation["name"]).execute()
    if operation.get("error"):
        raise RuntimeError(f"{operation['targetLink']}: {operation['error']['errors'][0]['message']}")
    return operation


def create(tpu, compute, project: str, prefix: str = "lab", timeout: float = 300) -> None:
    """Ask for every lab resource at once, then wait for each (hosts boot side by side)."""
    tpu_operations = [
        tpu.projects().locations().nodes().create(parent=f"projects/{project}/locations/{TPU_ZONE}", nodeId=node_id,
                                                  body=body).execute()
        for node_id, body in tpu_nodes(prefix).items()
    ]
    compute_operations = [compute.instances().insert(project=project, zone=GCE_ZONE, body=body).execute()
                          for body in instances(prefix)]
    for operation in tpu_operations:
        wait_tpu(tpu, operation, timeout)
    for operation in compute_operations:
        wait_compute(compute, project, operation, timeout)


def services(state_dir):
    """(tpu, compute) google-api-python-client services on the stand-in whose state is in `state_dir`."""
    from pathlib import Path

    import google.oauth2.credentials
    import google_auth_httplib2
    import httplib2
    from googleapiclient import discovery

    from fleetwarden.cloud.admin import standin_url
    from fleetwarden.cloud.store import API_TOKEN_FILE

    url = standin_url(state_dir)
    token = (Path(state_dir) / API_TOKEN_FILE).read_text().strip()
    http = google_auth_httplib2.AuthorizedHttp(google.oauth2.credentials.Credentials(token=token),
                                               http=httplib2.Http(timeout=60))
    return (
        discovery.build("tpu", "v2", http=http, static_discovery=True, client_options={"api_endpoint": url + "/"}),
        discovery.build("compute", "v1", http=http, static_discovery=True,
                        client_options={"api_endpoint": url + "/compute/v1/"}),
    )


def main(argv=None) -> int:
    """`python -m fleetwarden.cloud.lab_fleet`: ask the running stand-in (.lab/cloud) for the lab fleet."""
    import argparse
    from pathlib import Path

    from fleetwarden.cloud.cli import state_dir
    from fleetwarden.lab.lab import find_project_dir

    parser = argparse.ArgumentParser(prog="python -m fleetwarden.cloud.lab_fleet", description=main.__doc__)
    parser.add_argument("--project", default="fw-lab", help="the cloud project the lab lives in (fw-lab)")
    parser.add_argument("--prefix", default="lab", help="resource name prefix (lab)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the hosts (300)")
    args = parser.parse_args(argv)
    tpu, compute = services(state_dir(find_project_dir(Path.cwd())))
    started = time.monotonic()
    create(tpu, compute, args.project, args.prefix, args.timeout)
    print(f"lab fleet of project {args.project} ready in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
