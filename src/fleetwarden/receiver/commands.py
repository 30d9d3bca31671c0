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
    sub.add_parser("reset", help="close the circuit breaker, so that automatic recovery resumes")
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
            return release(settings, store, args.host, args.reason)
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


def release(settings: config.Settings, store, host: str, reason: str | None) -> int:
    from fleetwarden.receiver import jobs

    if host not in jobs.inventory_hosts(settings.inventory):
        print(f"{audit.escape(host)} is not in the inventory {settings.inventory}: nothing released", file=sys.stderr)
        return 2
    if not store.release(host, time.time(), operator(), reason):
        print(f"{host} is not quarantined: nothing changed")
        return 0
    print(f"{host} released: automatic recovery resumes for it")
    return 0


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
