"""Unit tests for the worker_service role's host tool (roles/worker_service/files/fleetwarden_worker.py).

The gRPC health check talks to a fake HTTP/2 server on loopback; supervise runs against a fake docker CLI.
"""

import importlib.util
import json
import os
import socket
import struct
import textwrap
import threading
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[3] / "roles" / "worker_service" / "files" / "fleetwarden_worker.py"
spec = importlib.util.spec_from_file_location("fleetwarden_worker", TOOL)
fw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fw)


def frame(frame_type, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([frame_type, flags]) + struct.pack(">I", stream) + payload


def health_message(status):
    message = b"\x08" + bytes([status]) if status else b""
    return b"\x00" + struct.pack(">I", len(message)) + message


@pytest.fixture
def fake_grpc():
    """A loopback server that answers one health check with the canned frames it is given (or stays silent)."""
    servers = []

    def start(reply_frames):
        server = socket.create_server(("127.0.0.1", 0))
        received = []

        def serve():
            conn, _ = server.accept()
            with conn:
                data = conn.recv(65536)
                received.append(data)
                if reply_frames is not None:
                    conn.sendall(b"".join(reply_frames))
                    conn.recv(65536)  # the client's SETTINGS ack, or its close
                else:
                    conn.recv(65536)

        threading.Thread(target=serve, daemon=True).start()
        servers.append(server)
        return server.getsockname()[1], received

    yield start
    for server in servers:
        server.close()


def reply(status):
    return [frame(4, 0, 0, b"\x00\x04\x00\x40\x00\x00"), frame(6, 0, 0, b"\x00" * 8), frame(1, 4, 1, b"\x88"),
            frame(0, 0, 1, health_message(status)), frame(1, 5, 1, b"\x40\x0bgrpc-status\x010")]


def test_grpc_health_reads_serving(fake_grpc):
    port, received = fake_grpc(reply(1))
    assert fw.grpc_health("127.0.0.1", port, timeout=2) == (True, "SERVING")
    request = received[0]
    assert request.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert b"/grpc.health.v1.Health/Check" in request and b"application/grpc" in request


def test_grpc_health_reads_not_serving(fake_grpc):
    port, _ = fake_grpc(reply(2))
    assert fw.grpc_health("127.0.0.1", port, timeout=2) == (False, "NOT_SERVING")


def test_grpc_health_times_out_on_a_hung_server(fake_grpc):
    port, _ = fake_grpc(None)  # accepts, never answers: a SIGSTOPped raylet
    ok, detail = fw.grpc_health("127.0.0.1", port, timeout=0.3)
    assert not ok and detail == "no answer within 0.3s"


def test_grpc_health_reports_a_closed_port():
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    ok, detail = fw.grpc_health("127.0.0.1", port, timeout=1)
    assert not ok and "refused" in detail.lower()


def test_parse_frames_keeps_partial_frames_for_later():
    data = frame(4, 0, 0, b"abc") + frame(0, 1, 1, b"hello")[:7]
    frames, rest = fw.parse_frames(data)
    assert frames == [(4, 0, 0, b"abc")] and rest == frame(0, 1, 1, b"hello")[:7]


@pytest.mark.parametrize(("body", "status"), [(health_message(1), "SERVING"), (health_message(2), "NOT_SERVING"),
                                              (health_message(0), "UNKNOWN"), (b"", "")])
def test_health_status(body, status):
    assert fw.health_status(body) == status


# --- probe ----------------------------------------------------------------------------------------------------------
def test_probe_counter_restarts_after_k_failures_in_a_row():
    counter = fw.ProbeCounter(threshold=3, start_period=0, now=0)
    assert [counter.record(False, "hung", t) for t in (1, 2)] == [None, None]
    assert counter.record(True, "ok", 3) is None  # a pass resets the count
    assert [counter.record(False, "hung", t) for t in (4, 5, 6)] == [None, None, "restart"]


def test_probe_counter_forgives_failures_in_the_start_period_until_a_pass():
    counter = fw.ProbeCounter(threshold=2, start_period=30, now=0)
    assert [counter.record(False, "starting", t) for t in (1, 5, 10)] == [None, None, None]
    assert counter.record(None, "dockerd away", 11) is None
    assert counter.record(True, "ok", 12) is None
    assert [counter.record(False, "hung", t) for t in (13, 14)] == [None, "restart"]
    # Past the start period, failures count even without a pass.
    late = fw.ProbeCounter(threshold=1, start_period=5, now=0)
    assert late.record(False, "never started", 6) == "restart"


def test_probe_checks_heartbeat_age_through_the_containers_root(tmp_path):
    heartbeat = tmp_path / "hb"
    heartbeat.write_text("")
    state = ("id", True, 0, os.getpid(), "")
    probe = {"heartbeat": {"path": str(heartbeat), "max_age": 30}, "timeout": 1}
    assert fw.probe_checks(probe, state, "w") == (True, "ok")
    os.utime(heartbeat, (1, 1))
    ok, reason = fw.probe_checks(probe, state, "w")
    assert not ok and "old (max 30s)" in reason
    heartbeat.unlink()
    assert fw.probe_checks(probe, state, "w") == (False, f"heartbeat file {heartbeat} is missing")


def test_probe_checks_the_raylet_over_grpc(fake_grpc):
    port, _ = fake_grpc(None)
    probe = {"raylet": {"port": port}, "timeout": 0.3, "host_network": True}
    ok, reason = fw.probe_checks(probe, ("id", True, 0, os.getpid(), "10.0.0.9"), "w")
    assert not ok and reason == f"raylet at 127.0.0.1:{port}: no answer within 0.3s"


def test_probe_concludes_nothing_while_dockerd_is_away_or_the_container_is_down():
    assert fw.probe_checks({"heartbeat": {"path": "/x", "max_age": 1}}, None, "w")[0] is None
    assert fw.probe_checks({"heartbeat": {"path": "/x", "max_age": 1}}, ("id", False, 1, 0, ""), "w")[0] is None


# --- readiness ------------------------------------------------------------------------------------------------------
SERVE = {"applications": {"api": {"status": "RUNNING"}, "batch": {"status": "DEPLOYING"}}}


def test_serve_pending_names_what_is_not_running():
    assert fw.serve_pending(SERVE, ["api"]) == []
    assert fw.serve_pending(SERVE, ["api", "batch", "gone"]) == ["batch (DEPLOYING)", "gone (not deployed)"]


def fake_get(answers):
    return lambda url, timeout=5.0: answers[url]


def test_ray_not_ready_waits_for_the_gcs_first():
    pending = fw.ray_not_ready("head:6379", "http://head:8265", ["api"], "", health=lambda h, p: (False, "refused"))
    assert pending == ["GCS at head:6379: refused"]


def up(host, port):
    """A gRPC health check that always answers SERVING."""
    return True, "SERVING"


def test_ray_not_ready_needs_every_declared_serve_app_running():
    rest = "http://head:8265/api/serve/applications/"
    assert fw.ray_not_ready("head:6379", "http://head:8265", [], "", health=up) == []
    get = fake_get({rest: (200, json.dumps(SERVE).encode())})
    assert fw.ray_not_ready("head:6379", "http://head:8265", ["api"], "", get=get, health=up) == []
    assert fw.ray_not_ready("head:6379", "http://head:8265", ["api", "batch"], "", get=get, health=up) == [
        "Serve application batch (DEPLOYING)"]


def test_ray_not_ready_falls_back_to_http_health_when_the_rest_api_is_absent():
    rest = "http://head:8265/api/serve/applications/"
    get = fake_get({rest: (None, "Connection refused"), "http://head:8000/-/healthz": (200, b"success")})
    assert fw.ray_not_ready("head:6379", "http://head:8265", ["api"], "http://head:8000/-/healthz", get=get,
                            health=up) == []
    get = fake_get({rest: (404, b""), "http://head:8000/-/healthz": (503, b"")})
    assert fw.ray_not_ready("head:6379", "http://head:8265", ["api"], "http://head:8000/-/healthz", get=get,
                            health=up) == ["Serve REST API at http://head:8265: HTTP 404",
                                           "HTTP health http://head:8000/-/healthz: HTTP 503"]


class FakeClock:
    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_for_backs_off_until_the_port_answers(monkeypatch):
    answers = iter([(False, "refused")] * 4 + [(True, "accepts connections")])
    monkeypatch.setattr(fw, "tcp_open", lambda host, port: next(answers))
    clock = FakeClock()
    assert fw.wait_for("head:6379", "tcp", 0, clock=clock, sleep=clock.sleep) == 0
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]


