"""The command line: one subparser per subcommand, each run by its own module.

A subcommand imports only its own module: supervise and alert never load grpcio.
"""

import argparse
import importlib

from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_state import SETTLE_WINDOW_S


def parser():
    top = argparse.ArgumentParser(prog="fleetwarden-worker",
                                  description="fleetwarden's host-side worker tool (roles/worker_service)")
    commands = top.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("supervise")
    sub.add_argument("--stop-timeout", type=int, default=30)
    sub.add_argument("name")
    commands.add_parser("probe").add_argument("name")
    commands.add_parser("alert").add_argument("unit")
    sub = commands.add_parser("settle")
    sub.add_argument("--window", type=float, default=SETTLE_WINDOW_S, help="seconds the worker must stay healthy")
    sub.add_argument("--timeout", type=float, default=120, help="seconds it has to become healthy, window included")
    sub.add_argument("--interval", type=float, default=1)
    sub.add_argument("name")
    sub = commands.add_parser("wait-for")
    sub.add_argument("--check", choices=("tcp", "grpc"), default="tcp")
    sub.add_argument("--timeout", type=float, default=0, help="seconds; 0 waits forever")
    sub.add_argument("--remove", metavar="CONTAINER", help="remove this container (docker rm --force) meanwhile")
    sub.add_argument("address", type=str)
    sub = commands.add_parser("ray-ready")
    sub.add_argument("--gcs", required=True, help="HOST:PORT of the GCS")
    sub.add_argument("--dashboard", default="http://127.0.0.1:8265")
    sub.add_argument("--serve-app", action="append", default=[])
    sub.add_argument("--health-url", default="")
    sub.add_argument("--timeout", type=float, default=120)
    return top


# subcommand -> (module, function, the arguments it takes from the parsed command line)
COMMANDS = {
    "supervise": ("supervise", "supervise", lambda a: (a.name, a.stop_timeout)),
    "probe": ("probe", "probe", lambda a: (a.name,)),
    "alert": ("alert", "alert", lambda a: (a.unit,)),
    "settle": ("settle", "settle", lambda a: (a.name, a.window, a.timeout, a.interval)),
    "wait-for": ("waiting", "wait_for", lambda a: (a.address, a.check, a.timeout, a.remove)),
    "ray-ready": ("waiting", "ray_ready", lambda a: (a,)),
}


def main(argv=None):
    args = parser().parse_args(argv)
    module, function, arguments = COMMANDS[args.command]
    run = getattr(importlib.import_module("fleetwarden_worker." + module), function)
    return run(*arguments(args))
