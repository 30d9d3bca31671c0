"""The fleetwarden command line."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from fleetwarden import __version__
from fleetwarden.lab.docker_client import LabError
from fleetwarden.lab.inventory import DEFAULT_WORKER_ACCELERATORS, LabConfigError, plan_hosts
from fleetwarden.receiver import commands as receiver_commands
from fleetwarden.receiver.config import ConfigError as ReceiverConfigError


def _hosts(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}") from None


def _accelerators(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetwarden", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fleetwarden {__version__}")
    parser.add_argument("--project-dir", type=Path, default=None,
                        help="the fleetwarden checkout (default: found upward from the current directory)")
    commands = parser.add_subparsers(dest="command", required=True)

    lab = commands.add_parser("lab", help="the lab: real hosts as containers on this machine")
    lab.add_argument("--name", default="lab", help="lab name: prefixes its hosts, containers and network (lab)")
    lab_commands = lab.add_subparsers(dest="lab_command", required=True)
    image = lab_commands.add_parser("image", help="build the lab host image (cached by digest)")
    image.add_argument("--force", action="store_true", help="rebuild even if an image of this digest exists")
    image.add_argument("--host-only", action="store_true",
                       help="build only the lab host image, not the Ray worker image that runs inside hosts")
    up = lab_commands.add_parser("up", help="bring up lab hosts and write inventory/lab/")
    up.add_argument("--hosts", type=_hosts, default=3, help="number of hosts: one Ray head, the rest workers (3)")
    up.add_argument("--accelerators", type=_accelerators, default=DEFAULT_WORKER_ACCELERATORS,
                    help="accelerator kinds the workers simulate, cycled (default: gpu,tpu)")
    up.add_argument("--no-worker-image", dest="worker_image", action="store_false",
                    help="do not load the Ray worker image into the hosts' engines")
    status = lab_commands.add_parser("status", help="show the lab hosts")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lab_commands.add_parser("down", help="remove every container, volume and network the lab made")
    ssh = lab_commands.add_parser("ssh", help="open an SSH session to a lab host (or run a command there)")
    ssh.add_argument("host")
    ssh.add_argument("remote_command", nargs=argparse.REMAINDER)
    from fleetwarden.cloud.cli import add_parsers as add_cloud_parsers

    add_cloud_parsers(lab_commands)
    from fleetwarden.doctor.command import add_parsers as add_status_parsers

    add_status_parsers(commands)
    receiver_commands.add_parser(commands)
    return parser


def _lab(args):
    from fleetwarden.lab.lab import Lab, find_project_dir

    return Lab(args.project_dir.resolve() if args.project_dir else find_project_dir(), name=args.name)


def run_lab(args) -> int:
    from fleetwarden.lab import image, worker_image
    from fleetwarden.lab.lab import format_table

    if args.lab_command == "image":
        image.build(force=args.force)
        if not args.host_only:
            worker_image.build_worker_image(force=args.force)
        return 0
    if args.lab_command == "up":
        plan_hosts(args.hosts, args.accelerators, prefix=args.name)  # bad input fails here, before anything changes
        lab = _lab(args)
        lab.ensure_images(worker=args.worker_image)  # builds (with progress) whichever image is missing
        states = lab.up(args.hosts, args.accelerators)
        if args.worker_image:
            worker_image.load_into_lab([s.container for s in states], docker=lab.docker)
        print(format_table(lab.status()))
        return 0
    if args.lab_command == "status":
        lab = _lab(args)
        rows = lab.status()
        print(json.dumps(rows, indent=2) if args.json else format_table(rows))
        if not args.json:
            print("".join(f"{service}: {url}\n" for service, url in lab.monitoring_urls().items()), end="")
        return 0
    if args.lab_command == "down":
        started = time.monotonic()
        removed = _lab(args).down()
        print(f"lab removed in {time.monotonic() - started:.1f} s: {removed['containers']} containers, "
              f"{removed['volumes']} volumes, {removed['networks']} networks")
        return 0
    if args.lab_command in ("cloud", "fault"):
        from fleetwarden.cloud.cli import run as run_cloud
        from fleetwarden.lab.lab import find_project_dir

        return run_cloud(args, args.project_dir.resolve() if args.project_dir else find_project_dir())
    if args.lab_command == "ssh":
        lab = _lab(args)
        argv = lab.ssh_argv(lab.host(args.host), *args.remote_command)
        return subprocess.call(argv)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "lab":
            return run_lab(args)
        if args.command in ("status", "doctor"):
            from fleetwarden.doctor.command import run as run_status

            return run_status(args)
        if args.command == "receiver":
            return receiver_commands.run(args)
    except (LabError, LabConfigError, ReceiverConfigError) as exc:
        print(f"fleetwarden: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
