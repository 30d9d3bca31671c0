"""Parse an Alertmanager webhook body (version 4) into alerts. Pure functions.

Labels are kept as data: nothing here (or anywhere in the receiver) renders them, and only a host
name found in the inventory ever reaches a run, as the value of `target`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_ALERTS = 1000
MAX_LABEL_BYTES = 4096  # one label, name and value
MAX_LABELS_BYTES = 16384  # all labels of one alert
MAX_FINGERPRINT = 128  # Alertmanager's are 16 hex digits
MAX_TIME = 64  # an RFC 3339 time with nanoseconds is 35 characters


class BadNotification(ValueError):
    """The body is not an Alertmanager v4 notification; the message names the field."""


@dataclass(frozen=True)
class Alert:
    status: str  # "firing" or "resolved"
    fingerprint: str
    starts_at: str  # verbatim, part of the dedupe key
    ends_at: str
    labels: dict
    host: str | None  # from the host label, or `instance` without its port

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def remediate(self) -> bool:
        return self.labels.get("remediate") == "true"


_PORT_RE = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<name>[^:]+)):\d+$")


def host_from_instance(instance: str) -> str:
    """`worker-1:9100` -> `worker-1`; `[::1]:9100` -> `::1`; a value without a port is kept."""
    match = _PORT_RE.match(instance)
    if not match:
        return instance
    return match.group("v6") or match.group("name")


def _text(value, where: str, limit: int | None = None) -> str:
    if not isinstance(value, str):
        raise BadNotification(f"{where} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadNotification(f"{where} is not valid Unicode (a lone surrogate)") from None
    if limit is not None and len(value) > limit:
        raise BadNotification(f"{where} is longer than {limit} characters")
    return value


def parse_alert(raw, index: int, host_label: str) -> Alert:
    where = f"alerts[{index}]"
    if not isinstance(raw, dict):
        raise BadNotification(f"{where} must be an object")
    status = _text(raw.get("status"), f"{where}.status")
    if status not in ("firing", "resolved"):
        raise BadNotification(f"{where}.status must be firing or resolved, got {status!r}")
    labels = raw.get("labels")
    if not isinstance(labels, dict):
        raise BadNotification(f"{where}.labels must be an object")
    total = 0
    for name, value in labels.items():
        _text(name, f"{where}.labels (a name)", MAX_LABEL_BYTES)
        _text(value, f"{where}.labels.{name}")
        if len(name) + len(value) > MAX_LABEL_BYTES:
            raise BadNotification(f"{where}.labels.{name} is longer than {MAX_LABEL_BYTES} characters")
        total += len(name) + len(value)
    if total > MAX_LABELS_BYTES:
        raise BadNotification(f"{where}.labels hold more than {MAX_LABELS_BYTES} characters")
    fingerprint = _text(raw.get("fingerprint"), f"{where}.fingerprint", MAX_FINGERPRINT)
    if not fingerprint:
        raise BadNotification(f"{where}.fingerprint must not be empty")
    starts_at = _text(raw.get("startsAt"), f"{where}.startsAt", MAX_TIME)
    parse_time(starts_at, f"{where}.startsAt")
    ends_at = _text(raw.get("endsAt", ""), f"{where}.endsAt", MAX_TIME)
    if ends_at:
        parse_time(ends_at, f"{where}.endsAt")
    host = labels.get(host_label) or (host_from_instance(labels["instance"]) if labels.get("instance") else None)
    return Alert(status, fingerprint, starts_at, ends_at, dict(labels), host)


def parse_notification(body: bytes, host_label: str = "fleet_host") -> list[Alert]:
    """The alerts of a webhook body. Raises BadNotification for bad JSON, a version other than "4",
    or an alert missing what the receiver needs."""
    try:
        payload = json.loads(body)
    except RecursionError:
        raise BadNotification("body is nested too deeply") from None
    except ValueError as exc:  # not UTF-8, not JSON, or an integer over Python's 4300 digits
        raise BadNotification(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadNotification("body must be a JSON object")
    if payload.get("version") != "4":
        raise BadNotification(f"version must be \"4\", got {payload.get('version')!r}")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise BadNotification("alerts must be a list")
    if len(alerts) > MAX_ALERTS:
        raise BadNotification(f"alerts holds {len(alerts)} alerts, more than {MAX_ALERTS}")
    return [parse_alert(raw, index, host_label) for index, raw in enumerate(alerts)]


_FRACTION_RE = re.compile(r"\.(\d+)")


def parse_time(value: str, where: str = "time") -> datetime:
    """An RFC 3339 time as Alertmanager writes it (nanoseconds allowed) -> aware datetime."""
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    text = _FRACTION_RE.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadNotification(f"{where} is not an RFC 3339 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise BadNotification(f"{where} has no time zone: {value!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        raise BadNotification(f"{where} is out of range in UTC: {value!r}") from None


def time_to_recover(alert: Alert) -> float | None:
    """Seconds from the alert's start to its end, for a resolved alert with both times."""
    if alert.status != "resolved" or not alert.ends_at:
        return None
    try:
        seconds = (parse_time(alert.ends_at) - parse_time(alert.starts_at)).total_seconds()
    except BadNotification:
        return None
    return seconds if seconds >= 0 else None
