"""Connections, bounded: a cap per peer and in all (503 past it), a deadline for a request's head, and aiohttp's
own answer to a malformed or oversized request head replaced by a short one of ours, counted and recorded.

aiohttp has no hook for either, so the runner swaps in a Server whose protocol (RequestHandler) checks the cap
when a connection is made. `keepalive_timeout` is the deadline: aiohttp arms it when a connection is made and
after each answer, and closes the connection if no complete request head has arrived by then.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("fleetwarden.receiver")
# aiohttp's limit on one header line or field (its default, kept): past it the head is refused with 431.
MAX_HEADER_BYTES = 8190


def _raw_response(status: int, phrase: str, document: dict) -> bytes:
    body = json.dumps(document).encode()
    head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Retry-After: 5\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class ConnectionGuard:
    """Counts open connections per peer address; says which new ones are refused."""

    def __init__(self, max_total: int, max_per_peer: int, on_refusal: Callable[[str, str, int, str | None], None]):
        self.max_total = max_total
        self.max_per_peer = max_per_peer
        self.on_refusal = on_refusal  # (kind, reason, status, remote): counts and records a refused request
        self.open: Counter = Counter()
        self.total = 0
        self.refused = 0

    def admit(self, peer: str) -> str | None:
        """None and the connection counted, or why it is refused."""
        if self.total >= self.max_total:
            return f"more than {self.max_total} connections open"
        if self.open[peer] >= self.max_per_peer:
            return f"more than {self.max_per_peer} connections open from this address"
        self.open[peer] += 1
        self.total += 1
        return None

    def release(self, peer: str) -> None:
        self.total -= 1
        self.open[peer] -= 1
        if self.open[peer] <= 0:
            del self.open[peer]


class GuardedHandler(RequestHandler):
    def connection_made(self, transport) -> None:
        guard: ConnectionGuard = self._manager.guard
        peername = transport.get_extra_info("peername")
        self._guard_peer = peername[0] if isinstance(peername, tuple) else str(peername)
        why = guard.admit(self._guard_peer)
        self._guard_refused = why is not None
        if why is None:
            super().connection_made(transport)
            return
        guard.refused += 1
        transport.write(_raw_response(503, "Service Unavailable", {"error": why, "decision": "too_many_connections"}))
        transport.close()
        guard.on_refusal("too_many_connections", why, 503, self._guard_peer)

    def connection_lost(self, exc) -> None:
        if self._guard_refused:
            return
        self._manager.guard.release(self._guard_peer)
        super().connection_lost(exc)

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        # aiohttp's own answer quotes the offending line; ours names the problem only.
        if isinstance(exc, LineTooLong):
            status, reason = 431, f"a request header or line is longer than {MAX_HEADER_BYTES} bytes"
        else:
            status, reason = 400, f"malformed HTTP request ({type(exc).__name__})"
        self._manager.guard.on_refusal("bad_request", reason, status, self._guard_peer)
        response = web.json_response({"error": reason, "decision": "bad_request"}, status=status)
        response.force_close()
        return response


class GuardedServer(web.Server):
    guard: ConnectionGuard

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose connections pass the guard."""

    def __init__(self, app: web.Application, guard: ConnectionGuard, **kwargs):
        super().__init__(app, **kwargs)
        self.guard = guard

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = GuardedServer  # same state, our protocol class (aiohttp offers no factory hook)
        server.guard = self.guard
        return server


class RateLimitFilter(logging.Filter):
    """At most `per_minute` records per (logger, message template) a minute; the next one let through says
    how many were dropped. A flood of one error (EMFILE, a client's garbage) cannot fill the journal."""

    def __init__(self, per_minute: int = 10, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.per_minute = per_minute
        self.clock = clock
        self.windows: dict[tuple, list] = {}  # key -> [window start, records let through, records dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        key = (record.name, str(record.msg)[:200])
        window = self.windows.get(key)
        if window is None or now - window[0] >= 60:
            dropped = window[2] if window else 0
            if len(self.windows) > 1000:  # bounded too
                self.windows.clear()
            window = self.windows[key] = [now, 0, 0]
            if dropped:
                record.msg = f"{record.msg} ({dropped} similar messages dropped in the last minute)"
        if window[1] >= self.per_minute:
            window[2] += 1
            return False
        window[1] += 1
        return True
