"""settle NAME: recovery's verdict.

Within a timeout the container runs and its probe passes, then for a settle window the probe keeps passing, the
container stays the same one and its unit does not restart. Prints one JSON line; exit 0 when it settled.
"""

import json
import time

from fleetwarden_worker import common
from fleetwarden_worker.probe import probe_checks


def _settle_round(config, name, unit):
    """(ok, container id, restarts, reason) for one look at a worker."""
    state = common.container_state(name)
    props = common.unit_properties(unit)
    restarts = props.get("NRestarts", "")
    if props.get("ActiveState") != "active":
        return False, None, restarts, f"{unit} is {props.get('ActiveState') or 'unknown'}"
    if state is None:
        return False, None, restarts, "dockerd does not answer"
    if state == () or not state[1]:
        return False, None, restarts, "container not running"
    if config.get("enabled"):
        ok, reason = probe_checks(config, state, name)
        if not ok:
            return False, state[0], restarts, reason
    return True, state[0], restarts, "ok"


def settle_verdict(observe, window, timeout, interval, clock=time.monotonic, sleep=time.sleep):
    """Polls observe() -> (ok, container_id, restarts, reason) until it passes, within `timeout`; from then on it
    must keep passing, with the same container and restart count, for `window` seconds. Returns a verdict."""
    started = clock()
    first = None
    last = "never looked"
    while True:
        ok, container, restarts, reason = observe()
        now = clock()
        if ok and first is None:
            first = (now, container, restarts)
        elif first is not None and (not ok or container != first[1] or restarts != first[2]):
            what = reason if not ok else ("the container was replaced" if container != first[1]
                                          else f"the unit restarted (NRestarts {first[2]} -> {restarts})")
            return {"healthy": False, "settled_s": round(now - first[0], 1), "window_s": window,
                    "reason": f"not healthy through the settle window: {what} after {now - first[0]:.0f} s"}
        last = reason
        if first is not None and now - first[0] >= window:
            return {"healthy": True, "settled_s": round(now - first[0], 1), "window_s": window,
                    "reason": f"probe passed for {window:g} s, same container, no restart",
                    "container_id": first[1], "waited_s": round(first[0] - started, 1)}
        if first is None and now - started >= timeout:
            return {"healthy": False, "settled_s": 0, "window_s": window,
                    "reason": f"not healthy within {timeout:g} s: {last}"}
        sleep(interval)


def settle(name, window, timeout, interval):
    config = dict(common.load_declaration(name)["probe"])
    unit = common.unit_name(name)
    verdict = settle_verdict(lambda: _settle_round(config, name, unit), window, timeout, interval)
    verdict["worker"] = name
    print(json.dumps(verdict), flush=True)
    return 0 if verdict["healthy"] else 1