def test_wait_for_gives_up_after_its_timeout(monkeypatch, capsys):
    monkeypatch.setattr(fw, "grpc_health", lambda host, port: (False, "refused"))
    clock = FakeClock()
    assert fw.wait_for("head:6379", "grpc", 20, clock=clock, sleep=clock.sleep) == 1
    assert clock.now >= 20 and max(clock.sleeps) == 5.0
    assert "head:6379 not ready after" in capsys.readouterr().err


def test_ray_ready_fails_naming_what_was_not_ready(monkeypatch, capsys):
    monkeypatch.setattr(fw, "ray_not_ready", lambda *a: ["GCS at head:6379: refused"])
    clock = FakeClock()
    args = fw.argparse.Namespace(gcs="head:6379", dashboard="", serve_app=[], health_url="", timeout=10)
    assert fw.ray_ready(args, clock=clock, sleep=clock.sleep) == 1
    out = capsys.readouterr()
    assert "waiting for the Ray head: GCS at head:6379: refused" in out.out
    assert "Ray head not ready after 10s: GCS at head:6379: refused" in out.err


# --- alert ----------------------------------------------------------------------------------------------------------
def test_alert_placeholders_fill_known_names_only():
    facts = {"unit": "fleetwarden-worker-w.service", "exit_status": "3"}
    assert fw.fill_placeholders("{unit} exited {exit_status} {json}", facts) == (
        "fleetwarden-worker-w.service exited 3 {json}")


