"""Hostile input over real HTTP, raw bytes on a socket: each poison gets a 4xx naming the field and a bounded,
escaped row; the writer survives a failing notification; connections are bounded."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from fleetwarden.receiver import audit
from fleetwarden.receiver.server import WEBHOOK_PATH

from .conftest import alert, db_rows, notification, post, wait_for

POISON = {"status": "firing", "labels": {"alertname": "A", "fleet_host": "fw-ok-1", "remediate": "true"},
          "fingerprint": "\ud800", "startsAt": "2026-12-07T10:00:00Z"}


def raw_request(port: int, head: bytes, body: bytes = b"", timeout: float = 5, source: str = "127.0.0.1"):
    """(status, JSON body or raw text, seconds) of one request sent as raw bytes; Connection: close."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    elapsed = time.monotonic() - started
    status_line, _, rest = answer.partition(b"\r\n")
    body_bytes = rest.partition(b"\r\n\r\n")[2]
    try:
        document = json.loads(body_bytes)
    except ValueError:
        document = body_bytes
    return int(status_line.split()[1]), document, elapsed


def refusal(port: int, source: str) -> str:
    """The error of the 503 a refused connection gets as soon as it is made (before it sends anything)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as sock:
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    return json.loads(answer.partition(b"\r\n\r\n")[2])["error"]


def webhook_head(body: bytes, auth: bytes, extra: bytes = b"") -> bytes:
    return (b"POST " + WEBHOOK_PATH.encode() + b" HTTP/1.1\r\nHost: receiver\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nAuthorization: " + auth + b"\r\n"
            + b"Content-Length: %d\r\n" % len(body) + extra + b"\r\n")


def poisoned(**changes) -> bytes:
    raw = {**POISON, "fingerprint": "fp", **changes}
    return json.dumps({"version": "4", "alerts": [raw]}).encode()  # ensure_ascii: a lone surrogate as \ud800


CASES = {
    "surrogate fingerprint": (poisoned(fingerprint="\ud800"), "alerts[0].fingerprint is not valid Unicode"),
    "surrogate host": (poisoned(labels={**POISON["labels"], "fleet_host": "w\udfff"}), "alerts[0].labels.fleet_host"),
    "surrogate alertname": (poisoned(labels={**POISON["labels"], "alertname": "\ud800"}), "alerts[0].labels.alertname"),
    "surrogate startsAt": (poisoned(startsAt="2026\ud800"), "alerts[0].startsAt is not valid Unicode"),
    "endsAt overflows": (poisoned(status="resolved", endsAt="9999-12-31T23:59:59-01:00"),
                         "alerts[0].endsAt is out of range in UTC"),
    "year 1 with an offset": (poisoned(startsAt="0001-01-01T00:00:00+01:00"), "alerts[0].startsAt is out of range"),
    "deep JSON": (b"[" * 100000 + b"]" * 100000, "body is nested too deeply"),
    "huge integer": (b'{"version": "4", "alerts": [], "n": ' + b"7" * 5000 + b"}", "body is not JSON: Exceeds"),
    "huge fingerprint": (poisoned(fingerprint="f" * 100000), "alerts[0].fingerprint is longer than 128"),
}


@pytest.mark.parametrize("case", CASES)
def test_poison_gets_a_4xx_naming_the_field_and_a_bounded_row(live, project, case):
    body, expected = CASES[case]
    receiver = live()
    status, answer, elapsed = raw_request(receiver.port, webhook_head(body, b"Bearer " + project["token"].encode()),
                                          body)
    assert status == 400 and answer["error"].startswith(expected) and elapsed < 1, (status, answer)
    [row] = db_rows(receiver.settings, "SELECT kind, reason FROM decisions")
    assert row["kind"] == "bad_request" and row["reason"].startswith(expected)
    assert len(row["reason"]) <= audit.REASON_CHARS
    # The receiver still serves: the writer is alive.
    status, answer = post(receiver.url, notification(alert("fw-ok-1")), project["token"])
    assert status == 202 and answer["decisions"][0]["decision"] == "started"


def test_non_utf8_authorization_is_a_401(live):
    receiver = live()
    status, answer, _ = raw_request(receiver.port, webhook_head(b"{}", b"Bearer \xff\xfe\x80"), b"{}")
    assert (status, answer["decision"]) == (401, "unauthorized")
    assert [r["kind"] for r in db_rows(receiver.settings, "SELECT kind FROM decisions")] == ["unauthorized"]


def test_oversized_header_gets_our_431_with_a_row_and_no_echo(live, project):
    receiver = live()
    secret_looking = b"S3CRET" * 2000
    status, answer, _ = raw_request(receiver.port, webhook_head(b"{}", b"Bearer x", b"X-Big: " + secret_looking
                                                                + b"\r\n"), b"{}")
    assert status == 431 and "longer than 8190 bytes" in answer["error"]
    assert b"S3CRET" not in json.dumps(answer).encode()
    rows = wait_for(lambda: db_rows(receiver.settings, "SELECT kind, reason FROM decisions"), timeout=10)
    assert rows == [{"kind": "bad_request", "reason": "a request header or line is longer than 8190 bytes"}]


def test_control_characters_and_long_values_are_escaped_and_cut_in_rows(live, project):
    receiver = live()
    evil = "x\n2026-01-01 started fw-ok-2\x1b[31m" + "y" * 5000
    body = notification(alert("fw-ok-1", alertname=evil[:3000], summary="\x07bell", fingerprint="fp-evil"))
    status, _ = post(receiver.url, body, project["token"])
    assert status == 202
    [row] = db_rows(receiver.settings, "SELECT alertname, labels FROM decisions")
    assert "\n" not in row["alertname"] and "\x1b" not in row["alertname"] and "\\x0a" in row["alertname"]
    assert len(row["alertname"]) <= audit.FIELD_CHARS and row["alertname"].endswith("more]")
    assert len(row["labels"]) <= audit.LABELS_CHARS and "\x07" not in row["labels"]


def test_a_failing_notification_fails_alone_and_the_writer_lives(live, project):
    receiver = live()
    store = receiver.receiver.store
    real = store.record_batch

    def record_batch(notifications, *args):  # a defect the parser does not catch, for one notification
        if any(a.fingerprint == "boom" for alerts, _ in notifications for a in alerts):
            raise OverflowError("date value out of range")
        return real(notifications, *args)

    store.record_batch = record_batch
    answers = {}

    def send(name, body):
        answers[name] = post(receiver.url, body, project["token"])

    threads = [threading.Thread(target=send, args=(f"ok-{i}", notification(alert(f"fw-ok-{i}"))))
               for i in range(1, 4)]
    threads.append(threading.Thread(target=send, args=("boom", notification(alert("fw-ok-4", fingerprint="boom")))))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert answers["boom"][0] == 400 and "could not be recorded (OverflowError)" in answers["boom"][1]["error"]
    assert all(answers[f"ok-{i}"][0] == 202 for i in range(1, 4))
    rows = db_rows(receiver.settings, "SELECT kind, fingerprint FROM decisions ORDER BY id")
    assert sorted(r["fingerprint"] or "" for r in rows if r["kind"] != "bad_request") == [
        "fp-RayWorkerDown-fw-ok-1", "fp-RayWorkerDown-fw-ok-2", "fp-RayWorkerDown-fw-ok-3"]
    status, _ = post(receiver.url, notification(alert("fw-ok-5")), project["token"])
    assert status == 202


def test_healthz_fails_while_writes_fail(live, project):
    receiver = live()
    receiver.receiver.store.db.execute("PRAGMA query_only=ON")
    assert post(receiver.url, notification(alert("fw-ok-1")), project["token"])[0] == 503
    status, answer, _ = raw_request(receiver.port, b"GET /healthz HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
    assert status == 503 and answer["status"] == "audit store not writable"
    receiver.receiver.store.db.execute("PRAGMA query_only=OFF")
    assert post(receiver.url, notification(alert("fw-ok-1")), project["token"])[0] == 202
    assert raw_request(receiver.port, b"GET /healthz HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")[0] == 200


def test_a_head_that_never_finishes_is_closed(live):
    receiver = live(header_timeout_s=1)
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/alertmanager HTTP/1.1\r\nHost: r\r\nX-Slow: ")
        started = time.monotonic()
        assert sock.recv(100) == b""  # closed by the receiver
        assert time.monotonic() - started < 5
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock:  # idle, nothing sent
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert time.monotonic() - started < 5


def test_two_thousand_idle_connections_from_one_peer_do_not_delay_a_notification(live, project):
    receiver = live()
    held: list[socket.socket] = []
    try:
        for _ in range(2000):  # from 127.0.0.2, a fleet host's address that is not Alertmanager's
            sock = socket.create_connection(("127.0.0.1", receiver.port), timeout=5, source_address=("127.0.0.2", 0))
            held.append(sock)
        started = time.monotonic()
        status, answer = post(receiver.url, notification(alert("fw-ok-1")), project["token"])
        elapsed = time.monotonic() - started
        assert status == 202 and answer["decisions"][0]["decision"] == "started"
        assert elapsed < 1, elapsed
        # Past the per-peer cap, a connection is told why and closed.
        assert refusal(receiver.port, "127.0.0.2") == "more than 32 connections open from this address"
        assert receiver.receiver.runner_guard.open["127.0.0.2"] == receiver.settings.max_connections_per_peer
    finally:
        for sock in held:
            sock.close()


def test_total_connection_cap(live):
    receiver = live(max_connections=3)
    held = [socket.create_connection(("127.0.0.1", receiver.port), timeout=5, source_address=(f"127.0.0.{i}", 0))
            for i in (2, 3, 4)]
    try:
        assert refusal(receiver.port, "127.0.0.1") == "more than 3 connections open"
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: raw_request(receiver.port, b"GET /healthz HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")[0]
             == 200, timeout=10)


def test_log_lines_are_rate_limited_per_kind():
    import logging

    from fleetwarden.receiver.guard import RateLimitFilter

    now = [0.0]
    limiter = RateLimitFilter(per_minute=3, clock=lambda: now[0])

    def record(msg):
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, None)

    assert [limiter.filter(record("socket.accept() out of system resource")) for _ in range(5)] == [
        True, True, True, False, False]
    assert limiter.filter(record("another message"))
    now[0] = 61
    first = record("socket.accept() out of system resource")
    assert limiter.filter(first) and "(2 similar messages dropped in the last minute)" in first.getMessage()
