"""Receiver settings: one YAML file, every key optional but the paths, each checked by name.

The defaults and the reason for each are in docs/receiver.md; keep the two in step
(tests/unit/receiver/test_config.py reads the table there).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEFAULT_PORT = 9097
MIB = 1024 * 1024


class ConfigError(ValueError):
    """Bad receiver settings; the message names the field."""


@dataclass(frozen=True)
class Limits:
    """What the decision engine allows. Times in seconds, shares in percent of inventory hosts."""

    cooldown_success_s: int = 600
    cooldown_failure_s: int = 300
    max_attempts: int = 3
    attempts_window_s: int = 3600
    max_concurrent_runs: int = 4
    budget_percent: int = 20
    budget_window_s: int = 3600
    breaker_percent: int = 50
    breaker_window_s: int = 300
    breaker_min_hosts: int = 2


@dataclass(frozen=True)
class Settings:
    """Everything `fleetwarden receiver serve` needs. Paths are absolute after load()."""

    token_file: Path
    state_dir: Path
    playbook: Path
    inventory: Path
    project_dir: Path | None = None  # the run's working directory (where ansible.cfg is); default: playbook's
    listen_address: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_body_bytes: int = MIB
    read_timeout_s: int = 5
    header_timeout_s: int = 10  # a connection without a complete request head this long after it opened or
    # after its last answer is closed: idle keep-alive connections and heads that never finish alike
    max_connections: int = 512
    max_connections_per_peer: int = 32
    dry_run: bool = False
    host_label: str = "fleet_host"
    extravars: dict = field(default_factory=dict)  # static extravars for every run; `target` is set per run
    job_timeout_s: int = 900
    idle_timeout_s: int = 300
    run_nice: int = 10
    keep_runs: int = 200
    keep_days: int = 14
    audit_keep_days: int = 90
    audit_max_mib: int = 256  # past it, the oldest audit rows go
    notify_url: str = ""  # an Alertmanager base URL for alerts to a person (breaker, quarantine); "" = metrics only
    notify_interval_s: int = 60
    alertmanager_url: str = ""  # where maintenance adds its silences; "" = notify_url
    limits: Limits = field(default_factory=Limits)

    @property
    def run_cwd(self) -> Path:
        return self.project_dir or self.playbook.parent

    @property
    def silence_url(self) -> str:
        """The Alertmanager that gets maintenance silences ("" = none)."""
        return self.alertmanager_url or self.notify_url

    @property
    def db_path(self) -> Path:
        return self.state_dir / "receiver.sqlite3"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"


_PATHS = ("token_file", "state_dir", "playbook", "inventory", "project_dir")
_INTS = {
    "port": (1, 65535), "max_body_bytes": (1024, 64 * MIB), "read_timeout_s": (1, 300), "header_timeout_s": (1, 300),
    "max_connections": (1, 60000), "max_connections_per_peer": (1, 60000),
    "job_timeout_s": (10, 86400), "idle_timeout_s": (5, 86400), "run_nice": (0, 19), "keep_runs": (1, 100000),
    "keep_days": (1, 3650), "audit_keep_days": (1, 36500), "audit_max_mib": (1, 1024 * 1024),
    "notify_interval_s": (5, 86400),
    "cooldown_success_s": (0, 86400), "cooldown_failure_s": (0, 86400), "max_attempts": (1, 1000),
    "attempts_window_s": (60, 7 * 86400), "max_concurrent_runs": (1, 256), "budget_percent": (1, 100),
    "budget_window_s": (60, 7 * 86400), "breaker_percent": (1, 100), "breaker_window_s": (10, 86400),
    "breaker_min_hosts": (1, 100000),
}
_RESERVED_EXTRAVARS = ("target",)


def _check_int(name: str, value) -> int:
    low, high = _INTS[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _check_keys(data: dict) -> dict:
    """Unknown settings refused; returns the `limits` mapping."""
    known = {f.name for f in dataclasses.fields(Settings)} - {"limits"}
    unknown = sorted(set(data) - known - {"limits"})
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}")
    limits_data = data.get("limits") or {}
    if not isinstance(limits_data, dict):
        raise ConfigError("limits must be a mapping")
    unknown = sorted(set(limits_data) - {f.name for f in dataclasses.fields(Limits)})
    if unknown:
        raise ConfigError(f"unknown setting limits.{unknown[0]}")
    for name in ("token_file", "state_dir", "playbook", "inventory"):
        if not data.get(name):
            raise ConfigError(f"{name} is required")
    return limits_data


def _paths_and_ints(data: dict, base_dir: Path) -> dict:
    values = {}
    for name in _PATHS:
        if data.get(name) is not None:
            if not isinstance(data[name], str):
                raise ConfigError(f"{name} must be a path, got {data[name]!r}")
            values[name] = (base_dir / data[name]).resolve()
    for name, value in data.items():
        if name in _INTS:
            values[name] = _check_int(name, value)
    return values


def _scalars(data: dict) -> dict:
    """listen_address, dry_run, host_label and the Alertmanager URLs, each checked."""
    values: dict = {}
    if "listen_address" in data:
        try:
            ipaddress.ip_address(str(data["listen_address"]))
        except ValueError:
            raise ConfigError(f"listen_address must be an IP address, got {data['listen_address']!r}") from None
        values["listen_address"] = str(data["listen_address"])
    if "dry_run" in data:
        if not isinstance(data["dry_run"], bool):
            raise ConfigError(f"dry_run must be true or false, got {data['dry_run']!r}")
        values["dry_run"] = data["dry_run"]
    for name in ("host_label", "notify_url", "alertmanager_url"):
        if name in data:
            if not isinstance(data[name], str):
                raise ConfigError(f"{name} must be a string, got {data[name]!r}")
            values[name] = data[name]
    for name in ("notify_url", "alertmanager_url"):
        if values.get(name) and not values[name].startswith(("http://", "https://")):
            raise ConfigError(f"{name} must be an http(s) URL, got {values[name]!r}")
    if not values.get("host_label", "fleet_host"):
        raise ConfigError("host_label must not be empty")
    return values


def _extravars(data: dict) -> dict:
    extravars = data.get("extravars") or {}
    if not isinstance(extravars, dict) or not all(isinstance(k, str) for k in extravars):
        raise ConfigError("extravars must be a mapping of names to values")
    for name in _RESERVED_EXTRAVARS:
        if name in extravars:
            raise ConfigError(f"extravars.{name} is set per run by the receiver; remove it")
    return dict(extravars)


def from_mapping(data: dict, base_dir: Path) -> Settings:
    """Settings from parsed YAML; relative paths are relative to `base_dir` (the settings file's folder)."""
    if not isinstance(data, dict):
        raise ConfigError("the settings file must hold a mapping")
    limits_data = _check_keys(data)
    values = {**_paths_and_ints(data, base_dir), **_scalars(data), "extravars": _extravars(data)}
    values["limits"] = Limits(**{k: _check_int(k, v) for k, v in limits_data.items()})
    return Settings(**values)


def load(path: Path) -> Settings:
    """Read and check a settings file. Raises ConfigError naming the field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"settings file {path} is not valid YAML: {exc}") from None
    return from_mapping(data or {}, path.resolve().parent)


def check_paths(settings: Settings) -> None:
    """What `serve` needs on disk: a readable playbook and inventory, a private token file."""
    for name in ("playbook", "inventory"):
        if not getattr(settings, name).exists():
            raise ConfigError(f"{name} {getattr(settings, name)} does not exist")
    read_token(settings.token_file)


def read_token(path: Path) -> str:
    """The bearer token: the file's first line. Refused unless only its owner can read it (0600 or 0400)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"token_file {path}: {exc.strerror}") from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigError(f"token_file {path} must be readable by its owner only (mode 0600), "
                          f"it is {stat.S_IMODE(info.st_mode):04o}")
    token = Path(path).read_text(encoding="utf-8").strip()
    if len(token) < 16:
        raise ConfigError(f"token_file {path} must hold a token of at least 16 characters")
    return token
