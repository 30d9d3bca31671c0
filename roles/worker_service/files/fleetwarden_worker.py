#!/usr/bin/python3
"""fleetwarden's host-side worker tool, run by the units that fleetwarden.fleet.worker_service writes.

  supervise NAME        the worker unit's main process: starts the container, tells systemd it is
                        ready, waits for it to exit and exits with its status. It survives dockerd
                        restarts (live-restore keeps the container; the unit stays active).
  probe NAME            the liveness probe service: heartbeat age, a command in the container, the
                        raylet's gRPC health; K failures in a row kill the container (the unit restarts it).
  alert UNIT            the OnFailure= hook: the configured command and/or webhook, with the unit's
                        name and last exit status.
  settle NAME           recovery's verdict: within a timeout the container runs and its probe passes, then
                        for a settle window the probe keeps passing, the container stays the same one and
                        its unit does not restart. Prints one JSON line; exit 0 when it settled.
  wait-for HOST:PORT    waits (with backoff) until a TCP port accepts, or a gRPC server says SERVING.
  ray-ready             the Ray head readiness gate: GCS answers, then every declared Serve application
                        RUNNING per the dashboard's REST API (or an HTTP health URL when that API is absent).

Standard library only; reads /etc/fleetwarden/workers/NAME.json (the rendered declaration).
"""

import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

CONFIG_DIR = os.environ.get("FLEETWARDEN_WORKER_CONFIG_DIR", "/etc/fleetwarden/workers")
STATE_DIR = os.environ.get("FLEETWARDEN_WORKER_STATE_DIR", "/run/fleetwarden/workers")
DOCKER = os.environ.get("FLEETWARDEN_DOCKER", "/usr/bin/docker")
SYSTEMCTL = "/usr/bin/systemctl"
# sd-daemon priority prefixes: journald files each line under that priority.
ERR, WARNING, NOTICE, INFO = "<3>", "<4>", "<5>", "<6>"


def log(priority, message):
    print(priority + message, file=sys.stderr, flush=True)


def load_declaration(name):
    with open(os.path.join(CONFIG_DIR, name + ".json")) as handle:
        return json.load(handle)


def sd_notify(message):
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


def docker(*args, timeout=60):
    try:
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess([DOCKER, *args], 124, "", f"timed out after {timeout}s")


def container_state(name):
    """(id, running, exit_code, pid, ip) of the container; None if dockerd does not answer; () if no such container."""
    result = docker("inspect", "--format",
                    "{{.Id}} {{.State.Running}} {{.State.ExitCode}} {{.State.Pid}} {{.NetworkSettings.IPAddress}}",
                    name, timeout=20)
    if result.returncode != 0:
        return () if "No such" in result.stderr else None
    fields = [*result.stdout.split(), ""]
    return fields[0], fields[1] == "true", int(fields[2]), int(fields[3]), fields[4]


