"""fleetwarden.fleet.ray_cluster with real Ray on the lab as site.yml deploys it: a head and two workers, each a
supervised worker.

Every check asks the head which nodes are alive (its GCS, from inside the head's container). Each test breaks
something, then waits (with a deadline) until the cluster is whole again, so the next test starts from a healthy
cluster, and the lab stays as `make lab` left it. Container kills and head restarts, healed and checked by
recover.yml, are in test_site_drill.py.
"""

from __future__ import annotations

import textwrap
import time

import pytest
from fleetwarden_testing import ray_lab

pytestmark = [pytest.mark.lab, pytest.mark.ray]

REJOIN_TIMEOUT = 120


class Cluster:
    def __init__(self, hosts):
        self.head = next(h for h in hosts.values() if "head" in h.groups)
        self.workers = sorted((h for h in hosts.values() if "workers" in h.groups), key=lambda h: h.name)

    def alive(self):
        return ray_lab.alive(self.head)

    def whole(self):
        """The alive nodes when head and every worker are alive, else None."""
        nodes = self.alive()
        wanted = {self.head.address, *(w.address for w in self.workers)}
        return nodes if wanted <= set(nodes) else None

    def wait_whole(self, timeout=REJOIN_TIMEOUT, what="head and both workers alive on the head"):
        return ray_lab.wait_until(self.whole, timeout, interval=1, what=what)


@pytest.fixture(scope="module")
def cluster(lab_baseline):
    hosts = lab_baseline
    cluster = Cluster(hosts)
    for host in hosts.values():
        ray_lab.host_run(host, "systemctl", "reset-failed", "fleetwarden-worker-ray-head.service",
                         "fleetwarden-worker-ray-worker.service")
    cluster.deploy_output = ray_lab.require_site().stdout
    cluster.wait_whole()
    return cluster


def worker_back(cluster, host, before_container, before_node):
    """Waits until host runs a new worker container and the head sees a new node of it alive."""
    def back():
        info = ray_lab.container(host, ray_lab.WORKER_CONTAINER)
        if not info or not info["running"] or info["id"] == before_container["id"]:
            return None
        node = cluster.alive().get(host.address)
        return (info, node) if node and node["id"] != before_node["id"] else None
    return ray_lab.wait_until(back, REJOIN_TIMEOUT, interval=1, what=f"{host.name}'s worker back on the head")


def current(cluster, host):
    nodes = cluster.wait_whole()
    return ray_lab.container(host, ray_lab.WORKER_CONTAINER), nodes[host.address]


def test_the_readiness_gate_passed_and_ray_status_shows_both_workers(cluster):
    assert f"Ray head ready: GCS at {cluster.head.name}:6379" in cluster.deploy_output
    # `ray status` is the autoscaler's view, refreshed every few seconds after the GCS has
    # registered a node, so it is read until it agrees, within a deadline.
    deadline = time.monotonic() + 60
    while True:
        status = ray_lab.host_run(cluster.head, "docker", "exec", "ray-head", "ray", "status", check=True).stdout
        active = status.split("Active:")[1].split("Pending:")[0]
        if active.count(" node_") == 3 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert active.count(" node_") == 3, status
    alive = cluster.alive()
    assert {w.address for w in cluster.workers} <= set(alive)


def test_an_unchanged_rerun_changes_nothing(cluster):
    result = ray_lab.ansible_playbook(ray_lab.SITE, "--tags", "ray")
    assert result.returncode == 0
    assert all(counts["changed"] == 0 for counts in ray_lab.recap(result.stdout).values()), result.stdout[-2000:]


def test_kill_9_of_the_raylet_inside_a_worker(cluster):
    host = cluster.workers[1]
    before, node = current(cluster, host)
    ray_lab.host_run(host, "docker", "exec", ray_lab.WORKER_CONTAINER, "pkill", "-9", "-x", "raylet", check=True)
    worker_back(cluster, host, before, node)
    # `ray start --block` noticed its raylet die and exited: the container ended with it.
    journal = ray_lab.host_run(host, "journalctl", "-u", "fleetwarden-worker-ray-worker.service", "--no-pager",
                               "-n", "60", "-o", "cat").stdout
    assert f"container {ray_lab.WORKER_CONTAINER} exited with status" in journal


