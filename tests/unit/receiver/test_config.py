"""Settings: defaults documented in docs/receiver.md, bad values named, the token file private."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from fleetwarden.receiver import config

DOC = Path(__file__).resolve().parents[3] / "docs" / "receiver.md"
REQUIRED = {"token_file": "t", "state_dir": "s", "playbook": "p.yml", "inventory": "i.yml"}


def documented_defaults() -> dict:
    section = DOC.read_text().split("\n## Settings", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_.]+)` \| `?([^|`]*)`? \|", section, re.M)
    return {name: value for name, value in rows}


def test_every_setting_and_limit_is_documented_with_its_default():
    documented = documented_defaults()
    settings = config.from_mapping(REQUIRED, Path("/base"))
    expected = {}
    for item in dataclasses.fields(config.Settings):
        if item.name in REQUIRED or item.name == "limits":
            continue
        expected[item.name] = getattr(settings, item.name)
    for item in dataclasses.fields(config.Limits):
        expected[f"limits.{item.name}"] = getattr(settings.limits, item.name)
    assert set(documented) == set(expected)
    for name, value in expected.items():
        if name == "project_dir":
            assert documented[name] == "the playbook's folder"
            continue
        shown = {True: "true", False: "false"}.get(value, value) if isinstance(value, bool) else value
        shown = "{}" if value == {} else ('""' if value == "" else str(shown))
        assert documented[name] == shown, name


def test_paths_resolve_against_the_settings_file(tmp_path):
    path = tmp_path / "receiver.yml"
    path.write_text("token_file: token\nstate_dir: /var/lib/fw\nplaybook: p/recover.yml\ninventory: inv\n"
                    "limits: {max_attempts: 5}\nextravars: {recover_serial: 1}\n")
    settings = config.load(path)
    assert settings.token_file == tmp_path / "token" and settings.state_dir == Path("/var/lib/fw")
    assert settings.run_cwd == tmp_path / "p" and settings.limits.max_attempts == 5
    assert settings.extravars == {"recover_serial": 1}


@pytest.mark.parametrize(("extra", "message"), [
    ({"port": 70000}, "port must be between 1 and 65535"),
    ({"port": "9097"}, "port must be a whole number"),
    ({"listen_address": "example"}, "listen_address must be an IP address"),
    ({"dry_run": "yes"}, "dry_run must be true or false"),
    ({"colour": 1}, "unknown setting 'colour'"),
    ({"limits": {"breaker_percent": 0}}, "breaker_percent must be between 1 and 100"),
    ({"limits": {"cooldown": 5}}, "unknown setting limits.cooldown"),
    ({"extravars": {"target": "all"}}, "extravars.target is set per run"),
    ({"notify_url": "file:///etc/passwd"}, "notify_url must be an http"),
    ({"playbook": None}, "playbook is required"),
])
def test_bad_settings_name_the_field(extra, message):
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.from_mapping({**REQUIRED, **extra}, Path("/base"))


def test_token_file_must_be_private_and_long_enough(tmp_path):
    token = tmp_path / "token"
    token.write_text("a" * 32 + "\n")
    token.chmod(0o644)
    with pytest.raises(config.ConfigError, match="mode 0600"):
        config.read_token(token)
    token.chmod(0o600)
    assert config.read_token(token) == "a" * 32
    token.write_text("short")
    with pytest.raises(config.ConfigError, match="at least 16"):
        config.read_token(token)
    with pytest.raises(config.ConfigError, match="token_file"):
        config.read_token(tmp_path / "missing")


def test_the_role_serves_the_default_port_and_pins_what_the_tests_ran():
    from importlib.metadata import version

    import yaml

    defaults = yaml.safe_load((DOC.parents[1] / "roles/recovery_receiver/defaults/main.yml").read_text())
    assert defaults["recovery_receiver_port"] == config.DEFAULT_PORT == config.Settings.__dataclass_fields__[
        "port"].default
    pins = dict(p.split("==") for p in defaults["recovery_receiver_python_packages"])
    for name in ("ansible-core", "ansible-runner", "aiohttp", "prometheus-client"):
        assert pins[name] == version(name), name
