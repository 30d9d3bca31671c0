"""wait-for HOST:PORT and ray-ready: waiting, with backoff, for what a worker needs before it starts.

wait-for   until a TCP port accepts, or a gRPC server says SERVING.
ray-ready  the Ray head readiness gate: GCS answers, then every declared Serve application RUNNING per the
           dashboard's REST API (or an HTTP health URL when that API is absent).
"""

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

from fleetwarden_worker import common, health
from fleetwarden_worker.common import ERR, INFO, NOTICE, WARNING, log


def split_address(address):
    host, _colon, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {address!r}")
    return host, int(port)


def backoff_delays(first=0.5, factor=2.0, most=5.0):
    delay = first
    while True:
        yield delay
        delay = min(delay * factor, most)


def wait_for(address, check, timeout, remove=None, clock=time.monotonic, sleep=time.sleep):
    """Waits until address answers. remove: a container to remove meanwhile (the worker's leftover): the unit's
    restart need not remove it first and wait after, one after the other."""
    if remove is None:
        return _wait_for(address, check, timeout, clock, sleep)
    removing = subprocess.Popen([common.DOCKER, "rm", "--force", remove], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    try:
        return _wait_for(address, check, timeout, clock, sleep)
    finally:
        _out, err = removing.communicate()
        if removing.returncode != 0 and "No such container" not in err:
            log(WARNING, f"docker rm --force {remove} failed: {err.strip()[:300]}")


def _wait_for(address, check, timeout, clock, sleep):
    host, port = split_address(address)
    probe_once = health.grpc_health if check == "grpc" else health.tcp_open
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


def ray_not_ready(gcs, dashboard, applications, health_url, get=http_get, health_check=None):
    """What is not ready yet, one phrase each; [] when the head is ready."""
    host, port = split_address(gcs)
    ok, detail = (health_check or health.grpc_health)(host, port)
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
