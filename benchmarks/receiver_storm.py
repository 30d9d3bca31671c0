"""Alert storm against the recovery receiver: N real HTTP notifications in S seconds for H hosts, on loopback.

The receiver runs as its own process (`fleetwarden receiver serve`) with a no-op playbook through
ansible-runner; inventory hosts use the local connection. Each notification carries one alert; each host's
alerts come in episodes (a new startsAt every few notifications), so cooldowns, joins and dedupe all act.

Reports, per repetition and as median/max:
- lost notifications: not answered 202, or without an audit row (goal 0);
- runs per host per cooldown (goal <= 1);
- acknowledgement latency p50 and p99 (goal p99 <= 50 ms);
- whether the breaker tripped as configured: at the first host that took the alerting share above
  breaker_percent, and never before.

    .venv/bin/python benchmarks/receiver_storm.py [--notifications 1000] [--seconds 10] [--hosts 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

NOOP_PLAYBOOK = """---
- name: No-op recovery
  hosts: "{{ target | default('this_is_unreachable') }}"
  gather_facts: false
  tasks:
    - name: Nothing to do
      ansible.builtin.meta: noop
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_project(root: Path, hosts: list[str], port: int, breaker_percent: int, dry_run: bool) -> tuple[Path, str]:
    token = secrets.token_urlsafe(32)
    (root / "token").write_text(token)
    (root / "token").chmod(0o600)
    (root / "noop.yml").write_text(NOOP_PLAYBOOK)
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                         "hosts": dict.fromkeys(hosts)}}
    (root / "inventory.yml").write_text(yaml.safe_dump(inventory))
    settings = {"token_file": "token", "state_dir": "state", "playbook": "noop.yml", "inventory": "inventory.yml",
                "port": port, "dry_run": dry_run,
                # The budget is not what this storm measures: it would stop runs before the breaker trips.
                "limits": {"breaker_percent": breaker_percent, "budget_percent": 100}}
    (root / "receiver.yml").write_text(yaml.safe_dump(settings))
    return root / "receiver.yml", token


