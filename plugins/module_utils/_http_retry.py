# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""The HTTP retry policy of every cloud client in the collection, in one place; no third-party imports.

Used by module_utils/_gcp.py (the Google inventories and tpu_node) and by the runpod inventory, which
must not pay for importing the Google client libraries.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random
from urllib.parse import urlsplit

RETRYABLE_STATUS = frozenset((429, 500, 502, 503, 504))
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
BACKOFF_CAP = 32.0
RETRY_AFTER_CAP = 60.0


def backoff_delay(attempt, base=1.0, cap=BACKOFF_CAP, rand=random.random):
    """Exponential backoff with jitter: between half and all of min(cap, base * 2**attempt)."""
    ceiling = min(cap, base * (2**attempt))
    return ceiling / 2 + rand() * ceiling / 2


def retry_after_seconds(headers, cap=RETRY_AFTER_CAP):
    """The server's Retry-After in seconds (bounded), or None when absent or not a number."""
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return min(max(seconds, 0.0), cap)


def endpoint_problem(url):
    """Why a URL must not receive a bearer token, or None: only https, or plain http to this machine."""
    parts = urlsplit(url or "")
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return None
    return "endpoint must be an https:// URL (plain http only to a loopback address), got %r" % url
