"""Doctor checks on the controller: the site.yml preflight, declared secrets, the controller's key, versions.

The preflight is site.yml's, run in this process: each role's meta/argument_specs.yml against the host's
variables (ansible's own ArgumentSpecValidator, as validate_argument_spec uses it) and the fleet schema
(plugins/plugin_utils/_fleet_schema.py, as fleetwarden.fleet.fleet_config_check uses it).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

from .findings import Check

MIN_ANSIBLE = (2, 19)


def site_roles(project: Path) -> list[str]:
    """The roles whose specs site.yml's preflight validates: its fleetwarden_site_roles, read from site.yml."""
    for play in yaml.safe_load((project / "site.yml").read_text()):
        for task in play.get("tasks") or []:
            roles = (task.get("vars") or {}).get("fleetwarden_site_roles")
            if roles:
                return list(roles)
    raise ValueError(f"{project / 'site.yml'} has no fleetwarden_site_roles")


def role_specs(project: Path) -> dict[str, dict]:
    specs = {}
    for role in site_roles(project):
        path = project / "roles" / role / "meta" / "argument_specs.yml"
        specs[role] = yaml.safe_load(path.read_text())["argument_specs"]["main"]["options"]
    return specs


def preflight_check(project: Path, hosts: dict[str, tuple[dict, list[str]]]) -> Check:
    """hosts: {name: (templated vars of the keys the specs and the schema name, group names)}."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._fleet_schema import load_schema, validate_fleet

    problems: dict[str, list[str]] = {}
    for role, spec in role_specs(project).items():
        validator = ArgumentSpecValidator(spec)
        for name, (host_vars, _groups) in hosts.items():
            params = {key: host_vars[key] for key in spec if key in host_vars}
            for error in validator.validate(params).error_messages:
                problems.setdefault(name, []).append(f"{role}: {error}")
    schema = load_schema(project / "schemas" / "fleet.schema.json")
    wanted = [key for key in schema.get("properties", {}) if key != "group_names"]
    fleet = {name: ({k: v for k, v in host_vars.items() if k in wanted}, groups)
             for name, (host_vars, groups) in hosts.items()}
    for name, items in validate_fleet(schema, fleet).items():
        problems.setdefault(name, []).extend(items)
    if problems:
        count = sum(len(v) for v in problems.values())
        return Check("config.preflight", "configuration", "FAIL", f"{count} problems in {len(problems)} hosts' "
                     "configuration (role argument specs, fleet schema)", evidence={"problems": problems},
                     recommendation="fix-configuration")
    return Check("config.preflight", "configuration", "OK", f"{len(hosts)} hosts pass site.yml's preflight "
                 "(role argument specs and the fleet schema)", evidence={"hosts": len(hosts)})


def spec_defaults(project: Path) -> dict:
    """{variable: default} of every site.yml role's argument spec: the roles' defaults, read from one home."""
    return {key: option["default"] for spec in role_specs(project).values() for key, option in spec.items()
            if "default" in option}


def spec_keys(project: Path) -> set[str]:
    keys = set()
    for spec in role_specs(project).values():
        keys.update(spec)
    return keys


def secrets_check(name: str, vars_errors: dict, private_keys: list | None) -> Check:
    """The secrets a host declares resolve and are usable; only names and fingerprints reach the evidence."""
    from ansible_collections.fleetwarden.fleet.plugins.module_utils._ssh_keys import SshKeyError, check_key_pair

    problems = [f"{var}: cannot be resolved ({error})" for var, error in sorted(vars_errors.items())]
    checked = 0
    for index, entry in enumerate(private_keys or []):
        where = f"ssh_keys_private_keys[{index}] ({entry.get('path')})"
        secret = entry.get("private_key")
        if not secret or not str(secret).strip():
            problems.append(f"{where}: private_key is empty")
            continue
        try:
            matches, public, _private_fp = check_key_pair(str(secret), str(entry.get("public_key") or ""))
        except SshKeyError as exc:
            problems.append(f"{where}: {exc}")
            continue
        checked += 1
        if not matches:
            problems.append(f"{where}: private_key does not match public_key {public['fingerprint']}")
    if problems:
        return Check("config.secrets", "configuration", "FAIL", "declared secrets are missing or unusable", name,
                     evidence={"problems": problems}, recommendation="provide-secrets")
    return Check("config.secrets", "configuration", "OK", f"{checked} declared private keys present and matching",
                 name, evidence={"private_keys": checked})


def controller_key_check(key_file: str | None) -> Check:
    """The controller's key pair: Ed25519, mode 0600, and its .pub derived from it. Never reads out the key."""
    from ansible_collections.fleetwarden.fleet.plugins.module_utils._ssh_keys import SshKeyError, check_key_pair

    if not key_file:
        return Check("ssh.controller_key", "ssh", "SKIP", "the inventory names no ansible_ssh_private_key_file "
                     "(ssh-agent or ~/.ssh defaults are used)")
    path = Path(os.path.expanduser(key_file))
    evidence = {"path": str(path)}
    problems = []
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        evidence["mode"] = oct(mode)
        if mode & 0o077:
            problems.append(f"mode {oct(mode)} lets others read it (want 0600)")
        private_text = path.read_text()
    except OSError as exc:
        return Check("ssh.controller_key", "ssh", "FAIL", f"cannot read the controller's key: {exc.strerror}",
                     evidence=evidence, recommendation="fix-controller-key")
    pub = Path(str(path) + ".pub")
    try:
        matches, public, private_fp = check_key_pair(private_text, pub.read_text().strip())
        evidence.update(type=public["type"], fingerprint=private_fp)
        if not matches:
            problems.append(f"{pub.name} ({public['fingerprint']}) is not the public half of the private key")
        if public["type"] != "ed25519":
            problems.append(f"the key is {public['type']}, not Ed25519")
    except (OSError, SshKeyError) as exc:
        problems.append(f"cannot compare the pair: {getattr(exc, 'strerror', None) or exc}")
    del private_text
    if problems:
        return Check("ssh.controller_key", "ssh", "FAIL", "; ".join(problems), evidence=evidence,
                     recommendation="fix-controller-key")
    return Check("ssh.controller_key", "ssh", "OK", "Ed25519, 0600, public half matches", evidence=evidence)


def ansible_version_check() -> Check:
    from ansible.release import __version__

    parts = tuple(int(p) for p in __version__.split(".")[:2])
    ok = parts >= MIN_ANSIBLE
    return Check("config.controller_versions", "configuration", "OK" if ok else "FAIL",
                 f"ansible-core {__version__} on the controller" + ("" if ok else " (site.yml needs 2.19+)"),
                 evidence={"ansible_core": __version__}, recommendation=None if ok else "fix-configuration")
