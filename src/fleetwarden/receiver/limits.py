"""The decision engine: what to do with one alert, given what the audit store knows. Pure functions.

The order of the checks is the policy (docs/receiver.md):
resolved -> not ours (received) -> unknown host -> maintenance -> replay (deduped) -> quarantined -> breaker open ->
breaker trips -> a run in progress (joined) -> cooldown -> attempts used up (quarantine) -> budget -> run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleetwarden.receiver.alerts import Alert
from fleetwarden.receiver.config import Limits

# Every kind of audit row. `started`, `dry_run` act; operator actions and run outcomes are rows too.
KINDS = (
    "received", "started", "dry_run", "deduped", "joined", "cooldown", "quarantined", "budget", "breaker",
    "unknown_host", "unauthorized", "resolved", "bad_request", "too_large", "interrupted", "released", "reset",
    "maintenance", "maintenance_start", "maintenance_end",
)
# Decisions about a firing, remediable alert for a known host: these count towards the breaker.
ALERTING_KINDS = ("started", "dry_run", "deduped", "joined", "cooldown", "quarantined", "budget", "breaker")


@dataclass(frozen=True)
class View:
    """What the store knows that matters to one alert, read in the same transaction that records it."""

    known_host: bool
    seen: bool  # this (fingerprint, startsAt, status) is already handled
    quarantined: bool
    breaker_open: bool
    running_job: str | None  # the host's run in progress
    last_end: float | None  # when the host's last finished run ended
    last_ok: bool | None
    attempts: int  # runs for (host, alertname) in the attempts window, since the last release
    alerting_hosts: frozenset  # hosts with remediable alerts in the breaker window, since the last reset
    healed_hosts: frozenset  # hosts with runs in the budget window
    inventory_size: int
    maintenance: str | None = None  # why the host is in maintenance (who, until when), or None


@dataclass(frozen=True)
class Decision:
    kind: str
    reason: str
    job_id: str | None = None
    trips_breaker: bool = False
    quarantines: bool = False


def budget_hosts(limits: Limits, inventory_size: int) -> int:
    """Distinct hosts that may be healed per budget window: a share of the fleet, at least one."""
    return max(1, math.floor(inventory_size * limits.budget_percent / 100))


def breaker_trips(limits: Limits, alerting_hosts: int, inventory_size: int) -> bool:
    """More than breaker_percent of the inventory alerting within the window, and at least breaker_min_hosts
    of them, trips the breaker (one host alone is never a fleet-wide fault, even in a fleet of one)."""
    return (inventory_size > 0 and alerting_hosts >= limits.breaker_min_hosts
            and alerting_hosts * 100 > limits.breaker_percent * inventory_size)


def decide(alert: Alert, view: View, limits: Limits, now: float, dry_run: bool = False) -> Decision:
    if alert.status == "resolved":
        if view.seen:
            return Decision("deduped", "resolved notification already recorded")
        return Decision("resolved", "alert resolved")
    if not alert.remediate:
        return Decision("received", 'not labelled remediate="true"; recorded only')
    if not alert.host or not view.known_host:
        return Decision("unknown_host", "no host label" if not alert.host else "host is not in the inventory")
    if view.maintenance:  # a person works on the host: recorded, not acted on, not counted, not marked handled
        return Decision("maintenance", f"host in maintenance: {view.maintenance}")
    if view.seen:
        return Decision("deduped", "this (fingerprint, startsAt) is already handled")
    if view.quarantined:
        return Decision("quarantined", "host is quarantined until `fleetwarden receiver release`")
    if view.breaker_open:
        return Decision("breaker", "circuit breaker is open until `fleetwarden receiver reset`")
    alerting = len(view.alerting_hosts | {alert.host})
    if breaker_trips(limits, alerting, view.inventory_size):
        return Decision("breaker", f"{alerting} of {view.inventory_size} hosts alerting within "
                        f"{limits.breaker_window_s} s, more than {limits.breaker_percent}%: breaker trips",
                        trips_breaker=True)
    if view.running_job:
        return Decision("joined", "a run for this host is in progress", job_id=view.running_job)
    if view.last_end is not None:
        cooldown = limits.cooldown_success_s if view.last_ok else limits.cooldown_failure_s
        left = view.last_end + cooldown - now
        if left > 0:
            outcome = "success" if view.last_ok else "failure"
            return Decision("cooldown", f"cooldown after {outcome}: {math.ceil(left)} s left")
    if view.attempts >= limits.max_attempts:
        return Decision("quarantined", f"{view.attempts} runs for this alert within {limits.attempts_window_s} s: "
                        "host quarantined", quarantines=True)
    allowed = budget_hosts(limits, view.inventory_size)
    if alert.host not in view.healed_hosts and len(view.healed_hosts) >= allowed:
        return Decision("budget", f"{len(view.healed_hosts)} hosts healed within {limits.budget_window_s} s, "
                        f"budget {allowed}")
    if dry_run:
        return Decision("dry_run", "would start a run (dry-run mode)")
    return Decision("started", "run queued")
