"""The gathering round without a play (src/fleetwarden/doctor/remote.py): its pure helpers, and the whole round
against this machine over ansible's `local` connection and against a port where nothing listens over `ssh`."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fleetwarden.doctor.remote import (
    cache_key,
    interpreter_for,
    parse_module_output,
    remote_command,
    run_all,
)

REPO = Path(__file__).resolve().parents[3]


def test_parse_module_output_reads_the_result_and_drops_the_invocation():
    out = json.dumps({"changed": False, "host": {"hostname": "h"}, "workers": [], "invocation": {"module_args": {}}})
    assert parse_module_output(0, out.encode(), b"") == ({"changed": False, "host": {"hostname": "h"},
                                                          "workers": []}, None)


def test_parse_module_output_ignores_a_banner_around_the_json():
    out = "Welcome to the host\n" + json.dumps({"host": {}, "workers": []}, indent=1) + "\nbye\n"
    assert parse_module_output(0, out, "") == ({"host": {}, "workers": []}, None)


def test_parse_module_output_reports_the_modules_failure():
    out = json.dumps({"failed": True, "msg": "unsupported parameter: nope"})
    assert parse_module_output(1, out, "") == (None, "unsupported parameter: nope")


def test_parse_module_output_reports_a_crash_with_stderr():
    result, failed = parse_module_output(1, b"", b"Traceback ...\nImportError: no module named x\n")
    assert result is None and "rc 1" in failed and "ImportError: no module named x" in failed


def test_parse_module_output_names_a_timeout():
    result, failed = parse_module_output(124, "", "")
    assert result is None and "did not finish in time" in failed


def test_remote_command_bounds_the_run_and_quotes_the_interpreter():
    assert remote_command("/usr/bin/python3", 28) == "timeout 28 /usr/bin/python3"
    assert remote_command("/opt/my python/bin/python3", 5) == "timeout 5 '/opt/my python/bin/python3'"


@pytest.mark.parametrize(("declared", "used"), [
    (None, "python3"), ("", "python3"), ("auto_silent", "python3"), ("auto", "python3"),
    ("/usr/local/bin/python3.11", "/usr/local/bin/python3.11"),
])
def test_interpreter_for(declared, used):
    assert interpreter_for({"ansible_python_interpreter": declared}) == used


def test_cache_key_changes_with_every_input(tmp_path):
    module, util = tmp_path / "m.py", tmp_path / "u.py"
    module.write_text("a")
    util.write_text("b")
    base = cache_key([module, util], "2.19.0", {"x": 1}, "ZIP_DEFLATED")
    assert base == cache_key([util, module], "2.19.0", {"x": 1}, "ZIP_DEFLATED")  # order of the files is not an input
    assert base != cache_key([module, util], "2.19.1", {"x": 1}, "ZIP_DEFLATED")
    assert base != cache_key([module, util], "2.19.0", {"x": 2}, "ZIP_DEFLATED")
    assert base != cache_key([module, util], "2.19.0", {"x": 1}, "ZIP_STORED")
    util.write_text("c")
    assert base != cache_key([module, util], "2.19.0", {"x": 1}, "ZIP_DEFLATED")


def test_run_all_runs_in_parallel_and_reports_each_answer_once():
    barrier = threading.Barrier(3, timeout=5)  # every job waits for the others: only parallel runs pass it
    seen = []

    def job(name):
        barrier.wait()
        return ({"name": name}, None, None)

    answers = run_all({n: (lambda n=n: job(n)) for n in ("a", "b", "c")}, 10, seen.append)
    assert answers == {n: ({"name": n}, None, None) for n in ("a", "b", "c")}
    assert sorted(seen) == ["a", "b", "c"]


def test_run_all_runs_at_most_max_parallel_at_once():
    lock, running, most = threading.Lock(), [0], [0]

    def job():
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return ({}, None, None)

    answers = run_all({str(n): job for n in range(6)}, 10, max_parallel=2)
    assert len(answers) == 6 and most[0] == 2


def test_run_all_gives_up_on_a_slow_host_at_the_deadline_and_keeps_a_crash_to_its_host():
    release = threading.Event()

    def boom():
        raise ValueError("bad host")

    started = time.monotonic()
    seen = []
    answers = run_all({"slow": lambda: (release.wait(30), None, None), "ok": lambda: ({}, None, None),
                       "boom": boom}, 0.5, seen.append)
    assert time.monotonic() - started < 5
    assert answers["slow"] == (None, "no answer within 0.5 s", None)
    assert answers["ok"] == ({}, None, None)
    assert answers["boom"] == (None, "ValueError: bad host", None)
    release.set()
    time.sleep(0.1)
    assert sorted(seen) == ["boom", "ok"]  # the late host is not reported after the round ended


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_round_on_this_machine_and_on_a_closed_port(tmp_path):
    """`fleetwarden status --json` builds the real payload (ansible's builder, the collection's module_utils) and runs
    fleet_status on this machine through the `local` connection plugin; a host whose ssh port is closed is
    unreachable, not a crash of the round. The payload is kept for the next round."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {
        "here": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "nowhere": {"ansible_host": "127.0.0.1", "ansible_port": _free_port(), "ansible_user": "nobody",
                    "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"},
    }}}))
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), NO_COLOR="1")
    cache = tmp_path / "cache" / "fleetwarden" / "ansiballz"
    for _round in (1, 2):
        run = subprocess.run([sys.executable, "-m", "fleetwarden.cli", "status", "--json", "-i", str(inventory)],
                             cwd=REPO, capture_output=True, text=True, timeout=120, check=False, env=env)
        assert run.returncode == 0, run.stderr
        hosts = {h["host"]: h for h in json.loads(run.stdout)["hosts"]}
        here, nowhere = hosts["here"], hosts["nowhere"]
        assert here["reachable"] and here["error"] is None, here["error"]
        assert here["disks"][0]["path"] == "/" and here["memory_used_pct"] is not None
        assert not nowhere["reachable"] and nowhere["error"] and nowhere["sshd_accepts"] is False
        [cached] = cache.glob("fleetwarden.fleet.fleet_status-*")
        assert b"_ansiballz_main" in cached.read_bytes()
        if _round == 1:  # the second round reads the payload instead of building it again
            cached.write_bytes(cached.read_bytes().replace(b"_ansiballz_main(", b"_ansiballz_main( ", 1))
    assert cached.read_bytes().count(b"_ansiballz_main( ") == 1


def test_status_and_doctor_payloads_are_cached_side_by_side(tmp_path):
    """status (no users) and doctor (authorized_keys_users) build different payloads: each keeps its own file, so
    running them in turn builds neither again."""
    script = """
import json, sys
from pathlib import Path
from fleetwarden.doctor.fleet import Fleet, MODULE
from fleetwarden.doctor.remote import Payload
inventory = Path(sys.argv[1]) / "hosts.yml"
inventory.write_text("all:\\n  hosts:\\n    here:\\n      ansible_connection: local\\n")
Fleet(Path(sys.argv[2]), [str(inventory)])
cache = Path(sys.argv[1]) / "cache"
for users in ([], ["root"], []):
    Payload(MODULE, {"authorized_keys_users": users, "timeout": 10}, cache)
print(json.dumps(sorted(p.name for p in cache.iterdir())))
"""
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(REPO)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    names = json.loads(run.stdout)
    assert len(names) == 2 and all(n.startswith("fleetwarden.fleet.fleet_status-") for n in names)
    assert len({n.split("-")[1] for n in names}) == 2  # one per set of arguments