# --- supervise --------------------------------------------------------------------------------------------------
def supervise(name, stop_timeout):
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    started = docker("start", name, timeout=300)
    if started.returncode != 0:
        log(ERR, f"docker start {name} failed: {started.stderr.strip()}")
        return 1
    state = container_state(name)
    if not state:
        log(ERR, f"container {name} is gone right after its start")
        return 1
    container_id = state[0]
    log(INFO, f"container {name} ({container_id[:12]}) started")
    sd_notify(f"READY=1\nSTATUS=container {container_id[:12]} running")
    while True:
        waiter = subprocess.Popen([DOCKER, "wait", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while waiter.poll() is None:
            if stopping:
                waiter.kill()
                log(INFO, f"stopping container {name} (up to {stop_timeout}s)")
                docker("stop", "--time", str(stop_timeout), name, timeout=stop_timeout + 20)
                return 0
            time.sleep(0.2)
        out, err = waiter.communicate()
        if waiter.returncode == 0 and out.strip().lstrip("-").isdigit():
            status = int(out.strip())
            log(NOTICE if status == 0 else WARNING, f"container {name} exited with status {status}")
            return status & 0xFF
        # dockerd went away (a restart): with live-restore the container keeps running. Wait for dockerd.
        log(WARNING, f"lost dockerd while waiting for {name} ({err.strip()}); waiting for it to answer")
        sd_notify("STATUS=waiting for dockerd")
        state = container_state(name)
        while state is None and not stopping:
            time.sleep(0.5)
            state = container_state(name)
        if stopping:
            continue
        if state == ():
            log(ERR, f"container {name} no longer exists")
            return 1
        if state[0] != container_id:
            log(ERR, f"container {name} was replaced ({state[0][:12]}, not {container_id[:12]})")
            return 1
        if not state[1]:
            log(WARNING, f"container {name} exited with status {state[2]} while dockerd was away")
            return state[2] & 0xFF
        log(NOTICE, f"dockerd answers again; container {name} ({container_id[:12]}) kept running")
        sd_notify(f"STATUS=container {container_id[:12]} running")


# --- gRPC health over plain HTTP/2 (no grpcio on hosts) ---------------------------------------------------------
def _frame(frame_type, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([frame_type, flags]) + struct.pack(">I", stream) + payload


def _literal_header(name, value):
    # HPACK "literal header field without indexing, new name", no Huffman coding.
    def string(text):
        data = text.encode()
        if len(data) >= 127:
            raise ValueError("header too long")
        return bytes([len(data)]) + data
    return b"\x00" + string(name) + string(value)


def grpc_health_request(authority, service=""):
    headers = b"".join(_literal_header(k, v) for k, v in (
        (":method", "POST"), (":scheme", "http"), (":path", "/grpc.health.v1.Health/Check"),
        (":authority", authority), ("content-type", "application/grpc"), ("te", "trailers")))
    message = (b"\x0a" + bytes([len(service)]) + service.encode()) if service else b""
    data = b"\x00" + struct.pack(">I", len(message)) + message
    return (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0) + _frame(1, 0x4, 1, headers)
            + _frame(0, 0x1, 1, data))


def parse_frames(buffer):
    """Complete frames at the start of buffer -> ([(type, flags, stream, payload)], rest)."""
    frames = []
    while len(buffer) >= 9:
        length = int.from_bytes(buffer[:3], "big")
        if len(buffer) < 9 + length:
            break
        frames.append((buffer[3], buffer[4], int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF, buffer[9:9 + length]))
        buffer = buffer[9 + length:]
    return frames, buffer


HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def health_status(body):
    """A HealthCheckResponse gRPC message (with its 5-byte prefix) -> "SERVING", ...; "" when there is none."""
    if len(body) < 5:
        return ""
    message = body[5:5 + int.from_bytes(body[1:5], "big")]
    if not message:
        return "UNKNOWN"  # proto3: status 0 is not sent
    if message[0] == 0x08 and len(message) >= 2:
        return HEALTH_STATUS.get(message[1], f"status {message[1]}")
    return ""


def grpc_health(host, port, timeout=2.0):
    """(ok, detail): does a gRPC server at host:port answer grpc.health.v1 Check with SERVING within timeout?"""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(grpc_health_request(f"{host}:{port}"))
            buffer, body = b"", b""
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    return False, "connection closed before an answer"
                frames, buffer = parse_frames(buffer + chunk)
                for frame_type, flags, stream, payload in frames:
                    if frame_type == 4 and not flags & 0x1:
                        sock.sendall(_frame(4, 0x1, 0))
                    elif frame_type == 6 and not flags & 0x1:
                        sock.sendall(_frame(6, 0x1, 0, payload))
                    elif frame_type == 0 and stream == 1:
                        body += payload
                    elif stream == 1 and (frame_type == 3 or (frame_type == 1 and flags & 0x1)):
                        status = health_status(body)
                        return status == "SERVING", status or "no health answer (grpc error)"
                    elif frame_type == 7:
                        return False, "server sent GOAWAY"
    except TimeoutError:
        return False, f"no answer within {timeout:g}s"
    except OSError as exc:
        return False, exc.strerror or str(exc)


def tcp_open(host, port, timeout=2.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, "accepts connections"
    except OSError as exc:
        return False, exc.strerror or str(exc)


# --- probe ------------------------------------------------------------------------------------------------------
def probe_checks(probe, state, name):
    """(ok, reason) for one probe round; ok is None when nothing can be concluded (dockerd away, not running)."""
    if state is None:
        return None, "dockerd does not answer"
    if state == () or not state[1]:
        return None, "container not running"
    _, _, _, pid, address = state
    heartbeat = probe.get("heartbeat")
    if heartbeat:
        try:
            age = time.time() - os.stat(f"/proc/{pid}/root{heartbeat['path']}").st_mtime
        except OSError:
            return False, "heartbeat file {} is missing".format(heartbeat["path"])
        if age > heartbeat["max_age"]:
            return False, f"heartbeat file {heartbeat['path']} is {age:.0f}s old (max {heartbeat['max_age']}s)"
    raylet = probe.get("raylet")
    if raylet:
        host = "127.0.0.1" if probe.get("host_network") or not address else address
        ok, detail = grpc_health(host, raylet["port"], timeout=probe["timeout"])
        if not ok:
            return False, f"raylet at {host}:{raylet['port']}: {detail}"
    if probe.get("command"):
        result = docker("exec", name, *probe["command"], timeout=probe["timeout"])
        if result.returncode == 124:
            return False, "probe command did not finish within {}s".format(probe["timeout"])
        if result.returncode != 0:
            last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [""]
            return False, f"probe command exited {result.returncode}: {last[0][:200]}"
    return True, "ok"


def restart_worker(name, reason):
    unit = f"fleetwarden-worker-{name}.service"
    log(ERR, f"worker {name} failed its probe: {reason}; killing the container so {unit} restarts it")
    try:
        os.makedirs(STATE_DIR, exist_ok=True)
        with open(os.path.join(STATE_DIR, name + ".probe-failure.json"), "w") as handle:
            json.dump({"time": time.time(), "reason": reason}, handle)
    except OSError:
        pass
    if docker("kill", "--signal", "KILL", name, timeout=15).returncode != 0:
        subprocess.run([SYSTEMCTL, "restart", "--no-block", unit], check=False)


class ProbeCounter:
    """Consecutive failures, docker-style: failures in the start period count only once a round has passed."""

    def __init__(self, threshold, start_period, now):
        self.threshold, self.start_period = threshold, start_period
        self.started, self.passed, self.failures = now, False, 0

    def record(self, ok, reason, now):
        """One round's verdict -> "restart" when the worker must restart, else None (and logs what happened)."""
        if ok is None:
            return None
        if ok:
            if self.failures:
                log(NOTICE, f"probe ok again after {self.failures} failure(s)")
            self.passed, self.failures = True, 0
            return None
        if not self.passed and now - self.started < self.start_period:
            log(INFO, f"starting ({now - self.started:.0f}s of {self.start_period}s grace): {reason}")
            return None
        self.failures += 1
        log(WARNING, f"probe failed ({self.failures} of {self.threshold}): {reason}")
        if self.failures < self.threshold:
            return None
        self.started, self.passed, self.failures = now, False, 0
        return "restart"


def probe(name, clock=time.monotonic, sleep=time.sleep, rounds=None):
    config = load_declaration(name)["probe"]
    if not config.get("enabled"):
        log(NOTICE, f"no probe declared for {name}")
        return 0
    counter = ProbeCounter(config["failure_threshold"], config["start_period"], clock())
    while rounds is None or rounds > 0:
        rounds = None if rounds is None else rounds - 1
        round_started = clock()
        ok, reason = probe_checks(config, container_state(name), name)
        if counter.record(ok, reason, clock()) == "restart":
            restart_worker(name, reason)
        sleep(max(0.0, config["interval"] - (clock() - round_started)))
    return 0


# --- settle -----------------------------------------------------------------------------------------------------
def _settle_round(config, name, unit):
    """(ok, container id, restarts, reason) for one look at a worker."""
    state = container_state(name)
    props = unit_properties(unit)
    restarts = props.get("NRestarts", "")
    if props.get("ActiveState") != "active":
        return False, None, restarts, f"{unit} is {props.get('ActiveState') or 'unknown'}"
    if state is None:
        return False, None, restarts, "dockerd does not answer"
    if state == () or not state[1]:
        return False, None, restarts, "container not running"
    if config.get("enabled"):
        ok, reason = probe_checks(config, state, name)
        if not ok:
            return False, state[0], restarts, reason
    return True, state[0], restarts, "ok"


def settle_verdict(observe, window, timeout, interval, clock=time.monotonic, sleep=time.sleep):
    """Polls observe() -> (ok, container_id, restarts, reason) until it passes, within `timeout`; from then on it
    must keep passing, with the same container and restart count, for `window` seconds. Returns a verdict."""
    started = clock()
    first = None
    last = "never looked"
    while True:
        ok, container, restarts, reason = observe()
        now = clock()
        if ok and first is None:
            first = (now, container, restarts)
        elif first is not None and (not ok or container != first[1] or restarts != first[2]):
            what = reason if not ok else ("the container was replaced" if container != first[1]
                                          else f"the unit restarted (NRestarts {first[2]} -> {restarts})")
            return {"healthy": False, "settled_s": round(now - first[0], 1), "window_s": window,
                    "reason": f"not healthy through the settle window: {what} after {now - first[0]:.0f} s"}
        last = reason
        if first is not None and now - first[0] >= window:
            return {"healthy": True, "settled_s": round(now - first[0], 1), "window_s": window,
                    "reason": f"probe passed for {window:g} s, same container, no restart",
                    "container_id": first[1], "waited_s": round(first[0] - started, 1)}
        if first is None and now - started >= timeout:
            return {"healthy": False, "settled_s": 0, "window_s": window,
                    "reason": f"not healthy within {timeout:g} s: {last}"}
        sleep(interval)


def settle(name, window, timeout, interval):
    config = dict(load_declaration(name)["probe"])
    unit = f"fleetwarden-worker-{name}.service"
    verdict = settle_verdict(lambda: _settle_round(config, name, unit), window, timeout, interval)
    verdict["worker"] = name
    print(json.dumps(verdict), flush=True)
    return 0 if verdict["healthy"] else 1


# --- alert ------------------------------------------------------------------------------------------------------
def unit_properties(unit):
    properties = "--property=Result,ExecMainStatus,ExecMainCode,NRestarts,ActiveState"
    result = subprocess.run([SYSTEMCTL, "show", unit, properties], capture_output=True, text=True, check=False)
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def fill_placeholders(arg, facts):
    """{unit}, {worker}, {host}, {result}, {exit_status} and {restarts} in an alert argv element; nothing else."""
    for key, value in facts.items():
        arg = arg.replace(f"{{{key}}}", str(value))
    return arg


def alert(unit):
    name = unit[len("fleetwarden-worker-"):-len(".service")] if unit.startswith("fleetwarden-worker-") else ""
    props = unit_properties(unit)
    facts = {"unit": unit, "worker": name, "host": socket.gethostname(), "result": props.get("Result", ""),
             "exit_status": props.get("ExecMainStatus", ""), "restarts": props.get("NRestarts", "")}
    log("<2>", "{unit} on {host} failed for good (result {result}, last exit status {exit_status}, "
        "{restarts} restarts); firing its alert".format(**facts))
    try:
        hooks = load_declaration(name).get("alert") or {} if name else {}
    except (OSError, ValueError) as exc:
        log(ERR, f"cannot read the declaration of {name}: {exc}")
        hooks = {}
    failed = 0
    if hooks.get("command"):
        argv = [fill_placeholders(arg, facts) for arg in hooks["command"]]
        env = dict(os.environ, **{"FLEETWARDEN_" + key.upper(): str(value) for key, value in facts.items()})
        try:
            result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
            failed |= result.returncode != 0
            log(INFO if result.returncode == 0 else ERR,
                f"alert command exited {result.returncode} {result.stderr.strip()[:300]}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            failed = 1
            log(ERR, f"alert command failed: {exc}")
    if hooks.get("webhook"):
        request = urllib.request.Request(hooks["webhook"], data=json.dumps(facts).encode(),  # noqa: S310 - the operator's URL
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the URL is the operator's
                log(INFO, f"alert webhook answered {response.status}")
        except (OSError, urllib.error.URLError) as exc:
            failed = 1
            log(ERR, f"alert webhook failed: {exc}")
    return failed


# --- waiting ----------------------------------------------------------------------------------------------------
def split_address(address):
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {address!r}")
    return host, int(port)


def backoff_delays(first=0.5, factor=2.0, most=5.0):
    delay = first
    while True:
        yield delay
        delay = min(delay * factor, most)


def wait_for(address, check, timeout, clock=time.monotonic, sleep=time.sleep):
    host, port = split_address(address)
    probe_once = grpc_health if check == "grpc" else tcp_open
    started = clock()
    for attempt, delay in enumerate(backoff_delays(), start=1):
        ok, detail = probe_once(host, port)
        elapsed = clock() - started
        if ok:
            log(NOTICE, f"{address} is ready ({detail}) after {elapsed:.1f}s, {attempt} attempt(s)")
            return 0
        if timeout and elapsed >= timeout:
            log(ERR, f"{address} not ready after {elapsed:.0f}s: {detail}")
            return 1
        log(INFO, f"waiting for {address} ({check} check): {detail}; next try in {delay:.1f}s")
        sleep(delay)
    return 1


def serve_pending(payload, applications):
    """Declared Serve applications that are not RUNNING in /api/serve/applications/ -> ["app (STATUS)", ...]."""
    found = (payload or {}).get("applications") or {}
    pending = []
    for app in applications:
        status = (found.get(app) or {}).get("status")
        if status != "RUNNING":
            pending.append("{} ({})".format(app, status or "not deployed"))
    return pending


def http_get(url, timeout=5.0):
    """(status, body) or (None, reason)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - the URL is the operator's
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (OSError, urllib.error.URLError) as exc:
        return None, str(getattr(exc, "reason", exc))


def ray_not_ready(gcs, dashboard, applications, health_url, get=http_get, health=grpc_health):
    """What is not ready yet, one phrase each; [] when the head is ready."""
    host, port = split_address(gcs)
    ok, detail = health(host, port)
    if not ok:
        return [f"GCS at {gcs}: {detail}"]
    if not applications:
        return []
    status, body = get(dashboard.rstrip("/") + "/api/serve/applications/")
    if status == 200:
        try:
            return ["Serve application " + item for item in serve_pending(json.loads(body), applications)]
        except ValueError:
            status, body = None, "unreadable JSON"
    reason = "Serve REST API at {}: {}".format(dashboard, body if status is None else f"HTTP {status}")
    if not health_url:
        return [reason]
    health_status_code, detail = get(health_url)
    if health_status_code == 200:
        return []
    shown = detail if health_status_code is None else f"HTTP {health_status_code}"
    return [reason, f"HTTP health {health_url}: {shown}"]


def ray_ready(args, clock=time.monotonic, sleep=time.sleep):
    started = clock()
    delays = backoff_delays(first=0.5, most=5.0)
    while True:
        pending = ray_not_ready(args.gcs, args.dashboard, args.serve_app, args.health_url)
        elapsed = clock() - started
        if not pending:
            apps = "; Serve applications RUNNING: " + ", ".join(args.serve_app) if args.serve_app else ""
            print(f"[{elapsed:5.1f}s] Ray head ready: GCS at {args.gcs}{apps}", flush=True)
            return 0
        if elapsed >= args.timeout:
            print(f"Ray head not ready after {elapsed:.0f}s: {'; '.join(pending)}", file=sys.stderr, flush=True)
            return 1
        print("[{:5.1f}s] waiting for the Ray head: {}".format(elapsed, "; ".join(pending)), flush=True)
        sleep(min(next(delays), max(0.1, args.timeout - elapsed)))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fleetwarden-worker", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("supervise")
    sub.add_argument("--stop-timeout", type=int, default=30)
    sub.add_argument("name")
    commands.add_parser("probe").add_argument("name")
    commands.add_parser("alert").add_argument("unit")
    sub = commands.add_parser("settle")
    sub.add_argument("--window", type=float, default=15, help="seconds the worker must stay healthy")
    sub.add_argument("--timeout", type=float, default=120, help="seconds it has to become healthy, window included")
    sub.add_argument("--interval", type=float, default=1)
    sub.add_argument("name")
    sub = commands.add_parser("wait-for")
    sub.add_argument("--check", choices=("tcp", "grpc"), default="tcp")
    sub.add_argument("--timeout", type=float, default=0, help="seconds; 0 waits forever")
    sub.add_argument("address", type=str)
    sub = commands.add_parser("ray-ready")
    sub.add_argument("--gcs", required=True, help="HOST:PORT of the GCS")
    sub.add_argument("--dashboard", default="http://127.0.0.1:8265")
    sub.add_argument("--serve-app", action="append", default=[])
    sub.add_argument("--health-url", default="")
    sub.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    if args.command == "supervise":
        return supervise(args.name, args.stop_timeout)
    if args.command == "probe":
        return probe(args.name)
    if args.command == "alert":
        return alert(args.unit)
    if args.command == "settle":
        return settle(args.name, args.window, args.timeout, args.interval)
    if args.command == "wait-for":
        return wait_for(args.address, args.check, args.timeout)
    return ray_ready(args)


if __name__ == "__main__":
    sys.exit(main())
