"""alert UNIT: the OnFailure= hook.

Runs the declared command and/or POSTs the webhook, with the unit's name and last exit status.
"""

import json
import os
import socket
import subprocess
import urllib.error
import urllib.request

from fleetwarden_worker import common
from fleetwarden_worker.common import ERR, INFO, log


def fill_placeholders(arg, facts):
    """{unit}, {worker}, {host}, {result}, {exit_status} and {restarts} in an alert argv element; nothing else."""
    for key, value in facts.items():
        arg = arg.replace(f"{{{key}}}", str(value))
    return arg


def alert(unit):
    name = common.worker_state.worker_of_unit(unit)
    props = common.unit_properties(unit)
    facts = {"unit": unit, "worker": name, "host": socket.gethostname(), "result": props.get("Result", ""),
             "exit_status": props.get("ExecMainStatus", ""), "restarts": props.get("NRestarts", "")}
    log("<2>", "{unit} on {host} failed for good (result {result}, last exit status {exit_status}, "
        "{restarts} restarts); firing its alert".format(**facts))
    try:
        hooks = common.load_declaration(name).get("alert") or {} if name else {}
    except (OSError, ValueError) as exc:
        log(ERR, f"cannot read the declaration of {name}: {exc}")
        hooks = {}
    failed = 0
    if hooks.get("command"):
        argv = [fill_placeholders(arg, facts) for arg in hooks["command"]]
        env = dict(os.environ, **{"FLEETWARDEN_" + key.upper(): str(value) for key, value in facts.items()})
        try:
            result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
            failed |= result.returncode != 0
            log(INFO if result.returncode == 0 else ERR,
                f"alert command exited {result.returncode} {result.stderr.strip()[:300]}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            failed = 1
            log(ERR, f"alert command failed: {exc}")
    if hooks.get("webhook"):
        request = urllib.request.Request(hooks["webhook"], data=json.dumps(facts).encode(),  # noqa: S310 - the operator's URL
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the URL is the operator's
                log(INFO, f"alert webhook answered {response.status}")
        except (OSError, urllib.error.URLError) as exc:
            failed = 1
            log(ERR, f"alert webhook failed: {exc}")
    return failed
