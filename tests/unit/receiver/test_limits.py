"""The decision engine (pure): each limit, in the order the policy gives them."""

from __future__ import annotations

import dataclasses

import pytest

from fleetwarden.receiver.alerts import Alert
from fleetwarden.receiver.config import Limits
from fleetwarden.receiver.limits import View, breaker_trips, budget_hosts, decide

NOW = 1_000_000.0
LIMITS = Limits()
CLEAR = View(known_host=True, seen=False, quarantined=False, breaker_open=False, running_job=None, last_end=None,
             last_ok=None, attempts=0, alerting_hosts=frozenset(), healed_hosts=frozenset(), inventory_size=10)


def firing(host="w-1", remediate="true", status="firing") -> Alert:
    labels = {"alertname": "RayWorkerDown", "remediate": remediate}
    return Alert(status, "fp", "2026-11-27T18:00:00Z", "", labels, host)


def kind(alert=None, **view) -> str:
    return decide(alert or firing(), dataclasses.replace(CLEAR, **view), LIMITS, NOW).kind


def test_a_clear_host_starts_a_run():
    assert kind() == "started"
    assert decide(firing(), CLEAR, LIMITS, NOW, dry_run=True).kind == "dry_run"


@pytest.mark.parametrize(("alert", "view", "expected"), [
    (firing(status="resolved"), {}, "resolved"),
    (firing(status="resolved"), {"seen": True}, "deduped"),
    (firing(remediate="false"), {}, "received"),
    (firing(host=None), {}, "unknown_host"),
    (firing(), {"known_host": False}, "unknown_host"),
    (firing(), {"seen": True}, "deduped"),
    (firing(), {"quarantined": True}, "quarantined"),
    (firing(), {"breaker_open": True}, "breaker"),
    (firing(), {"running_job": "job-1"}, "joined"),
    (firing(), {"last_end": NOW - 100, "last_ok": True}, "cooldown"),
    (firing(), {"last_end": NOW - 100, "last_ok": False}, "cooldown"),
    (firing(), {"last_end": NOW - 301, "last_ok": False}, "started"),
    (firing(), {"last_end": NOW - 601, "last_ok": True}, "started"),
    (firing(), {"attempts": 3}, "quarantined"),
    (firing(), {"attempts": 2}, "started"),
    (firing(), {"healed_hosts": frozenset({"w-2", "w-3"})}, "budget"),
    (firing(), {"healed_hosts": frozenset({"w-1", "w-2"})}, "started"),
])
def test_each_limit(alert, view, expected):
    assert kind(alert, **view) == expected


def test_precedence_quarantine_before_breaker_before_joined():
    assert kind(quarantined=True, breaker_open=True, running_job="j") == "quarantined"
    assert kind(breaker_open=True, running_job="j") == "breaker"
    assert kind(running_job="j", last_end=NOW - 1, last_ok=True) == "joined"


def test_attempts_used_up_quarantines_and_says_so():
    decision = decide(firing(), dataclasses.replace(CLEAR, attempts=3), LIMITS, NOW)
    assert decision.quarantines and not decision.trips_breaker


def test_breaker_trips_above_the_share():
    # 10 hosts, 50%: the 6th distinct alerting host trips it; the 5th does not.
    five = frozenset(f"w-{i}" for i in range(2, 6))
    assert kind(alerting_hosts=five) == "started"
    six = five | {"w-6"}
    decision = decide(firing(), dataclasses.replace(CLEAR, alerting_hosts=six), LIMITS, NOW)
    assert decision.kind == "breaker" and decision.trips_breaker
    assert "6 of 10 hosts" in decision.reason


@pytest.mark.parametrize(("alerting", "size", "percent", "trips"), [
    (5, 10, 50, False), (6, 10, 50, True), (2, 3, 50, True), (1, 3, 50, False), (1, 1, 100, False), (0, 0, 50, False),
    (1, 1, 50, False), (2, 2, 50, True)])
def test_breaker_trips_math(alerting, size, percent, trips):
    assert breaker_trips(Limits(breaker_percent=percent), alerting, size) is trips


@pytest.mark.parametrize(("size", "percent", "hosts"), [(3, 20, 1), (10, 20, 2), (50, 20, 10), (50, 100, 50)])
def test_budget_hosts(size, percent, hosts):
    assert budget_hosts(Limits(budget_percent=percent), size) == hosts
