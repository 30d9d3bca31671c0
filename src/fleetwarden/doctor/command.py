"""`fleetwarden status` and `fleetwarden doctor`: argument parsing and the run of each (cli.py only hooks them in).

Exit codes of doctor: 0 no HIGH finding, 1 at least one, 2 the doctor itself could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

DEFAULT_INVENTORY = "inventory/lab"


def add_parsers(commands) -> None:
    status = commands.add_parser("status", help="one row per worker on every host, a line per host on top")
    doctor = commands.add_parser("doctor", help="what is wrong with the fleet, and what to do about it")
    for sub in (status, doctor):
        sub.add_argument("-i", "--inventory", action="append", default=None,
                         help=f"inventory source, repeatable (default: {DEFAULT_INVENTORY})")
        sub.add_argument("-l", "--limit", default=None, help="only hosts matching this ansible pattern")
        sub.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
        sub.add_argument("--timeout", type=int, default=30, help="seconds a host may take to answer (30)")
    status.add_argument("--watch", nargs="?", type=float, const=5.0, default=None, metavar="SECONDS",
                        help="redraw in place every SECONDS (5) until interrupted")
    doctor.add_argument("--save-report", type=Path, default=None, metavar="PATH", help="also write the JSON report")
    doctor.add_argument("--include-sensitive", action="store_true",
                        help="do not redact secrets found in messages and evidence")
    doctor.add_argument("--drift", action="store_true", help="also run site.yml --check --diff (slower)")
    doctor.add_argument("--verbose", action="store_true", help="list passing and skipped checks too")


def _project(args) -> Path:
    from fleetwarden.lab.lab import find_project_dir

    return args.project_dir.resolve() if args.project_dir else find_project_dir()


class Progress:
    """A progress line on stderr while hosts answer, only on a terminal."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, done: int, total: int, host: str) -> None:
        if self.enabled:
            sys.stderr.write(f"\r\033[K{done}/{total} hosts answered (last: {host})")
            sys.stderr.flush()

    def start(self, total: int) -> None:
        if self.enabled:
            sys.stderr.write(f"\r\033[Kasking {total} hosts ...")
            sys.stderr.flush()

    def clear(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _observations(fleet, results) -> list[dict]:
    return [{"name": r.name, "groups": r.groups, "vars": r.vars, "vars_errors": r.vars_errors, "result": r.result,
             "unreachable": r.unreachable, "failed": r.failed, "seconds": r.seconds, "ssh_port_open": r.ssh_port_open,
             "ssh_banner": r.ssh_banner, "ssh_port": r.vars.get("ansible_port")} for r in results.values()]


def run_status(args) -> int:
    from .fleet import Fleet, FleetError
    from .view import format_status, status_document

    inventories = args.inventory or [DEFAULT_INVENTORY]
    colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    try:
        fleet = Fleet(_project(args), inventories, args.limit)
    except FleetError as exc:
        print(f"fleetwarden: error: {exc}", file=sys.stderr)
        return 2
    first_frame = True
    try:
        while True:
            started = time.monotonic()
            results = fleet.results()
            progress = Progress(sys.stderr.isatty() and not args.watch)
            progress.start(len(results))
            fleet.gather(results, progress=progress, timeout=args.timeout)
            progress.clear()
            doc = status_document(_observations(fleet, results), time.monotonic() - started)
            text = json.dumps(doc, indent=2) if args.json else format_status(doc, colour)
            if args.watch:
                # Redraw in place: home the cursor, draw, clear whatever the last frame left below.
                home = ("\033[2J\033[H" if first_frame else "\033[H") if colour else ""
                first_frame = False
                sys.stdout.write(home + text + ("\033[J\n" if colour else "\n\n"))
                sys.stdout.flush()
                time.sleep(max(0.0, args.watch - (time.monotonic() - started)))
                continue
            print(text)
            return 0
    except KeyboardInterrupt:
        return 130


def _console(host_vars: dict, host: str) -> str:
    if host_vars.get("fleetwarden_lab_container"):
        return f"docker exec {shlex.quote(host_vars['fleetwarden_lab_container'])}"
    if host_vars.get("gce_name"):
        return (f"gcloud compute connect-to-serial-port {shlex.quote(host_vars['gce_name'])} --zone "
                f"{shlex.quote(str(host_vars.get('gce_zone')))} "
                f"--project {shlex.quote(str(host_vars.get('gce_project')))}"
                " # then:")
    return f"# on {host}'s console:"


def _dynamic_sources(inventories: list[str]) -> list[str]:
    from .cloud import DYNAMIC_SUFFIXES

    suffixes = tuple(s for pair in DYNAMIC_SUFFIXES.values() for s in pair)
    found = []
    for source in inventories:
        path = Path(source)
        candidates = sorted(path.iterdir()) if path.is_dir() else [path]
        found += [str(p) for p in candidates if p.name.endswith(suffixes)]
    return found


def _cloud_listing(fleet, inventories: list[str]):
    """A fresh listing (no cache) of the dynamic inventory sources: {host: vars}, the kinds listed; or None."""
    from ansible.inventory.manager import InventoryManager

    from .cloud import DYNAMIC_SUFFIXES

    sources = _dynamic_sources(inventories)
    if not sources:
        return None, ()
    fresh = InventoryManager(loader=fleet.loader, sources=sources, cache=False)
    kinds = tuple(kind for kind, suffixes in DYNAMIC_SUFFIXES.items() if any(s.endswith(suffixes) for s in sources))
    return {h.name: dict(h.get_vars()) for h in fresh.get_hosts("all")}, kinds


def _gather(fleet, project: Path, args):
    """Every host's results, gathered (one fleet_status round), and the observations the checks read."""
    from . import config_checks

    results = fleet.results(config_checks.spec_keys(project) | _schema_keys(project))
    users = sorted({e.get("user") for r in results.values() for e in (r.vars.get("ssh_keys_authorized") or [])
                    if isinstance(e, dict) and e.get("user")})
    progress = Progress(sys.stderr.isatty())
    progress.start(len(results))
    fleet.gather(results, progress=progress, timeout=args.timeout, authorized_keys_users=users)
    progress.clear()
    return results, _observations(fleet, results)


def _host_checks(project: Path, results, observations, alive, head_error) -> list:
    """The controller's own checks, then each host's: ssh, keys, docker, resources, workers."""
    from . import config_checks, host_checks

    defaults = config_checks.spec_defaults(project)
    checks = [config_checks.ansible_version_check()]
    for key_file in sorted({str(r.vars.get("ansible_ssh_private_key_file") or "") for r in results.values()}):
        checks.append(config_checks.controller_key_check(key_file or None))
    checks.append(config_checks.preflight_check(project, {r.name: (r.vars, r.groups) for r in results.values()}))
    for obs in observations:
        checks.append(config_checks.secrets_check(obs["name"], obs["vars_errors"],
                                                  obs["vars"].get("ssh_keys_private_keys")))
        checks += host_checks.ssh_checks(obs)
        if obs["result"]:
            checks.append(host_checks.authorized_keys_check(obs))
            checks += host_checks.docker_checks(obs, defaults)
            checks += host_checks.resource_checks(obs)
            checks += host_checks.worker_checks(obs, alive, head_error)
    return checks


def _cloud_checks(fleet, inventories: list[str], results, observations, nodes, state: dict):
    """The cloud's listing against the inventory, and Ray nodes no host accounts for; the pods seen starting."""
    from . import cloud
    from .findings import threshold

    listing, kinds = _cloud_listing(fleet, inventories)
    known = {r.name: r.vars for r in results.values()}
    first = next(iter(results.values()))
    checks, seen = cloud.compare(known, listing, {r.name: bool(r.result) for r in results.values()},
                                 time.time(), state.get("pods_starting", {}),
                                 threshold(first.vars, "pod_starting_max_s"), kinds if listing else None)
    if nodes:
        ips = set()
        for obs in observations:
            ips |= set(((obs["result"] or {}).get("host") or {}).get("addresses") or [])
            ips |= {str(obs["vars"].get(k)) for k in ("ansible_host", "fleetwarden_lab_address",
                                                      "tpu_internal_ip", "gce_internal_ip") if obs["vars"].get(k)}
        checks.append(cloud.unaccounted_ray_nodes(nodes, ips))
    return checks, seen


def _pipeline_checks(fleet, project: Path, inventories: list[str], results, args) -> list:
    """The alert pipeline (monitoring and controller hosts), and the drift of the fleet from site.yml if asked."""
    from ansible_collections.fleetwarden.fleet.plugins.module_utils._fleet_groups import (
        CONTROLLER_GROUP,
        MONITORING_GROUP,
    )

    from . import config_checks, pipeline

    groups = {g: [h.name for h in fleet.inventory.get_hosts(g)] for g in (MONITORING_GROUP, CONTROLLER_GROUP)
              if g in fleet.inventory.groups}
    checks = pipeline.pipeline_checks(groups, lambda h: results[h].vars if h in results else {},
                                      config_checks.spec_defaults(project))
    if args.drift:
        checks += pipeline.drift_checks(project, inventories, args.limit)
    return checks


def _recommendation_extras(checks, results) -> dict:
    """What a recommendation's command needs filled in: a host's console, the controller's key."""
    extras = {}
    for check in checks:
        if check.recommendation == "start-sshd" and check.host in results:
            extras["start-sshd"] = {"console": _console(results[check.host].vars, check.host)}
        if check.recommendation == "fix-controller-key":
            extras["fix-controller-key"] = {"key": shlex.quote(check.evidence.get("path", "KEY"))}
    return extras


def _doctor_report(args, project: Path, inventories: list[str], started: float):
    """The doctor's report, or an exit status when it cannot run."""
    from .fleet import Fleet, FleetError

    try:
        fleet = Fleet(project, inventories, args.limit)
    except FleetError as exc:
        print(f"fleetwarden doctor: cannot run: {exc}", file=sys.stderr)
        return 2
    # Collection code is importable only once Fleet has installed ansible's collection loader.
    from .report import StateFile, build_report, condition_state, validate
    from .view import ray_alive_ips

    results, observations = _gather(fleet, project, args)
    alive, head_error, nodes = ray_alive_ips(observations)
    checks = _host_checks(project, results, observations, alive, head_error)
    state_file = StateFile(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                           / "fleetwarden" / "doctor-state.json")
    state = state_file.load()
    cloud_checks, seen = _cloud_checks(fleet, inventories, results, observations, nodes, state)
    checks += cloud_checks
    checks += _pipeline_checks(fleet, project, inventories, results, args)
    report = build_report(checks, {r.name: bool(r.result) for r in results.values()}, inventories, started,
                          state.get("conditions", {}), args.include_sensitive, args.drift,
                          _recommendation_extras(checks, results))
    problems = validate(report, project / "schemas" / "doctor-report.schema.json")
    if problems:
        print("fleetwarden doctor: the report does not match schemas/doctor-report.schema.json:\n  "
              + "\n  ".join(problems[:20]), file=sys.stderr)
        return 2
    state_file.save({"conditions": condition_state(report), "pods_starting": seen})
    return report


def run_doctor(args) -> int:
    started = time.time()
    inventories = args.inventory or [DEFAULT_INVENTORY]
    try:
        report = _doctor_report(args, _project(args), inventories, started)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(f"fleetwarden doctor: cannot run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if isinstance(report, int):
        return report
    text = json.dumps(report, indent=2)
    if args.save_report:
        args.save_report.parent.mkdir(parents=True, exist_ok=True)
        args.save_report.write_text(text + "\n")
    if args.json:
        print(text)
    else:
        from .doctor_view import format_doctor

        print(format_doctor(report, sys.stdout.isatty() and "NO_COLOR" not in os.environ, args.verbose))
    return report["exit_code"]


def _schema_keys(project: Path) -> set[str]:
    schema = json.loads((project / "schemas" / "fleet.schema.json").read_text())
    return set(schema.get("properties", {})) - {"group_names"}


def run(args: argparse.Namespace) -> int:
    if args.command == "status":
        return run_status(args)
    return run_doctor(args)
