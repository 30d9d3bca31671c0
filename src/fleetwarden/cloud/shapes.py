"""Pure pieces of the stand-in: resource names, page tokens, error bodies, the compute list filter, fault targets.

Every body here has the shape the real API gives (tests/unit/cloud checks them against the discovery documents).
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime

COMPUTE_BASE = "https://www.googleapis.com/compute/v1/"
TPU_TYPE = "type.googleapis.com/google.cloud.tpu.v2."
# Zones the stand-in offers (locations.list); a resource may be created in any other valid zone too.
TPU_ZONES = ("us-central1-a", "us-central2-b", "europe-west4-a", "us-east5-a", "us-west4-a")
NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
ZONE_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
PROJECT_RE = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
# The lab's label vocabulary (inventory/sample reads the same keys): the Ray role, and which host monitors.
ROLE_LABEL = "ray-role"
MAX_PAGE_SIZE = {"tpu": 1000, "compute": 500}


class ApiError(Exception):
    """An error answer: HTTP status, google.rpc status name, message (and compute's reason)."""

    def __init__(self, code: int, status: str, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.message, self.reason = code, status, message, reason

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message, "status": self.status}
        if self.reason:
            error["errors"] = [{"message": self.message, "domain": "global", "reason": self.reason}]
        return {"error": error}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message, "invalid")


def not_found(what: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"The resource '{what}' was not found", "notFound")


def parts(name: str) -> tuple[str, str, str]:
    """(project, zone, id) of `projects/P/locations|zones/Z/<collection>/ID`."""
    items = name.split("/")
    return items[1], items[3], items[5]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise bad_request(f"Invalid value for field '{kind}': '{value}'. Must be a match of regex '{NAME_RE.pattern}'")
    return value


def check_zone(zone: str) -> str:
    if not ZONE_RE.match(zone or ""):
        raise bad_request(f"Invalid value for field 'zone': '{zone}'")
    return zone


def check_project(project: str) -> str:
    if not PROJECT_RE.match(project or ""):
        raise bad_request(f"Invalid value for field 'project': '{project}'")
    return project


# ---------------------------------------------------------------------------------------------
# Paging: an opaque token for the offset, as the real APIs' tokens are opaque
# ---------------------------------------------------------------------------------------------


def page(items: list, page_size, page_token, api: str) -> tuple[list, str | None]:
    """(this page, the next page's token or None)."""
    limit = MAX_PAGE_SIZE[api]
    try:
        size = int(page_size) if page_size not in (None, "") else limit
    except (TypeError, ValueError):
        raise bad_request(f"Invalid value for field 'pageSize': '{page_size}'") from None
    if size < 0:
        raise bad_request(f"Invalid value for field 'pageSize': '{page_size}'")
    size = min(size or limit, limit)
    offset = 0
    if page_token:
        try:
            offset = int(json.loads(base64.urlsafe_b64decode(page_token.encode() + b"==").decode())["o"])
        except (ValueError, KeyError, TypeError, UnicodeError):
            raise bad_request("The page token is invalid") from None
        if not 0 <= offset <= len(items):
            raise bad_request("The page token is invalid")
    chunk = items[offset : offset + size]
    more = offset + size < len(items)
    token = base64.urlsafe_b64encode(json.dumps({"o": offset + size}).encode()).decode().rstrip("=") if more else None
    return chunk, token


# ---------------------------------------------------------------------------------------------
# The compute list filter: `field = value` / `field != value` terms, ANDed (what the project's configs send)
# ---------------------------------------------------------------------------------------------

FILTER_TERM = re.compile(r'^\(?\s*([a-zA-Z][\w.-]*)\s*(=|!=|eq|ne)\s*"?([^"()]*?)"?\s*\)?$')


def parse_filter(text: str | None) -> list[tuple[str, str, str]]:
    """[(field path, operator, value)] from a filter such as `labels.fleet = ray AND status != TERMINATED`."""
    if not text or not text.strip():
        return []
    terms = []
    for part in re.split(r"\s+AND\s+", text.strip()):
        match = FILTER_TERM.match(part.strip())
        if not match:
            raise bad_request(f"Invalid value for field 'filter': '{text}'. Invalid list filter expression.")
        field, operator, value = match.groups()
        terms.append((field, "=" if operator in ("=", "eq") else "!=", value.strip()))
    return terms


def matches(resource: dict, terms: list[tuple[str, str, str]]) -> bool:
    for field, operator, value in terms:
        current = resource
        for key in field.split("."):
            current = current.get(key) if isinstance(current, dict) else None
        actual = "" if current is None else str(current).lower() if isinstance(current, bool) else str(current)
        if (actual == value) != (operator == "="):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Fault targets: an inventory host name means a node (a slice's worker means the slice) or an instance
# ---------------------------------------------------------------------------------------------


def host_names(name: str, zone: str, project: str, workers: int) -> list[str]:
    """Every inventory hostname the Google plugins' name schemes give a node's workers or an instance; a slice
    also answers to its node's own name."""
    bases = [name] if workers <= 1 else [name, *(f"{name}-w{index}" for index in range(workers))]
    return [variant for base in bases for variant in (base, f"{base}.{zone}", f"{base}.{project}",
                                                       f"{base}.{zone}.{project}")]


def resolve_target(target: str, nodes: dict, instances: dict, workers) -> tuple[str, str]:
    """("node", node name) or ("instance", instance path) for an inventory host; ApiError 404 naming the hosts."""
    found = []
    for name, node in nodes.items():
        project, zone, node_id = parts(name)
        if target == name or target in host_names(node_id, zone, project, workers(node)):
            found.append(("node", name))
    for path in instances:
        project, zone, instance = parts(path)
        if target == path or target in host_names(instance, zone, project, 1):
            found.append(("instance", path))
    if len(found) != 1:
        known = sorted(n.split("/")[-1] for n in [*nodes, *instances])
        what = "no" if not found else "more than one"
        raise ApiError(404, "NOT_FOUND", f"{what} TPU node or instance has the host name {target!r}; "
                       f"resources: {', '.join(known) or 'none'}")
    return found[0]
