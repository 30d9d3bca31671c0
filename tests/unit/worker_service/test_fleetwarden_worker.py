"""Unit tests for the worker_service role's host tool (roles/worker_service/files/fleetwarden_worker/, run by the
fleetwarden-worker script beside it).

The gRPC health check talks to a real grpcio server on loopback (the grpcio the test extra pins is the version
Debian ships to hosts); supervise runs against a fake docker CLI.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import yaml

FILES = Path(__file__).resolve().parents[3] / "roles" / "worker_service" / "files"
COLLECTIONS = FILES.parents[2] / "collections"
sys.path.insert(0, str(FILES))

from fleetwarden_worker import alert, cli, common, deaths, health, probe, settle, supervise, waiting  # noqa: E402 - after the path

SERVING, NOT_SERVING = 1, 2


@pytest.fixture
def grpc_server():
    """A real gRPC server on loopback whose grpc.health.v1 Check answers the status it is given."""
    servers = []

    def start(status, delay=0.0):
        seen = []

        def check(request, context):
            seen.append(request)
            time.sleep(delay)
            return status

        handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(
                check, request_deserializer=lambda data: data,
                response_serializer=lambda value: (b"\x08" + bytes([value])) if value else b"")})
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return port, seen

    yield start
    for server in servers:
        server.stop(None)


@pytest.fixture
def silent_port():
    """A port that accepts connections and never says a word: a SIGSTOPped raylet."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    yield server.getsockname()[1]
    for conn, _ in accepted:
        conn.close()
    server.close()


def test_grpc_health_reads_serving(grpc_server):
    port, seen = grpc_server(SERVING)
    assert health.grpc_health("127.0.0.1", port, timeout=2) == (True, "SERVING")
    assert seen == [b""]  # the whole server: an empty HealthCheckRequest


def test_grpc_health_reads_not_serving_and_unknown(grpc_server):
    port, _ = grpc_server(NOT_SERVING)
    assert health.grpc_health("127.0.0.1", port, timeout=2) == (False, "NOT_SERVING")
    port, _ = grpc_server(0)
    assert health.grpc_health("127.0.0.1", port, timeout=2) == (False, "UNKNOWN")


def test_grpc_health_asks_for_a_named_service(grpc_server):
    port, seen = grpc_server(SERVING)
    assert health.grpc_health("127.0.0.1", port, timeout=2, service="raylet")[0] is True
    assert seen == [b"\x0a\x06raylet"]


def test_grpc_health_times_out_on_a_hung_server(silent_port):
    ok, detail = health.grpc_health("127.0.0.1", silent_port, timeout=0.3)
    assert not ok and detail == "no answer within 0.3s"


def test_grpc_health_times_out_on_a_slow_answer(grpc_server):
    port, _ = grpc_server(SERVING, delay=1.0)
    assert health.grpc_health("127.0.0.1", port, timeout=0.3) == (False, "no answer within 0.3s")


def test_grpc_health_reports_a_closed_port():
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    ok, detail = health.grpc_health("127.0.0.1", port, timeout=1)
    assert not ok and "refused" in detail.lower()


@pytest.mark.parametrize(("message", "status"), [
    (b"\x08\x01", "SERVING"), (b"\x08\x02", "NOT_SERVING"), (b"", "UNKNOWN"), (b"\x08\x03", "SERVICE_UNKNOWN"),
    (b"\x08\x07", "status 7"),
    (b"\x12\x03abc\x08\x01", "SERVING"),  # an unknown field before the status is skipped
    (b"\x08\x80\x01", "status 128"),  # a two-byte varint
])
def test_decode_status(message, status):
    assert health.decode_status(message) == status


@pytest.mark.parametrize("message", [b"\x08", b"\x12\x05ab", b"\x0b"])
def test_decode_status_refuses_a_truncated_or_unknown_message(message):
    with pytest.raises(ValueError):
        health.decode_status(message)


def test_encode_request():
    assert health.encode_request("") == b""
    assert health.encode_request("x" * 200) == b"\x0a\xc8\x01" + b"x" * 200


