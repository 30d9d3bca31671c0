#!/usr/bin/env python3
"""`site.yml` run again with nothing to change, against a floor playbook with the same hosts and task count.

Usage: .venv/bin/python benchmarks/site_converge.py [--trials 5] [-i inventory/lab] [--main-ref 719971a]
Needs a lab that site.yml has deployed. The floor is the one the speed work started from: built from the
site.yml it measured (commit
719971a, the tree before its levers: 60 pings + 28 skipped tasks there). That site.yml (`git archive <ref>` into
a temporary directory) runs on the lab with the json callback until a run changes nothing (it deploys its own
worker tool and units, so its first run changes them; the second must not); from that run, each task
that ran on some host becomes a ping on exactly those hosts, each task skipped on every host a skipped task,
play by play with the same host patterns, no fact gathering. Then, alternately, `--trials` times each: the floor
with that tree's ansible.cfg (the issue's settings: its floor), this checkout's site.yml with this checkout's
ansible.cfg, and the floor again with this checkout's ansible.cfg (what the same settings do for trivial tasks;
shown, not the goal's measure, since connection settings are one of the issue's levers). Prints the counts, a
markdown table (median and max wall seconds, and the controller's CPU seconds, which load inflates less) and
the load before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PLAYBOOK = str(REPO / ".venv" / "bin" / "ansible-playbook")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_playbook(project: Path, playbook: str, inventory: Path, env: dict | None = None,
                 extra: tuple[str, ...] = ()) -> tuple[float, float, str]:
    """Wall and controller CPU seconds of one ansible-playbook run in `project`; fails on a failed run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    env = dict(os.environ, NO_COLOR="1", ANSIBLE_CONFIG=str(project / "ansible.cfg"), **(env or {}))
    run = subprocess.run([PLAYBOOK, "-i", str(inventory), *extra, playbook], cwd=project, capture_output=True,
                         text=True, check=False, env=env)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode != 0:
        raise SystemExit(f"{playbook} in {project} failed ({run.returncode}):\n"
                         f"{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, run.stdout


def changed_hosts(report: dict) -> dict:
    return {host: stats["changed"] for host, stats in report.get("stats", {}).items() if stats.get("changed")}


def merged_tasks(tasks: list[dict]) -> list[dict]:
    """A play's tasks, one entry per task: the json callback gives one entry per task and host when the play's
    strategy is not linear by name (fleetwarden.fleet.mitogen_linear), one per task otherwise."""
    merged: dict[str, dict] = {}
    for task in tasks:
        entry = merged.setdefault(task["task"]["id"], {"task": task["task"], "hosts": {}})
        entry["hosts"].update(task["hosts"])
    return list(merged.values())


def floor_plays(report: dict, source_plays: list[dict]) -> tuple[list[dict], int, int]:
    """The floor playbook from a json-callback report of a no-change run: per play, a ping on the hosts each task
    ran on, a skipped task for each task skipped on every host."""
    plays, pings, skipped = [], 0, 0
    by_name = {play["name"]: play for play in source_plays}
    for number, play in enumerate(report["plays"]):
        name = play["play"]["name"]
        tasks = []
        for task in merged_tasks(play["tasks"]):
            ran = sorted(host for host, result in task["hosts"].items() if not result.get("skipped"))
            if ran:
                pings += 1
                tasks.append({"name": f"ping {pings}", "ansible.builtin.ping": None,
                              "when": f"inventory_hostname in {ran}"})
            else:
                skipped += 1
                tasks.append({"name": f"skipped {skipped}", "ansible.builtin.ping": None, "when": False})
        plays.append({"name": f"floor {number}: {name}", "hosts": by_name[name]["hosts"], "gather_facts": False,
                      "tasks": tasks})
    return plays, pings, skipped


def converged_report(project: Path, inventory: Path, extra: tuple[str, ...] = ()) -> dict:
    """The json-callback report of `project`'s site.yml once a run changes nothing: a first run may change the
    lab (the other tree's tool and units), the second must not."""
    for attempt in (1, 2):
        _wall, _cpu, out = run_playbook(project, "site.yml", inventory,
                                        {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}, extra)
        report = json.loads(out)
        if not changed_hosts(report):
            return report
        print(f"{project}'s site.yml, run {attempt}: changed {changed_hosts(report)}", file=sys.stderr)
    raise SystemExit(f"{project}'s site.yml still changed something on its second run: {changed_hosts(report)}")


FLOOR_REF = "719971a"  # the tree the floor was measured on, before any speed lever


def main_tree(ref: str, into: Path) -> Path:
    """`ref`'s tree (git archive), with this checkout's lab state (.lab: key, known hosts, receiver token)."""
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=REPO, capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="tar")
    (into / ".lab").symlink_to(REPO / ".lab")
    (into / ".venv").symlink_to(REPO / ".venv")
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("-i", "--inventory", default="inventory/lab")
    parser.add_argument("--main-ref", default=FLOOR_REF, help="the git ref whose site.yml defines the floor")
    args = parser.parse_args()
    inventory = (REPO / args.inventory).resolve()
    with tempfile.TemporaryDirectory(prefix="site-converge-") as temp:
        temp_dir = Path(temp)
        main = main_tree(args.main_ref, temp_dir / "main")
        # The lab's inventory (and group_vars) are this checkout's. The receiver deploys the collection and the
        # wheel it is given: this checkout's, as the site.yml runs below do, so that main's run changes nothing.
        # That tree deploys its own worker tool and units (both changed since), so on a lab this checkout
        # deployed its first run changes them: the floor comes from its second run, which must change nothing.
        report = converged_report(main, inventory, ("-e", f"recovery_receiver_source_dir={REPO}"))
        source = yaml.safe_load((main / "site.yml").read_text())
        plays, pings, skipped = floor_plays(report, source)
        floor = temp_dir / "floor.yml"
        floor.write_text(yaml.safe_dump(plays, sort_keys=False))
        print(f"floor from {args.main_ref}'s site.yml: {pings} pings + {skipped} skipped tasks in {len(plays)} plays")
        # Then this checkout's site.yml puts its own tool and units back, and its next run must change nothing.
        mine = converged_report(REPO, inventory)
        _plays, my_pings, my_skipped = floor_plays(mine, yaml.safe_load((REPO / "site.yml").read_text()))
        print(f"this checkout's site.yml on a rerun: {my_pings} tasks ran + {my_skipped} skipped")
        before = load()
        runs = (("floor", main, str(floor)), ("site.yml", REPO, "site.yml"),
                ("floor, this checkout's ansible.cfg", REPO, str(floor)))
        walls: dict[str, list[float]] = {name: [] for name, _project, _playbook in runs}
        cpus: dict[str, list[float]] = {name: [] for name, _project, _playbook in runs}
        for _ in range(args.trials):
            for name, project, playbook in runs:
                wall, cpu, _out = run_playbook(project, playbook, inventory)
                walls[name].append(wall)
                cpus[name].append(cpu)
                print(f"  {name}: {wall:.1f} s (load {load()})", file=sys.stderr)
        after = load()
    print("| playbook | trials | median (s) | max (s) | controller CPU, median (s) |")
    print("|---|---|---|---|---|")
    for name in walls:
        print(f"| {name} | {len(walls[name])} | {statistics.median(walls[name]):.1f} | {max(walls[name]):.1f} "
              f"| {statistics.median(cpus[name]):.1f} |")
    ratio = statistics.median(walls["site.yml"]) / statistics.median(walls["floor"])
    cpu_ratio = statistics.median(cpus["site.yml"]) / statistics.median(cpus["floor"])
    same = statistics.median(walls["site.yml"]) / statistics.median(walls["floor, this checkout's ansible.cfg"])
    print(f"\nsite.yml / floor: {ratio:.2f}x wall (goal <= 0.5x), {cpu_ratio:.2f}x controller CPU; "
          f"{same:.2f}x the floor run with this checkout's ansible.cfg")
    print(f"load average before: {before}; after: {after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