def test_a_hung_raylet_is_restarted_by_the_probe(cluster):
    host = cluster.workers[0]
    before, node = current(cluster, host)
    ray_lab.host_run(host, "docker", "exec", ray_lab.WORKER_CONTAINER, "pkill", "-STOP", "-x", "raylet", check=True)
    worker_back(cluster, host, before, node)
    journal = ray_lab.host_run(host, "journalctl", "-u", "fleetwarden-probe-ray-worker.service", "--no-pager",
                               "-n", "40", "-o", "cat").stdout
    assert "raylet at 127.0.0.1:8076: no answer within" in journal and "killing the container" in journal


def test_restarting_dockerd_leaves_the_worker_running(cluster):
    host = cluster.workers[1]
    before, node = current(cluster, host)
    restarts = ray_lab.unit(host, "fleetwarden-worker-ray-worker.service")["NRestarts"]
    ray_lab.host_run(host, "systemctl", "restart", "docker", check=True, timeout=120)
    after = ray_lab.wait_until(lambda: ray_lab.container(host, ray_lab.WORKER_CONTAINER), 60,
                               what="dockerd answering again")
    assert (after["id"], after["started"], after["running"]) == (before["id"], before["started"], True)
    state = ray_lab.unit(host, "fleetwarden-worker-ray-worker.service")
    assert state["ActiveState"] == "active" and state["NRestarts"] == restarts
    time.sleep(3)
    assert cluster.alive()[host.address]["id"] == node["id"]
    assert ray_lab.container(host, ray_lab.WORKER_CONTAINER)["id"] == before["id"]


# The gate against the real GCS and dashboard, and against a stand-in Serve REST API (the lab image carries
# ray[default], not ray[serve]: see docs/benchmarks.md).
STANDIN = textwrap.dedent("""\
    import http.server, json, sys, time
    started, port, running_after = time.time(), int(sys.argv[1]), float(sys.argv[2])
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status = "RUNNING" if time.time() - started > running_after else "DEPLOYING"
            body = json.dumps({"applications": {"api": {"status": status}}}).encode()
            self.send_response(200); self.end_headers(); self.wfile.write(body)
        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    server.timeout = 1
    while time.time() - started < 40:
        server.handle_request()
""")
GATE = ["/usr/bin/python3", "/usr/local/libexec/fleetwarden/fleetwarden-worker", "ray-ready"]


def gate(cluster, *args, timeout=60):
    return ray_lab.host_run(cluster.head, *GATE, *args, timeout=timeout)


def test_the_gate_names_the_gcs_when_it_does_not_answer(cluster):
    head = cluster.head.name
    result = gate(cluster, "--gcs", f"{head}:6390", "--timeout", "3")
    assert result.returncode == 1
    assert f"Ray head not ready after 3s: GCS at {head}:6390:" in result.stderr
    assert f"waiting for the Ray head: GCS at {head}:6390" in result.stdout


def test_the_gate_names_the_serve_rest_api_of_the_real_dashboard(cluster):
    # The real dashboard answers 501 without ray[serve]: not ready, and with no health fallback it says so.
    result = gate(cluster, "--gcs", f"{cluster.head.name}:6379", "--serve-app", "api", "--timeout", "3")
    assert result.returncode == 1
    assert "Serve REST API at http://127.0.0.1:8265: HTTP 501" in result.stderr


def test_the_gate_waits_for_serve_applications_to_run(cluster):
    ray_lab.host_run(cluster.head, "docker", "exec", "-d", "ray-head", "python3", "-c", STANDIN, "18777", "4",
                     check=True)
    time.sleep(0.5)
    gcs = f"{cluster.head.name}:6379"
    result = gate(cluster, "--gcs", gcs, "--dashboard", "http://127.0.0.1:18777", "--serve-app", "api",
                  "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert "waiting for the Ray head: Serve application api (DEPLOYING)" in result.stdout
    assert f"Ray head ready: GCS at {gcs}; Serve applications RUNNING: api" in result.stdout
    stuck = gate(cluster, "--gcs", gcs, "--dashboard", "http://127.0.0.1:18777", "--serve-app", "api",
                 "--serve-app", "batch", "--timeout", "2")
    assert stuck.returncode == 1 and "Serve application batch (not deployed)" in stuck.stderr