# --- probe ----------------------------------------------------------------------------------------------------------
def test_probe_counter_restarts_after_k_failures_in_a_row():
    counter = probe.ProbeCounter(threshold=3, start_period=0, now=0)
    assert [counter.record(False, "hung", t) for t in (1, 2)] == [None, None]
    assert counter.record(True, "ok", 3) is None  # a pass resets the count
    assert [counter.record(False, "hung", t) for t in (4, 5, 6)] == [None, None, "restart"]


def test_probe_counter_forgives_failures_in_the_start_period_until_a_pass():
    counter = probe.ProbeCounter(threshold=2, start_period=30, now=0)
    assert [counter.record(False, "starting", t) for t in (1, 5, 10)] == [None, None, None]
    assert counter.record(None, "dockerd away", 11) is None
    assert counter.record(True, "ok", 12) is None
    assert [counter.record(False, "hung", t) for t in (13, 14)] == [None, "restart"]
    # Past the start period, failures count even without a pass.
    late = probe.ProbeCounter(threshold=1, start_period=5, now=0)
    assert late.record(False, "never started", 6) == "restart"


def test_probe_checks_heartbeat_age_through_the_containers_root(tmp_path):
    heartbeat = tmp_path / "hb"
    heartbeat.write_text("")
    state = ("id", True, 0, os.getpid(), "")
    config = {"heartbeat": {"path": str(heartbeat), "max_age": 30}, "timeout": 1}
    assert probe.probe_checks(config, state, "w") == (True, "ok")
    os.utime(heartbeat, (1, 1))
    ok, reason = probe.probe_checks(config, state, "w")
    assert not ok and "old (max 30s)" in reason
    heartbeat.unlink()
    assert probe.probe_checks(config, state, "w") == (False, f"heartbeat file {heartbeat} is missing")


def test_probe_checks_the_raylet_over_grpc(silent_port, grpc_server):
    state = ("id", True, 0, os.getpid(), "10.0.0.9")
    config = {"raylet": {"port": silent_port}, "timeout": 0.3, "host_network": True}
    ok, reason = probe.probe_checks(config, state, "w")
    assert not ok and reason == f"raylet at 127.0.0.1:{silent_port}: no answer within 0.3s"
    port, _ = grpc_server(SERVING)
    # A serving raylet gets a timeout no loaded machine runs out of: the answer, not its speed, is under test.
    assert probe.probe_checks({**config, "raylet": {"port": port}, "timeout": 10}, state, "w") == (True, "ok")


def test_probe_concludes_nothing_while_dockerd_is_away_or_the_container_is_down():
    assert probe.probe_checks({"heartbeat": {"path": "/x", "max_age": 1}}, None, "w")[0] is None
    assert probe.probe_checks({"heartbeat": {"path": "/x", "max_age": 1}}, ("id", False, 1, 0, ""), "w")[0] is None


