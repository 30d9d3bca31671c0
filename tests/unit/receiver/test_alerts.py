"""Parsing Alertmanager webhook bodies (pure)."""

from __future__ import annotations

import json

import pytest

from fleetwarden.receiver.alerts import (
    BadNotification,
    host_from_instance,
    parse_notification,
    parse_time,
    time_to_recover,
)

from .conftest import alert, notification


@pytest.mark.parametrize(("instance", "host"), [
    ("worker-1:9100", "worker-1"), ("10.0.0.5:9100", "10.0.0.5"), ("[::1]:9100", "::1"), ("worker-1", "worker-1")])
def test_host_from_instance(instance, host):
    assert host_from_instance(instance) == host


def test_host_label_wins_over_instance():
    [parsed] = parse_notification(json.dumps(notification(alert("w-1", instance="other:9100"))).encode())
    assert parsed.host == "w-1"
    no_label = alert(None, instance="w-2:9100")
    [parsed] = parse_notification(json.dumps(notification(no_label)).encode())
    assert parsed.host == "w-2"
    [parsed] = parse_notification(json.dumps(notification(alert(None))).encode())
    assert parsed.host is None


def test_host_label_is_a_setting():
    [parsed] = parse_notification(json.dumps(notification(alert(None, node="n-1"))).encode(), host_label="node")
    assert parsed.host == "n-1"


@pytest.mark.parametrize(("body", "message"), [
    (b"\xff", "not JSON"),
    (b"[]", "JSON object"),
    (json.dumps({"version": 4, "alerts": []}).encode(), 'version must be "4"'),
    (json.dumps({"version": "4"}).encode(), "alerts must be a list"),
    (json.dumps({"version": "4", "alerts": ["x"]}).encode(), "alerts[0] must be an object"),
    (json.dumps(notification({**alert("h"), "status": "pending"})).encode(), "alerts[0].status"),
    (json.dumps(notification({**alert("h"), "labels": {"a": 1}})).encode(), "alerts[0].labels.a must be a string"),
    (json.dumps(notification({**alert("h"), "fingerprint": ""})).encode(), "fingerprint must not be empty"),
    (json.dumps(notification({**alert("h"), "startsAt": "yesterday"})).encode(), "alerts[0].startsAt"),
    (json.dumps(notification(*[alert("h")] * 1001)).encode(), "more than 1000"),
])
def test_bad_bodies_name_the_field(body, message):
    with pytest.raises(BadNotification, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_notification(body)


def test_times_with_nanoseconds_and_time_to_recover():
    assert parse_time("2026-11-27T18:00:00.123456789Z").microsecond == 123456
    resolved = alert("h", status="resolved", starts_at="2026-11-27T18:00:00.5Z", ends_at="2026-11-27T18:01:00.5Z")
    [parsed] = parse_notification(json.dumps(notification(resolved)).encode())
    assert time_to_recover(parsed) == 60.0
    [firing] = parse_notification(json.dumps(notification(alert("h"))).encode())
    assert time_to_recover(firing) is None
