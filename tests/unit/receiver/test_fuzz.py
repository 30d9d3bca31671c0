"""Property-based fuzzing of a real receiver on loopback (hypothesis): random and adversarial notifications and
headers, as raw bytes. Every request is answered within 1 s, with a 2xx or a 4xx; every 2xx's rows exist; a
normal notification is served afterwards.

It runs for FLEETWARDEN_RECEIVER_FUZZ_S seconds (120 by default, as in CI; set it lower to run it short), and
prints how many requests it sent and its longest answer.
"""

from __future__ import annotations

import json
import os
import socket
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetwarden.receiver.server import WEBHOOK_PATH

from .conftest import HOSTS, alert, db_rows, notification, post

DURATION_S = float(os.environ.get("FLEETWARDEN_RECEIVER_FUZZ_S", "120"))
ANSWER_WITHIN_S = 1.0

POISON_TEXT = ["\ud800", "\udfff", "a\x00b", "\x1b[31m", "x\nforged line", "\u202e", "{{ lookup('pipe', 'id') }}",
               "a" * 5000, "../../etc/passwd", "", " ", "\ufeff"]
TIMES = ["2026-12-07T10:00:00Z", "2026-12-07T10:00:00.123456789Z", "0001-01-01T00:00:00Z",
         "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-13-45T99:99:99Z", "2026-12-07T10:00:00",
         "\ud800", "now", "2026-12-07T10:00:00+25:00"]

text = st.one_of(st.text(max_size=30), st.text(st.characters(codec=None, exclude_categories=()), max_size=10),
                 st.sampled_from(POISON_TEXT))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text,
                    st.integers(min_value=10 ** 300, max_value=10 ** 320))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                      max_leaves=6)
hosts = st.one_of(st.sampled_from(sorted(HOSTS)), text)
labels = st.one_of(
    st.fixed_dictionaries({"alertname": st.sampled_from(["RayWorkerDown", "MountLost"]) | text,
                           "fleet_host": hosts, "remediate": st.sampled_from(["true", "false"]) | text},
                          optional={"instance": text, "severity": text}),
    st.dictionaries(text, text, max_size=4), values)
alerts = st.fixed_dictionaries(
    {"status": st.sampled_from(["firing", "resolved"]) | values, "labels": labels,
     "fingerprint": st.text("0123456789abcdef", min_size=1, max_size=16) | values,
     "startsAt": st.sampled_from(TIMES) | values},
    optional={"endsAt": st.sampled_from(TIMES) | values, "annotations": values})
notifications = st.builds(lambda a, v: json.dumps({"version": v, "alerts": a}).encode(), st.lists(alerts, max_size=4),
                          st.just("4") | values)
good_alerts = st.builds(lambda host, fp, starts: alert(host, fingerprint=fp, starts_at=starts), hosts,
                        st.text("0123456789abcdef", min_size=1, max_size=16), st.sampled_from(TIMES))
bodies = st.one_of(
    notifications, notifications,
    st.lists(good_alerts | alerts, min_size=1, max_size=5).map(lambda a: json.dumps(notification(*a)).encode()),
    st.lists(good_alerts, min_size=1, max_size=5).map(lambda a: json.dumps(notification(*a)).encode()),
    st.binary(max_size=200),
    st.integers(1, 200_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(4000, 6000).map(lambda digits: b'{"version": "4", "alerts": [], "n": ' + b"9" * digits + b"}"),
)
header_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def webhook_request(body: bytes, auth: bytes | None, extra: list[tuple[bytes, bytes]], length: str) -> bytes:
    head = [b"POST " + WEBHOOK_PATH.encode() + b" HTTP/1.1", b"Host: receiver", b"Connection: close",
            b"Content-Type: application/json"]
    if auth is not None:
        head.append(b"Authorization: " + auth)
    if length == "exact":
        head.append(b"Content-Length: %d" % len(body))
    elif length == "short":
        head.append(b"Content-Length: %d" % max(0, len(body) - 1))
    head += [name + b": " + value for name, value in extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def exchange(port: int, data: bytes) -> tuple[int, bytes, float]:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_S + 4) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the whole body went: the answer is still to be read
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    elapsed = time.monotonic() - started
    status_line = answer.partition(b"\r\n")[0]
    assert status_line.startswith(b"HTTP/1."), (status_line, answer[:200])
    return int(status_line.split()[1]), answer.partition(b"\r\n\r\n")[2], elapsed


def test_fuzz_notifications_and_headers(live, project):
    receiver = live(dry_run=True)
    token = project["token"].encode()
    stats = {"requests": 0, "longest": 0.0, "rows": [], "codes": {}}

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies,
           auth=st.one_of(st.just(b"Bearer " + token), st.just(b"bearer  " + token + b" "),
                          st.just(b"Bearer " + token), st.just(b"Bearer " + token), st.none(),
                          header_bytes.map(lambda b: b"Bearer " + b), st.just(b"Bearer \xff\xfe" + token)),
           extra=st.lists(st.tuples(st.sampled_from([b"X-A", b"Accept", b"X-Forwarded-For", b"Content-Encoding"]),
                                    header_bytes), max_size=3)
           | st.integers(8000, 12000).map(lambda n: [(b"X-Long", b"h" * n)]),
           length=st.sampled_from(["exact", "exact", "exact", "short"]))
    def one_request(body, auth, extra, length):
        status, answer, elapsed = exchange(receiver.port, webhook_request(body, auth, extra, length))
        stats["requests"] += 1
        if elapsed > stats["longest"]:
            stats["longest"], stats["slowest"] = elapsed, (status, len(body), body[:60])
        stats["codes"][status] = stats["codes"].get(status, 0) + 1
        assert elapsed < ANSWER_WITHIN_S, (elapsed, status, body[:200])
        assert 200 <= status < 300 or 400 <= status < 500, (status, answer[:300], body[:200])
        if 200 <= status < 300:
            stats["rows"] += [decision["row"] for decision in json.loads(answer)["decisions"]]

    deadline = time.monotonic() + DURATION_S
    while time.monotonic() < deadline:
        one_request()

    recorded = {r["id"] for r in db_rows(receiver.settings, "SELECT id FROM decisions")}
    assert set(stats["rows"]) <= recorded
    status, answer = post(receiver.url, notification(alert("fw-ok-1", fingerprint="after-the-fuzz")),
                          project["token"])
    assert status == 202 and answer["decisions"][0]["row"] in {
        r["id"] for r in db_rows(receiver.settings, "SELECT id FROM decisions")}
    print(f"\nfuzz: {stats['requests']} requests in {DURATION_S:.0f} s, longest answer {stats['longest']:.3f} s, "
          f"{len(stats['rows'])} rows of 2xx answers, codes {dict(sorted(stats['codes'].items()))}; the longest: "
          f"{stats['slowest']}")
