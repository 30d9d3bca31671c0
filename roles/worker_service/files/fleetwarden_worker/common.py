"""What every subcommand shares: paths, journal priorities, the declaration, docker and systemctl.

Names, paths and the unit properties are the collection's _worker_state (the role copies it next to this package).
"""

import json
import os
import socket
import subprocess
import sys

from ansible_collections.fleetwarden.fleet.plugins.module_utils import _worker_state as worker_state

CONFIG_DIR = os.environ.get("FLEETWARDEN_WORKER_CONFIG_DIR", worker_state.PATHS["config_dir"])
STATE_DIR = os.environ.get("FLEETWARDEN_WORKER_STATE_DIR", worker_state.STATE_DIR)
DOCKER = os.environ.get("FLEETWARDEN_DOCKER", "/usr/bin/docker")
SYSTEMCTL = "/usr/bin/systemctl"
JOURNALCTL = "/usr/bin/journalctl"
# sd-daemon priority prefixes: journald files each line under that priority.
ERR, WARNING, NOTICE, INFO = "<3>", "<4>", "<5>", "<6>"


def log(priority, message):
    print(priority + message, file=sys.stderr, flush=True)


def load_declaration(name):
    with open(os.path.join(CONFIG_DIR, name + ".json")) as handle:
        return json.load(handle)


def unit_name(name):
    return worker_state.unit_names(name)["worker"]


def sd_notify(message):
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


def docker(*args, timeout=60):
    try:
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess([DOCKER, *args], 124, "", f"timed out after {timeout}s")


STATE_FORMAT = "{{.Id}} {{.State.Running}} {{.State.ExitCode}} {{.State.Pid}} {{.NetworkSettings.IPAddress}}"


def container_state(name):
    """(id, running, exit_code, pid, ip) of the container; None if dockerd does not answer; () if no such container."""
    return parse_container_state(docker("inspect", "--format", STATE_FORMAT, name, timeout=20))


def container_state_later(name, timeout=20):
    """Starts asking for container_state(name) and returns a function that waits for the answer: the caller does
    other work (a health check) while docker inspect runs."""
    argv = [DOCKER, "inspect", "--format", STATE_FORMAT, name]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def answer():
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return None
        return parse_container_state(subprocess.CompletedProcess(argv, process.returncode, out, err))
    return answer


def parse_container_state(result):
    if result.returncode != 0:
        return () if "No such" in result.stderr else None
    fields = [*result.stdout.split(), ""]
    return fields[0], fields[1] == "true", int(fields[2]), int(fields[3]), fields[4]


def _run(argv):
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    return result.returncode, result.stdout, result.stderr


def unit_properties(unit):
    return worker_state.read_units([unit], _run, systemctl=SYSTEMCTL, journalctl=JOURNALCTL)[0].get(unit) or {}
