"""Receiver test fixtures: a stand-in project (playbook + inventory on localhost) and a receiver on loopback."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from fleetwarden_testing import ray_lab

from fleetwarden.receiver.config import Limits, Settings
from fleetwarden.receiver.run_process import run_job_in_process
from fleetwarden.receiver.server import WEBHOOK_PATH, Receiver

PROJECT = Path(__file__).parent / "project"
HOSTS = {
    "fw-ok-1": {}, "fw-ok-2": {}, "fw-ok-3": {}, "fw-ok-4": {}, "fw-ok-5": {}, "fw-ok-6": {},
    "fw-fail": {"standin_fail": True},
    "fw-slow": {"standin_sleep_s": 60},
}


def write_inventory(path: Path, hosts: dict) -> Path:
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                         "hosts": {name: dict(values) or None for name, values in hosts.items()}}}
    path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path) -> dict:
    """A token file (0600), an inventory of local hosts, the stand-in playbook, a state dir."""
    token = secrets.token_urlsafe(24)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n", encoding="utf-8")
    token_file.chmod(0o600)
    return {
        "token": token,
        "token_file": token_file,
        "inventory": write_inventory(tmp_path / "inventory.yml", HOSTS),
        "playbook": PROJECT / "recover_standin.yml",
        "state_dir": tmp_path / "state",
    }


def make_settings(project: dict, **overrides) -> Settings:
    limits = overrides.pop("limits", Limits())
    values = {"token_file": project["token_file"], "state_dir": project["state_dir"], "playbook": project["playbook"],
              "inventory": project["inventory"], "port": 0, "limits": limits}
    values.update(overrides)
    return Settings(**values)


class RunRecorder:
    """Calls the receiver's real job runner (a run in a process of its own) and remembers each call, so a test
    can say that nothing ran."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def __call__(self, settings, job_id, host, cancel):
        self.calls.append((job_id, host))
        return run_job_in_process(settings, job_id, host, cancel)


class LiveReceiver:
    """A Receiver served by aiohttp on 127.0.0.1 (settings.port; 0 = ephemeral) in a thread of its own."""

    def __init__(self, settings: Settings, inventory=frozenset(HOSTS)):
        self.settings = settings
        self.recorder = RunRecorder()
        self.receiver = Receiver(settings, frozenset(inventory), run_job=self.recorder)
        self.loop = asyncio.new_event_loop()
        self.port = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        asyncio.set_event_loop(self.loop)
        self.runner = self.receiver.runner()
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", self.settings.port)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> LiveReceiver:
        self._thread.start()
        assert self._ready.wait(20), "receiver did not start"
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(90)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def request(url: str, method: str, path: str, body=None, headers: dict | None = None, chunked: bool = False):
    """(status, headers, body) of one HTTP request to the receiver on loopback."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def post(url: str, body, token: str | None, headers: dict | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    status, _, answer = request(url, "POST", WEBHOOK_PATH, data, all_headers)
    return status, json.loads(answer or b"{}")


def alert(host: str | None = None, status: str = "firing", fingerprint: str | None = None,
          starts_at: str = "2026-11-27T18:00:00.123456789Z", ends_at: str = "0001-01-01T00:00:00Z",
          alertname: str = "RayWorkerDown", **labels) -> dict:
    all_labels = {"alertname": alertname, "remediate": "true", **labels}
    if host is not None:
        all_labels["fleet_host"] = host
    return {"status": status, "labels": all_labels, "annotations": {}, "startsAt": starts_at, "endsAt": ends_at,
            "generatorURL": "", "fingerprint": fingerprint or f"fp-{alertname}-{host}"}


def notification(*alerts: dict, version: str = "4") -> dict:
    return {"version": version, "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
            "receiver": "fleetwarden", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:9093", "alerts": list(alerts)}


def db_rows(settings: Settings, query: str, params=()) -> list[dict]:
    with sqlite3.connect(settings.db_path) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(query, params)]


def wait_for(predicate, timeout: float = 60, interval: float = 0.2):
    """The lab's one poller (fleetwarden_testing.ray_lab.wait_until): predicate()'s first truthy value, or an
    AssertionError at the deadline."""
    return ray_lab.wait_until(predicate, timeout, interval=interval, what="the receiver condition")


@pytest.fixture
def live(project):
    """Start a receiver with settings from the test; stop every one at the end."""
    started: list[LiveReceiver] = []

    def start(**overrides) -> LiveReceiver:
        receiver = LiveReceiver(make_settings(project, **overrides)).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        if receiver._thread.is_alive():
            receiver.stop()


# A real Alertmanager (Debian's prometheus-alertmanager) on loopback; scripts/install-engine.sh installs it.
BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def alertmanager(tmp_path, project):
    if BINARY is None:
        if os.environ.get("FLEETWARDEN_REQUIRE_LAB") == "1":
            pytest.fail("prometheus-alertmanager is not installed (scripts/install-engine.sh installs it)")
        pytest.skip("prometheus-alertmanager is not installed")
    port = free_port()

    def start(receiver_port: int):
        config = {
            "route": {"receiver": "fleetwarden-recovery", "group_by": ["alertname", "fleet_host"],
                      "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h",
                      "routes": [{"receiver": "person", "matchers": ['severity="page"']}]},
            "receivers": [
                {"name": "fleetwarden-recovery", "webhook_configs": [{
                    "url": f"http://127.0.0.1:{receiver_port}/v1/alertmanager", "send_resolved": True,
                    "http_config": {"authorization": {"type": "Bearer",
                                                      "credentials_file": str(project["token_file"])}}}]},
                {"name": "person"},
            ],
        }
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
        process = subprocess.Popen(
            [BINARY, f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)

        def ready():
            try:
                return request(url, "GET", "/-/ready")[0] == 200
            except OSError:
                return False

        wait_for(ready, timeout=30)
        return url

    url = f"http://127.0.0.1:{port}"
    started: list[subprocess.Popen] = []
    yield start
    for process in started:
        process.terminate()
        process.wait(10)
