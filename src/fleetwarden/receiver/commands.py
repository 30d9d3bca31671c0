"""`fleetwarden receiver serve|log|release|reset`: the command logic (cli.py only hooks it in)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import pwd
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from fleetwarden.receiver import audit, config

DEFAULT_CONFIG = "/etc/fleetwarden/receiver.yml"
LOG_COLUMNS = ("id", "time", "kind", "host", "alertname", "job_id", "run_status", "rc", "duration", "ttr", "reason")


def add_parser(commands) -> None:
    receiver = commands.add_parser("receiver", help="the recovery receiver: Alertmanager webhook -> recover.yml")
    receiver.add_argument("--config", type=Path, default=Path(os.environ.get("FLEETWARDEN_RECEIVER_CONFIG",
                                                                            DEFAULT_CONFIG)),
                          help=f"settings file (default: $FLEETWARDEN_RECEIVER_CONFIG or {DEFAULT_CONFIG})")
    sub = receiver.add_subparsers(dest="receiver_command", required=True)
    sub.add_parser("serve", help="listen for Alertmanager and run the recovery playbook")
    log = sub.add_parser("log", help="print the audit rows")
    log.add_argument("--host", help="only rows for this host")
    log.add_argument("--since", type=parse_since, help="only rows since T: an ISO time, or an age such as 30m, 2h, 1d")
    log.add_argument("--limit", type=int, default=None, help="only the last N rows")
    log.add_argument("--json", action="store_true", help="print the rows as JSON")
    release = sub.add_parser("release", help="take a quarantined host out of quarantine")
    release.add_argument("host")
    release.add_argument("--reason", help="why, recorded with your user name")
    release.add_argument("--forget-attempts", action="store_true",
                         help="also for a host that is not quarantined: its earlier attempts no longer count")
    sub.add_parser("reset", help="close the circuit breaker, so that automatic recovery resumes")
    maintenance = sub.add_parser("maintenance", help="hosts a person works on: their alerts are recorded, not acted on")
    windows = maintenance.add_subparsers(dest="maintenance_command", required=True)
    start = windows.add_parser("start", help="put a host or a group in maintenance (and silence it in Alertmanager)")
    start.add_argument("target", help="a host or a group of the receiver's inventory")
    start.add_argument("--for", dest="duration", type=parse_duration, required=True,
                       help="how long: 90s, 30m, 2h, 1d (at most 7d); it ends by itself")
    start.add_argument("--reason", required=True, help="why, recorded with your user name")
    end = windows.add_parser("end", help="end maintenance for a host or a group (and expire its silences)")
    end.add_argument("target", help="a host or a group of the receiver's inventory")
    end.add_argument("--reason", default="work done", help="why, recorded with your user name")
    windows.add_parser("list", help="hosts in maintenance (JSON)")
    sub.add_parser("status", help="breaker, quarantined hosts, runs in progress (JSON)")


_AGE_RE = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str, now: float | None = None) -> float:
    """`30m`, `2h`, `1d` (an age) or an ISO 8601 time (UTC unless it says otherwise) -> epoch seconds."""
    now = time.time() if now is None else now
    match = _AGE_RE.match(value.strip())
    if match:
        return now - int(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--since: expected an ISO time or an age like 30m, got {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


MAX_MAINTENANCE_S = 7 * 86400


def parse_duration(value: str) -> int:
    """`90s`, `30m`, `2h`, `1d` -> seconds, more than 0 and at most 7 days."""
    match = _AGE_RE.match(value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"--for: expected a duration like 30m or 2h, got {value!r}")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if not 0 < seconds <= MAX_MAINTENANCE_S:
        raise argparse.ArgumentTypeError(f"--for: between 1 s and 7 d, got {value!r}")
    return seconds


def _iso(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def format_rows(rows: list[dict]) -> str:
    def cell(row, column):
        value = _iso(row["ts"]) if column == "time" else row.get(column)
        if isinstance(value, float):
            value = f"{value:.1f}"
        # a label may hold a newline (a forged line) or an escape sequence (for the operator's terminal)
        return "" if value is None else audit.escape(str(value))

    table = [list(LOG_COLUMNS)] + [[cell(r, c) for c in LOG_COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(LOG_COLUMNS))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in table)


def rows_as_json(rows: list[dict]) -> str:
    return json.dumps([{**r, "time": _iso(r["ts"])} for r in rows], indent=2)


def run(args) -> int:
    from fleetwarden.receiver.store import Store

    settings = config.load(args.config)
    if args.receiver_command == "serve":
        return serve(settings)
    store = Store(settings.db_path)
    try:
        if args.receiver_command == "log":
            rows = store.rows(host=args.host, since=args.since, limit=args.limit)
            print(rows_as_json(rows) if args.json else format_rows(rows))
        elif args.receiver_command == "release":
            return release(settings, store, args.host, args.reason, args.forget_attempts)
        elif args.receiver_command == "maintenance":
            return maintenance(settings, store, args)
        elif args.receiver_command == "reset":
            was_open = store.reset_breaker(time.time())
            print("breaker reset: automatic recovery resumes" if was_open else "breaker was closed (recorded)")
        elif args.receiver_command == "status":
            print(json.dumps(store.state(), indent=2))
    finally:
        store.close()
    return 0


def operator() -> str:
    """Who runs this command: the OS user, and the user behind sudo where there is one."""
    user = pwd.getpwuid(os.getuid()).pw_name
    behind = os.environ.get("SUDO_USER")
    return f"{user} (sudo by {behind})" if behind and behind != user else user


def release(settings: config.Settings, store, host: str, reason: str | None, forget_attempts: bool = False) -> int:
    from fleetwarden.receiver import jobs

    if host not in jobs.inventory_hosts(settings.inventory):
        print(f"{audit.escape(host)} is not in the inventory {settings.inventory}: nothing released", file=sys.stderr)
        return 2
    quarantined = any(q["host"] == host for q in store.state()["quarantined"])
    if not store.release(host, time.time(), operator(), reason and audit.clip(reason, audit.REASON_CHARS),
                         forget_attempts):
        print(f"{host} is not quarantined: nothing changed")
        return 0
    print(f"{host} released: automatic recovery resumes for it" if quarantined
          else f"{host}: its earlier attempts no longer count")
    return 0


def maintenance(settings: config.Settings, store, args) -> int:
    """start / end / list; 1 when Alertmanager did not take a silence change (the window itself is recorded)."""
    from fleetwarden.receiver import jobs, silences

    if args.maintenance_command == "list":
        print(json.dumps(store.maintenance(time.time()), indent=2))
        return 0
    hosts, groups = jobs.inventory_listing(settings.inventory)
    targets = sorted(groups[args.target]) if args.target in groups else [args.target] if args.target in hosts else []
    if not targets:
        print(f"{audit.escape(args.target)} is neither a host nor a group of the inventory {settings.inventory}",
              file=sys.stderr)
        return 2
    who, reason, url, rc = operator(), audit.clip(args.reason, audit.REASON_CHARS), settings.silence_url, 0
    now = time.time()  # after the inventory is read: the window is as long as asked
    if args.maintenance_command == "start":
        until = now + args.duration
        store.start_maintenance(targets, now, until, who, reason)
        for host in targets:
            silenced = ""
            if url:
                try:
                    silence_id = silences.add_silence(url, settings.host_label, host, now, until, who, reason)
                    store.set_silence(host, silence_id)
                    silenced = f", silenced in Alertmanager ({silence_id})"
                except silences.SilenceError as exc:
                    print(f"{host}: the silence could not be added: {exc}", file=sys.stderr)
                    rc = 1
            print(f"{host} in maintenance until {_iso(until)}{silenced}")
        return rc
    ended = store.end_maintenance(targets, now, who, reason)
    for window in ended:
        if url and window["silence_id"]:
            try:
                silences.expire_silence(url, window["silence_id"])
            except silences.SilenceError as exc:
                print(f"{window['host']}: the silence could not be expired: {exc}", file=sys.stderr)
                rc = 1
        print(f"{window['host']}: maintenance ended")
    if not ended:
        print(f"{args.target}: no host in maintenance, nothing changed")
    return rc


def serve(settings: config.Settings) -> int:
    from fleetwarden.receiver import jobs, server
    from fleetwarden.receiver.guard import RateLimitFilter

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:  # asyncio's and aiohttp's records too
        handler.addFilter(RateLimitFilter())
    config.check_paths(settings)
    inventory = jobs.inventory_hosts(settings.inventory)
    if not inventory:
        raise config.ConfigError(f"inventory {settings.inventory} has no hosts")
    logging.getLogger("fleetwarden.receiver").info("inventory: %d hosts", len(inventory))
    asyncio.run(server.serve(settings, inventory))
    return 0
