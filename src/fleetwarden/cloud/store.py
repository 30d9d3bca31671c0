"""The stand-in's state on disk: one JSON file written atomically after each change, and its two tokens."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from ansible_collections.fleetwarden.fleet.plugins.module_utils._lab_credentials import LAB_TOKEN_PREFIX

STATE_VERSION = 1
API_TOKEN_FILE = "api-token"  # noqa: S105 - a file name
ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 - a file name
ENDPOINT_FILE = "endpoint"


def empty_state() -> dict:
    return {
        "version": STATE_VERSION,
        "next_id": 1000,
        "nodes": {},  # TPU node name -> Node body
        "node_hosts": {},  # TPU node name -> backend host names, one per worker
        "queued": {},  # queued resource name -> QueuedResource body
        "instances": {},  # projects/P/zones/Z/instances/I -> Instance body
        "host_keys": {},  # backend host name -> {"ssh-ed25519": blob, ...}
        "operations": {},  # operation name -> {"api", "body", "work"}
        "stockouts": [],  # [{"zone", "name", "remaining"}]
        "api_errors": [],  # [{"project", "status", "remaining"}]
        "fault_log": [],
    }


class Store:
    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir)
        self.path = self.dir / "state.json"

    def load(self) -> dict:
        if not self.path.exists():
            return empty_state()
        data = json.loads(self.path.read_text())
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"{self.path} has state version {data.get('version')}, not {STATE_VERSION}")
        return {**empty_state(), **data}

    def save(self, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, separators=(",", ":")))
        os.replace(tmp, self.path)


def _token(path: Path, infix: str) -> str:
    if path.exists():
        return path.read_text().strip()
    token = f"{LAB_TOKEN_PREFIX}{infix}{secrets.token_urlsafe(32)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def ensure_tokens(state_dir: Path) -> tuple[str, str]:
    """(API token, admin token), made once per state dir (files of mode 0600) and kept across restarts."""
    Path(state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    return _token(Path(state_dir) / API_TOKEN_FILE, ""), _token(Path(state_dir) / ADMIN_TOKEN_FILE, "admin-")