def test_alert_runs_the_command_with_the_unit_and_exit_status(tmp_path, monkeypatch):
    (tmp_path / "w.json").write_text(json.dumps({"alert": {"command": [
        "/bin/sh", "-c", 'echo "$FLEETWARDEN_UNIT $FLEETWARDEN_EXIT_STATUS $1" > "$0"', str(tmp_path / "out"),
        "{result}"]}}))
    monkeypatch.setattr(fw, "CONFIG_DIR", str(tmp_path))
    monkeypatch.setattr(fw, "unit_properties", lambda unit: {"Result": "start-limit-hit", "ExecMainStatus": "3"})
    assert fw.alert("fleetwarden-worker-w.service") == 0
    assert (tmp_path / "out").read_text() == "fleetwarden-worker-w.service 3 start-limit-hit\n"


# --- supervise ------------------------------------------------------------------------------------------------------
FAKE_DOCKER = textwrap.dedent("""\
    #!/bin/sh
    # A scripted docker CLI: each call pops the next answer for its subcommand from $STATE/<cmd>.
    cmd=$1
    file="$STATE/$cmd"
    [ -s "$file" ] || { echo "no script for $cmd" >&2; exit 99; }
    line=$(head -n 1 "$file"); tail -n +2 "$file" > "$file.tmp"; mv "$file.tmp" "$file"
    echo "$*" >> "$STATE/calls"
    rc=${line%%|*}; out=${line#*|}
    [ -n "$out" ] && echo "$out"
    [ "$rc" = 0 ] || echo "error: $out" >&2
    exit "$rc"
""")


@pytest.fixture
def docker_script(tmp_path, monkeypatch):
    binary = tmp_path / "docker"
    binary.write_text(FAKE_DOCKER)
    binary.chmod(0o755)
    monkeypatch.setenv("STATE", str(tmp_path))
    monkeypatch.setattr(fw, "DOCKER", str(binary))
    monkeypatch.setattr(fw.time, "sleep", lambda s: None)

    def script(**answers):
        for cmd, lines in answers.items():
            (tmp_path / cmd).write_text("".join(line + "\n" for line in lines))
        return tmp_path / "calls"
    return script


def test_supervise_survives_a_dockerd_restart_and_exits_with_the_containers_status(docker_script, capsys):
    calls = docker_script(
        start=["0|w"],
        # after the start; then twice "daemon down"; then running again with the same ID.
        inspect=["0|abc123 true 0 42 ", "1|Cannot connect to the Docker daemon", "1|Cannot connect",
                 "0|abc123 true 0 42 "],
        wait=["1|unexpected EOF", "0|3"])
    assert fw.supervise("w", stop_timeout=5) == 3
    log = capsys.readouterr().err
    assert "kept running" in log and "exited with status 3" in log
    assert calls.read_text().count("wait w") == 2


def test_supervise_fails_when_the_container_was_replaced_behind_its_back(docker_script):
    docker_script(start=["0|w"], inspect=["0|abc123 true 0 42 ", "0|def456 true 0 43 "], wait=["1|unexpected EOF"])
    assert fw.supervise("w", stop_timeout=5) == 1


def test_supervise_fails_when_the_container_cannot_start(docker_script):
    docker_script(start=["1|runtime nvidia not found"])
    assert fw.supervise("w", stop_timeout=5) == 1


def _observations(*rounds):
    """observe() returning each round in turn, the last one for ever."""
    rounds = list(rounds)

    def observe():
        return rounds.pop(0) if len(rounds) > 1 else rounds[0]
    return observe


def test_settle_needs_the_probe_to_pass_through_the_whole_window():
    clock = FakeClock()
    observe = _observations((False, None, "0", "container not running"), *[(True, "c1", "0", "ok")] * 3)
    verdict = fw.settle_verdict(observe, window=10, timeout=60, interval=1, clock=clock, sleep=clock.sleep)
    assert verdict["healthy"] is True and verdict["settled_s"] >= 10 and verdict["container_id"] == "c1"


@pytest.mark.parametrize(("later", "reason"), [
    ((True, "c2", "0", "ok"), "the container was replaced"),
    ((True, "c1", "1", "ok"), "the unit restarted (NRestarts 0 -> 1)"),
    ((False, "c1", "0", "probe command exited 1: dead"), "probe command exited 1"),
])
def test_a_restart_or_failed_probe_in_the_window_is_not_healthy(later, reason):
    # A crash loop passes one instant (the first round) and fails the window.
    clock = FakeClock()
    observe = _observations((True, "c1", "0", "ok"), (True, "c1", "0", "ok"), later)
    verdict = fw.settle_verdict(observe, window=10, timeout=60, interval=1, clock=clock, sleep=clock.sleep)
    assert verdict["healthy"] is False and reason in verdict["reason"]


def test_settle_gives_up_at_the_timeout_naming_the_last_reason():
    clock = FakeClock()
    verdict = fw.settle_verdict(_observations((False, None, "3", "fleetwarden-worker-x.service is failed")),
                                window=10, timeout=30, interval=1, clock=clock, sleep=clock.sleep)
    assert verdict["healthy"] is False and "within 30 s: fleetwarden-worker-x.service is failed" in verdict["reason"]
