"""Alertmanager silences for hosts in maintenance (API v2), so that people are not paged for the work they do.

One silence per host, matching the host label exactly; it ends by itself at the end of the window, and
`maintenance end` expires it sooner.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request


class SilenceError(RuntimeError):
    """Alertmanager did not take the silence; the message says what it answered."""


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def silence_body(host_label: str, host: str, starts: float, ends: float, who: str, reason: str) -> dict:
    return {"matchers": [{"name": host_label, "value": host, "isRegex": False, "isEqual": True}],
            "startsAt": _iso(starts), "endsAt": _iso(ends), "createdBy": who,
            "comment": f"fleetwarden receiver maintenance: {reason}"}


def _call(method: str, url: str, body: dict | None, timeout: float) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise SilenceError(f"not an http(s) URL: {url!r}")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,  # noqa: S310 - http(s) only, checked above
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
            return response.read()
    except OSError as exc:  # URLError, HTTPError, timeouts
        raise SilenceError(f"{method} {url}: {exc}") from None


def add_silence(base_url: str, host_label: str, host: str, starts: float, ends: float, who: str, reason: str,
                timeout: float = 10) -> str:
    """The new silence's id."""
    answer = _call("POST", base_url.rstrip("/") + "/api/v2/silences",
                   silence_body(host_label, host, starts, ends, who, reason), timeout)
    try:
        return str(json.loads(answer)["silenceID"])
    except (ValueError, KeyError, TypeError):
        raise SilenceError(f"Alertmanager answered without a silenceID: {answer[:200]!r}") from None


def expire_silence(base_url: str, silence_id: str, timeout: float = 10) -> None:
    _call("DELETE", base_url.rstrip("/") + "/api/v2/silence/" + urllib.parse.quote(silence_id, safe=""), None,
          timeout)