def test_a_round_on_the_host_network_asks_the_raylet_while_docker_inspect_runs(tmp_path, monkeypatch):
    # docker inspect answers only once the raylet was asked: a round that asked them one after the other would
    # wait here until the fake's deadline and conclude nothing (dockerd away).
    release, asked = tmp_path / "release", []
    fake = tmp_path / "docker"
    fake.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        for i in $(seq 100); do [ -e {release} ] && break; sleep 0.05; done
        [ -e {release} ] || exit 1
        echo "abc123 true 0 42 "
    """))
    fake.chmod(0o755)
    monkeypatch.setattr(common, "DOCKER", str(fake))

    def grpc_health(host, port, timeout):
        asked.append((host, port, timeout))
        release.touch()
        return False, "no answer within 1s"
    monkeypatch.setattr(probe.health, "grpc_health", grpc_health)
    config = {"raylet": {"port": 8076}, "timeout": 1, "host_network": True}
    assert probe.probe_round(config, "w") == (False, "raylet at 127.0.0.1:8076: no answer within 1s")
    assert asked == [("127.0.0.1", 8076, 1)]
    # The raylet was asked once, not again by probe_checks; a container that is not running concludes nothing.
    release.unlink()
    fake.write_text(fake.read_text().replace("true 0 42", "false 137 0"))
    assert probe.probe_round(config, "w")[0] is None


def test_container_state_later_reads_what_container_state_reads(docker_script):
    docker_script(inspect=["0|abc123 true 0 42 10.0.0.2", "1|Error: No such object: w", "1|Cannot connect"])
    assert common.container_state_later("w")() == ("abc123", True, 0, 42, "10.0.0.2")
    assert common.container_state_later("w")() == ()
    assert common.container_state_later("w")() is None


# --- readiness ------------------------------------------------------------------------------------------------------
SERVE = {"applications": {"api": {"status": "RUNNING"}, "batch": {"status": "DEPLOYING"}}}


def test_serve_pending_names_what_is_not_running():
    assert waiting.serve_pending(SERVE, ["api"]) == []
    assert waiting.serve_pending(SERVE, ["api", "batch", "gone"]) == ["batch (DEPLOYING)", "gone (not deployed)"]


def fake_get(answers):
    return lambda url, timeout=5.0: answers[url]


def test_ray_not_ready_waits_for_the_gcs_first():
    pending = waiting.ray_not_ready("head:6379", "http://head:8265", ["api"], "",
                                    health_check=lambda h, p: (False, "refused"))
    assert pending == ["GCS at head:6379: refused"]


def up(host, port):
    """A gRPC health check that always answers SERVING."""
    return True, "SERVING"


def test_ray_not_ready_needs_every_declared_serve_app_running():
    rest = "http://head:8265/api/serve/applications/"
    assert waiting.ray_not_ready("head:6379", "http://head:8265", [], "", health_check=up) == []
    get = fake_get({rest: (200, json.dumps(SERVE).encode())})
    assert waiting.ray_not_ready("head:6379", "http://head:8265", ["api"], "", get=get, health_check=up) == []
    assert waiting.ray_not_ready("head:6379", "http://head:8265", ["api", "batch"], "", get=get, health_check=up) == [
        "Serve application batch (DEPLOYING)"]


def test_ray_not_ready_falls_back_to_http_health_when_the_rest_api_is_absent():
    rest = "http://head:8265/api/serve/applications/"
    get = fake_get({rest: (None, "Connection refused"), "http://head:8000/-/healthz": (200, b"success")})
    assert waiting.ray_not_ready("head:6379", "http://head:8265", ["api"], "http://head:8000/-/healthz", get=get,
                            health_check=up) == []
    get = fake_get({rest: (404, b""), "http://head:8000/-/healthz": (503, b"")})
    assert waiting.ray_not_ready("head:6379", "http://head:8265", ["api"], "http://head:8000/-/healthz", get=get,
                            health_check=up) == ["Serve REST API at http://head:8265: HTTP 404",
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
    monkeypatch.setattr(health, "tcp_open", lambda host, port: next(answers))
    clock = FakeClock()
    assert waiting.wait_for("head:6379", "tcp", 0, clock=clock, sleep=clock.sleep) == 0
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]


def test_wait_for_removes_the_leftover_container_while_it_waits(docker_script, monkeypatch):
    answers = iter([(False, "connection refused"), (True, "SERVING")])
    monkeypatch.setattr(waiting.health, "grpc_health", lambda host, port: next(answers))
    calls = docker_script(rm=["0|w"])
    assert waiting.wait_for("head:6379", "grpc", 0, remove="w", sleep=lambda s: None) == 0
    assert calls.read_text() == "rm --force w\n"
    # A container that is already gone is no error; the wait's own verdict stands.
    docker_script(rm=["1|Error: No such container: w"])
    monkeypatch.setattr(waiting.health, "grpc_health", lambda host, port: (True, "SERVING"))
    assert waiting.wait_for("head:6379", "grpc", 0, remove="w") == 0


def test_wait_for_gives_up_after_its_timeout(monkeypatch, capsys):
    monkeypatch.setattr(health, "grpc_health", lambda host, port: (False, "refused"))
    clock = FakeClock()
    assert waiting.wait_for("head:6379", "grpc", 20, clock=clock, sleep=clock.sleep) == 1
    assert clock.now >= 20 and max(clock.sleeps) == 5.0
    assert "head:6379 not ready after" in capsys.readouterr().err


def test_ray_ready_fails_naming_what_was_not_ready(monkeypatch, capsys):
    monkeypatch.setattr(waiting, "ray_not_ready", lambda *a: ["GCS at head:6379: refused"])
    clock = FakeClock()
    args = argparse.Namespace(gcs="head:6379", dashboard="", serve_app=[], health_url="", timeout=10)
    assert waiting.ray_ready(args, clock=clock, sleep=clock.sleep) == 1
    out = capsys.readouterr()
    assert "waiting for the Ray head: GCS at head:6379: refused" in out.out
    assert "Ray head not ready after 10s: GCS at head:6379: refused" in out.err


# --- alert ----------------------------------------------------------------------------------------------------------
def test_alert_placeholders_fill_known_names_only():
    facts = {"unit": "fleetwarden-worker-w.service", "exit_status": "3"}
    assert alert.fill_placeholders("{unit} exited {exit_status} {json}", facts) == (
        "fleetwarden-worker-w.service exited 3 {json}")


def test_alert_runs_the_command_with_the_unit_and_exit_status(tmp_path, monkeypatch):
    (tmp_path / "w.json").write_text(json.dumps({"alert": {"command": [
        "/bin/sh", "-c", 'echo "$FLEETWARDEN_UNIT $FLEETWARDEN_EXIT_STATUS $1" > "$0"', str(tmp_path / "out"),
        "{result}"]}}))
    monkeypatch.setattr(common, "CONFIG_DIR", str(tmp_path))
    monkeypatch.setattr(common, "unit_properties", lambda unit: {"Result": "start-limit-hit", "ExecMainStatus": "3"})
    assert alert.alert("fleetwarden-worker-w.service") == 0
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
    monkeypatch.setattr(common, "DOCKER", str(binary))
    monkeypatch.setattr(deaths, "INCIDENT_ROOT", str(tmp_path / "incidents"))
    monkeypatch.setattr(supervise.time, "sleep", lambda s: None)

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
    assert supervise.supervise("w", stop_timeout=5) == 3
    log = capsys.readouterr().err
    assert "kept running" in log and "exited with status 3" in log
    assert calls.read_text().count("wait w") == 2


def test_supervise_fails_when_the_container_was_replaced_behind_its_back(docker_script):
    docker_script(start=["0|w"], inspect=["0|abc123 true 0 42 ", "0|def456 true 0 43 "], wait=["1|unexpected EOF"])
    assert supervise.supervise("w", stop_timeout=5) == 1


def test_supervise_fails_when_the_container_cannot_start(docker_script):
    docker_script(start=["1|runtime nvidia not found"])
    assert supervise.supervise("w", stop_timeout=5) == 1


def _observations(*rounds):
    """observe() returning each round in turn, the last one for ever."""
    rounds = list(rounds)

    def observe():
        return rounds.pop(0) if len(rounds) > 1 else rounds[0]
    return observe


def test_settle_needs_the_probe_to_pass_through_the_whole_window():
    clock = FakeClock()
    observe = _observations((False, None, "0", "container not running"), *[(True, "c1", "0", "ok")] * 3)
    verdict = settle.settle_verdict(observe, window=10, timeout=60, interval=1, clock=clock, sleep=clock.sleep)
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
    verdict = settle.settle_verdict(observe, window=10, timeout=60, interval=1, clock=clock, sleep=clock.sleep)
    assert verdict["healthy"] is False and reason in verdict["reason"]


def test_settle_gives_up_at_the_timeout_naming_the_last_reason():
    clock = FakeClock()
    verdict = settle.settle_verdict(_observations((False, None, "3", "fleetwarden-worker-x.service is failed")),
                                window=10, timeout=30, interval=1, clock=clock, sleep=clock.sleep)
    assert verdict["healthy"] is False and "within 30 s: fleetwarden-worker-x.service is failed" in verdict["reason"]


# --- the script and its package -------------------------------------------------------------------------------------
def run_tool(*args, timeout=60):
    # On a host the role copies the collection's module_utils into the tool's library; here collections/ has them.
    env = dict(os.environ, FLEETWARDEN_WORKER_LIB=str(FILES), PYTHONPATH=str(COLLECTIONS))
    return subprocess.run([sys.executable, str(FILES / "fleetwarden-worker"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_the_script_runs_a_subcommand_from_the_package(grpc_server):
    port, _ = grpc_server(SERVING)
    done = run_tool("wait-for", "--check", "grpc", "--timeout", "10", f"127.0.0.1:{port}")
    assert done.returncode == 0, done.stderr
    assert f"127.0.0.1:{port} is ready (SERVING)" in done.stderr


def test_the_script_keeps_its_command_line():
    done = run_tool("--help")
    assert done.returncode == 0
    for command in ("supervise", "probe", "alert", "settle", "wait-for", "ray-ready"):
        assert command in done.stdout
    assert set(cli.COMMANDS) == {"supervise", "probe", "alert", "settle", "wait-for", "ray-ready"}


def test_grpcio_is_loaded_only_for_a_grpc_check():
    # supervise and alert never check; a probe without a raylet check runs without grpcio (about 15 MiB each).
    code = ("import sys; sys.path[:0] = sys.argv[1:]; "
            "from fleetwarden_worker import alert, cli, probe, settle, supervise, waiting; "
            "print([m for m in sys.modules if m.startswith('grpc')])")
    done = subprocess.run([sys.executable, "-c", code, str(FILES), str(COLLECTIONS)], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_the_script_reads_the_package_where_the_role_installs_it():
    role_vars = yaml.safe_load((FILES.parent / "vars" / "main.yml").read_text())
    assert f'"{role_vars["_worker_service_lib"]}"' in (FILES / "fleetwarden-worker").read_text()


# --- death records ------------------------------------------------------------------------------------------------
DEAD = {"Id": "c" * 64, "Config": {"Image": "img", "Env": ["PATH=/bin", "API_TOKEN=s3cr3t-token-value"]},
        "State": {"Status": "exited", "Running": False, "OOMKilled": False, "ExitCode": 137,
                  "StartedAt": "2026-11-27T22:00:00Z", "FinishedAt": "2026-11-27T22:01:00Z"},
        "HostConfig": {"ShmSize": 67108864}}


def test_supervise_records_the_death_before_the_unit_replaces_the_container(docker_script, tmp_path, capsys):
    calls = docker_script(start=["0|w"], inspect=["0|abc123 true 0 42 ", "0|" + json.dumps([DEAD])],
                          wait=["0|137"], logs=["0|2026-11-27T22:00:59Z using s3cr3t-token-value"])
    assert supervise.supervise("w", stop_timeout=5) == 137
    (path,) = (tmp_path / "incidents" / "_deaths" / "w").iterdir()
    record = json.loads(path.read_text())
    assert record["container_id"] == "c" * 64 and record["state"]["ExitCode"] == 137
    assert record["log_tail"] == ["2026-11-27T22:00:59Z using <redacted>"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert "inspect --type container w" in calls.read_text() and "recorded the death of w" in capsys.readouterr().err


def test_a_death_that_cannot_be_recorded_does_not_stop_the_restart(docker_script, capsys):
    docker_script(start=["0|w"], inspect=["0|abc123 true 0 42 ", "1|No such container: w"], wait=["0|1"])
    assert supervise.supervise("w", stop_timeout=5) == 1
    assert "cannot record the death of w" in capsys.readouterr().err


def test_the_tool_records_deaths_where_recovery_reads_them():
    defaults = yaml.safe_load((FILES.parents[1] / "recovery" / "defaults" / "main.yml").read_text())
    assert deaths.INCIDENT_ROOT == defaults["recovery_incident_root"]


def test_the_role_copies_every_module_util_the_tool_imports():
    role_vars = yaml.safe_load((FILES.parent / "vars" / "main.yml").read_text())
    utils = FILES.parents[2] / "plugins" / "module_utils"
    imports = re.compile(r"^from ansible_collections\.fleetwarden\.fleet\.plugins\.module_utils(?:\.| import )(_\w+)",
                         re.M)
    tool = re.compile(imports.pattern.replace("^from", r"^\s*from"), re.M)  # deaths.py imports inside a function
    found = tool.findall("\n".join(path.read_text() for path in (FILES / "fleetwarden_worker").glob("*.py")))
    assert {"_death_record", "_diagnosis", "_worker_state"} <= set(found)
    needed, todo = set(), sorted(set(found))  # what the tool's package imports
    while todo:
        name = todo.pop()
        needed.add(name + ".py")
        found = imports.findall((utils / (name + ".py")).read_text())
        todo += [module for module in found if module + ".py" not in needed]
    assert needed <= set(role_vars["_worker_service_shared"]), needed - set(role_vars["_worker_service_shared"])