def storm_alerts(count: int, hosts: list[str], per_episode: int) -> list[dict]:
    """Notification i alerts for host i % H; a host's k-th alert belongs to episode k // per_episode."""
    alerts = []
    for index in range(count):
        host = hosts[index % len(hosts)]
        episode = (index // len(hosts)) // per_episode
        alerts.append({
            "status": "firing", "fingerprint": f"fp-{host}", "startsAt": f"2026-11-27T18:{episode:02d}:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "annotations": {},
            "labels": {"alertname": "RayWorkerDown", "fleet_host": host, "remediate": "true", "seq": str(index)}})
    return alerts


async def send_storm(url: str, token: str, alerts: list[dict], seconds: float) -> list[tuple[int, float, dict]]:
    interval = seconds / len(alerts)
    headers = {"Authorization": f"Bearer {token}"}
    results: list = [None] * len(alerts)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def send(index: int, alert: dict) -> None:
            body = {"version": "4", "status": "firing", "receiver": "storm", "groupKey": str(index),
                    "alerts": [alert]}
            started = time.perf_counter()
            try:
                async with session.post(url, json=body, headers=headers) as response:
                    answer = await response.json()
                    results[index] = (response.status, time.perf_counter() - started, answer)
            except (aiohttp.ClientError, TimeoutError) as exc:
                results[index] = (0, time.perf_counter() - started, {"error": str(exc)})

        tasks = []
        t0 = time.perf_counter()
        for index, alert in enumerate(alerts):
            delay = t0 + index * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(index, alert)))
        await asyncio.gather(*tasks)
    return results


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def wait_healthy(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"receiver exited: {process.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("receiver did not listen within 60 s")


def one_storm(args, workdir: Path) -> dict:
    hosts = [f"storm-{i:02d}" for i in range(args.hosts)]
    port = free_port()
    config_path, token = make_project(workdir, hosts, port, args.breaker_percent, args.dry_run)
    receiver = subprocess.Popen([sys.executable, "-m", "fleetwarden.cli", "receiver", "--config", str(config_path),
                                 "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_healthy(port, receiver)
        alerts = storm_alerts(args.notifications, hosts, args.per_episode)
        started = time.perf_counter()
        results = asyncio.run(send_storm(f"http://127.0.0.1:{port}/v1/alertmanager", token, alerts, args.seconds))
        storm_s = time.perf_counter() - started
        db = sqlite3.connect(workdir / "state" / "receiver.sqlite3")
        deadline = time.monotonic() + 300  # let the runs finish
        while db.execute("SELECT count(*) FROM runs WHERE status IN ('queued','running')").fetchone()[0]:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        decisions = db.execute("SELECT kind, host, labels, reason FROM decisions ORDER BY id").fetchall()
        runs = db.execute("SELECT host, status, created, duration FROM runs").fetchall()
        if args.dry_run:
            runs = db.execute("SELECT host, 'dry_run', ts, NULL FROM decisions WHERE kind='dry_run'").fetchall()
    finally:
        receiver.terminate()
        receiver.wait(60)
    recorded_seq = {json.loads(labels)["seq"] for _, _, labels, _ in decisions if labels}
    answered = [r for r in results if r and r[0] == 202]
    lost = len(alerts) - len([i for i, r in enumerate(results) if r and r[0] == 202 and str(i) in recorded_seq])
    latencies = [r[1] * 1000 for r in answered]
    runs_per_host: dict[str, int] = {}
    for host, _, _, _ in runs:
        runs_per_host[host] = runs_per_host.get(host, 0) + 1
    # The breaker: the first host that took the distinct alerting hosts above the share trips it.
    seen_hosts: list[str] = []
    expected_trip = None
    for _kind, host, _, _ in decisions:
        if host and host not in seen_hosts:
            seen_hosts.append(host)
            if len(seen_hosts) * 100 > args.breaker_percent * args.hosts and expected_trip is None:
                expected_trip = host
    trips = [(host, reason) for kind, host, _, reason in decisions if kind == "breaker" and "trips" in reason]
    kinds: dict[str, int] = {}
    for kind, *_ in decisions:
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "notifications": len(alerts), "storm_s": round(storm_s, 2), "answered_202": len(answered), "lost": lost,
        "decisions": kinds,
        "runs": len(runs), "runs_successful": sum(1 for r in runs if r[1] == "successful"),
        "max_runs_per_host_per_cooldown": max(runs_per_host.values(), default=0),
        "ack_p50_ms": round(percentile(latencies, 0.50), 1), "ack_p99_ms": round(percentile(latencies, 0.99), 1),
        "ack_max_ms": round(max(latencies), 1),
        "breaker_tripped": bool(trips), "breaker_trip_host": trips[0][0] if trips else None,
        "breaker_expected_host": expected_trip,
        "breaker_as_configured": len(trips) == 1 and trips[0][0] == expected_trip
                                 and len(runs_per_host) * 100 <= args.breaker_percent * args.hosts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--per-episode", type=int, default=5, help="notifications per host before a new startsAt")
    parser.add_argument("--breaker-percent", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dry-run", action="store_true", help="run no playbooks: the acknowledgement path alone")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="receiver-storm-") as workdir:
            result = one_storm(args, Path(workdir))
        runs.append(result)
        print(json.dumps(result) if args.json else
              f"lost {result['lost']}/{result['notifications']}  runs {result['runs']} "
              f"(max {result['max_runs_per_host_per_cooldown']}/host/cooldown)  "
              f"ack p50 {result['ack_p50_ms']} ms p99 {result['ack_p99_ms']} ms max {result['ack_max_ms']} ms  "
              f"breaker {'tripped at ' + str(result['breaker_trip_host']) if result['breaker_tripped'] else 'closed'}"
              f" (as configured: {result['breaker_as_configured']})", flush=True)
    summary = {key: {"median": statistics.median(r[key] for r in runs), "max": max(r[key] for r in runs)}
               for key in ("lost", "max_runs_per_host_per_cooldown", "ack_p50_ms", "ack_p99_ms", "ack_max_ms")}
    summary["breaker_as_configured"] = all(r["breaker_as_configured"] for r in runs)
    summary["all_runs_successful"] = all(r["runs_successful"] == r["runs"] for r in runs)
    if args.dry_run:  # nothing runs; "runs" are the dry_run decisions
        summary["all_runs_successful"] = True
    summary["load"] = os.getloadavg()
    print(json.dumps({"summary": summary}, indent=None if args.json else 2))
    ok = summary["lost"]["max"] == 0 and summary["max_runs_per_host_per_cooldown"]["max"] <= 1
    return 0 if ok and summary["breaker_as_configured"] and summary["all_runs_successful"] else 1


if __name__ == "__main__":
    sys.exit(main())
