"""`fleetwarden lab cloud` (run the stand-in) and `fleetwarden lab fault KIND TARGET` (inject a cloud fault)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FAULT_KINDS = ("preempt", "terminate", "stockout", "api-errors")  # engine.FAULT_KINDS; a test holds them together


def state_dir(project: Path) -> Path:
    """Where the stand-in keeps its state, tokens, endpoint and log: .lab/cloud of the checkout."""
    return project / ".lab" / "cloud"


def _count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}") from None
    if not 1 <= count <= 1000:
        raise argparse.ArgumentTypeError(f"must be from 1 to 1000, got {count}")
    return count


def add_parsers(lab_commands) -> None:
    cloud = lab_commands.add_parser("cloud", help="run the lab's cloud stand-in (NOT Google Cloud) in the foreground")
    cloud.add_argument("--port", type=int, default=0, help="loopback port (default: any free one)")
    cloud.add_argument("--memory", action="store_true",
                       help="keep hosts in memory instead of making lab containers (to try the API)")
    fault = lab_commands.add_parser("fault", help="inject a cloud fault through the stand-in's admin path")
    fault.add_argument("kind", choices=FAULT_KINDS,
                       help="preempt a spot TPU node or slice, terminate a spot VM or a TPU node, stockout: the "
                            "next creations fail "
                            "for lack of capacity, api-errors: the next calls on the target's project fail")
    fault.add_argument("target", help="an inventory host (a slice's worker means the slice), or a zone for stockout")
    fault.add_argument("--count", type=_count, default=1,
                       help="stockout: creations that fail; api-errors: calls that fail (1)")
    fault.add_argument("--status", type=int, choices=(429, 503), default=503, help="api-errors: the HTTP status (503)")


def run(args, project: Path) -> int:
    # The stand-in shares facts with the collection (the lab token prefix, TPU worker counts); a process that
    # has imported it already (the tests) keeps its own loader.
    if "ansible_collections.fleetwarden.fleet" not in sys.modules:
        from ansible.plugins.loader import init_plugin_loader

        init_plugin_loader([str(project / "collections")])
    if args.lab_command == "fault":
        from fleetwarden.cloud.admin import inject

        print(json.dumps(inject(state_dir(project), args.kind, args.target, args.count, args.status)))
        return 0
    from fleetwarden.cloud.backend import MemoryBackend
    from fleetwarden.cloud.server import serve

    if args.memory:
        backend = MemoryBackend()
    else:
        from fleetwarden.cloud.lab_backend import LabBackend
        from fleetwarden.lab.lab import Lab

        backend = LabBackend(Lab(project, name=args.name))
    try:
        serve(state_dir(project), backend, args.port)
    except KeyboardInterrupt:
        return 0
    return 0
