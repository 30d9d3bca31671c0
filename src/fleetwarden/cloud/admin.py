"""The stand-in's admin client: `fleetwarden lab fault` injects a fault through /admin/v1/faults."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from fleetwarden.cloud.store import ADMIN_TOKEN_FILE, ENDPOINT_FILE
from fleetwarden.lab.docker_client import LabError

LOOPBACK_PREFIX = "http://127.0.0.1:"


def standin_url(state_dir: Path) -> str:
    path = Path(state_dir) / ENDPOINT_FILE
    if not path.exists():
        raise LabError(f"no cloud stand-in has run here ({path} is missing); start it with `fleetwarden lab cloud`")
    url = path.read_text().strip()
    if not url.startswith(LOOPBACK_PREFIX):
        raise LabError(f"{path} names {url!r}, not a loopback URL: the admin token goes to the stand-in only")
    return url


def inject(state_dir: Path, kind: str, target: str, count: int = 1, status: int = 503, timeout: float = 120) -> dict:
    """POST one fault; returns the stand-in's log record, or raises LabError with the stand-in's message."""
    url = standin_url(state_dir) + "/admin/v1/faults"
    token = (Path(state_dir) / ADMIN_TOKEN_FILE).read_text().strip()
    body = json.dumps({"kind": kind, "target": target, "count": count, "status": status}).encode()
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 - checked to be loopback http
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - checked to be loopback http
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise LabError(f"the cloud stand-in refused the fault: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise LabError(f"the cloud stand-in at {url} does not answer ({exc}); start it with `fleetwarden lab cloud`"
                       ) from None
