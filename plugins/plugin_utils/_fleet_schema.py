"""Fleet-wide validation of the configuration, on the controller, before any host changes.

Each host's fleet variables are checked against one JSON Schema (schemas/fleet.schema.json).
Cross-field rules live there too (`if`/`then`, `uniqueItems` over fields derived here: fleet_groups,
worker_names, worker_images). A subschema may carry `x-message`, a sentence that replaces jsonschema's
own wording when that subschema fails. What JSON Schema cannot say is checked in `cross_field_problems`:
each worker declaration by module_utils._worker_unit's rules (one home), an unknown key with the closest
valid key suggested, and every gcsfuse mount a worker names declared in the host's gcsfuse_mounts.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import yaml
from ansible.errors import AnsibleError
from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_unit import WORKER_KEYS, workers_errors

JSONSCHEMA_IMPORT_ERROR = None
try:  # a controller requirement of the fleetwarden package; its absence is reported when a check runs
    from jsonschema import Draft202012Validator
except ImportError as exc:
    Draft202012Validator = None
    JSONSCHEMA_IMPORT_ERROR = exc

COLLECTION = Path(__file__).resolve().parents[2]
SCHEMA_PATH = COLLECTION / "schemas" / "fleet.schema.json"
# Host variables the cross-field rules read besides the schema's own.
WORKER_VARS = ("worker_service_workers", "worker_service_accelerator_profiles", "worker_service_tpu_group",
               "gcsfuse_mounts", "ray_cluster_head_name", "ray_cluster_worker_name", "ray_cluster_image",
               "ray_cluster_gcsfuse_mounts", "ray_cluster_head_group")
# site.yml runs ray_cluster on these groups (its Ray head and Ray workers plays).
RAY_HEAD_GROUP, RAY_WORKERS_GROUP = "head", "workers"


def _schema_validator():
    if Draft202012Validator is None:
        raise AnsibleError("fleetwarden.fleet's fleet configuration check needs the jsonschema package on the "
                           f"controller: {JSONSCHEMA_IMPORT_ERROR}") from JSONSCHEMA_IMPORT_ERROR
    return Draft202012Validator


def role_defaults(role: str) -> dict:
    """A role's defaults/main.yml (for the values a host does not set; one home for each default)."""
    return yaml.safe_load((COLLECTION / "roles" / role / "defaults" / "main.yml").read_text()) or {}


def _var(hostvars: dict, name: str, defaults: dict):
    return hostvars[name] if name in hostvars else defaults.get(name)


def host_workers(hostvars: dict, group_names: list[str]) -> list[dict]:
    """Every worker site.yml runs on the host: worker_service_workers (present), then its Ray node."""
    workers = [w for w in hostvars.get("worker_service_workers") or [] if not isinstance(w, dict)
               or w.get("state", "present") != "absent"]
    ray = role_defaults("ray_cluster")
    role = "head" if RAY_HEAD_GROUP in group_names else "worker" if RAY_WORKERS_GROUP in group_names else None
    if role:
        workers.append({"name": _var(hostvars, "ray_cluster_%s_name" % role, ray),
                        "image": _var(hostvars, "ray_cluster_image", ray),
                        "gcsfuse_mounts": _var(hostvars, "ray_cluster_gcsfuse_mounts", ray) or [],
                        "ray_node": role})
    return workers


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    schema = json.loads(path.read_text())
    _schema_validator().check_schema(schema)
    return schema


DERIVED = ("group_names", "fleet_groups", "worker_names", "worker_images")


def host_document(hostvars: dict, group_names: list[str], properties: dict, fleet_groups: dict | None = None) -> dict:
    """The part of one host's variables the schema speaks of, its groups, and the derived fields."""
    doc = {key: hostvars[key] for key in properties if key in hostvars and key not in DERIVED}
    doc["group_names"] = sorted(group_names)
    if fleet_groups is not None:
        doc["fleet_groups"] = {g: sorted(h) for g, h in fleet_groups.items()}
    workers = [w for w in host_workers(hostvars, group_names) if isinstance(w, dict)]
    doc["worker_names"] = [w.get("name") for w in workers if isinstance(w.get("name"), str)]
    doc["worker_images"] = [w.get("image") for w in workers if isinstance(w.get("image"), str)]
    return json.loads(json.dumps(doc, default=str))  # plain JSON types only


def closest_key(key, known) -> str:
    match = difflib.get_close_matches(str(key), known, n=1, cutoff=0.5)
    return " (did you mean %s?)" % match[0] if match else ""


def cross_field_problems(hostvars: dict, group_names: list[str]) -> list[str]:
    """The rules JSON Schema cannot say, as `field: problem` lines; [] when there is none."""
    problems = []
    declared = hostvars.get("worker_service_workers") or []
    if isinstance(declared, list):
        for index, worker in enumerate(declared):
            if isinstance(worker, dict):
                for key in sorted(set(worker) - set(WORKER_KEYS), key=str):
                    problems.append("worker_service_workers[%d].%s: unknown key%s; valid keys: %s"
                                    % (index, key, closest_key(key, WORKER_KEYS), ", ".join(WORKER_KEYS)))
        profiles = hostvars.get("worker_service_accelerator_profiles")
        for line in workers_errors(declared, group_names, profiles if isinstance(profiles, dict) else None,
                                   hostvars.get("worker_service_tpu_group", "tpu")):
            if ": unknown key " not in line and "is declared twice" not in line:  # said above / by worker_names
                problems.append("worker_service_workers: " + line)
    mounts = hostvars.get("gcsfuse_mounts") or []
    mounted = {m.get("mountpoint") for m in mounts if isinstance(m, dict)} if isinstance(mounts, list) else set()
    for worker in host_workers(hostvars, group_names):
        if not isinstance(worker, dict):
            continue
        where = ("ray_cluster_gcsfuse_mounts" if worker.get("ray_node")
                 else "worker %s: gcsfuse_mounts" % worker.get("name"))
        for mount in worker.get("gcsfuse_mounts") or []:
            point = mount.get("mountpoint") if isinstance(mount, dict) else mount
            if isinstance(point, str) and point not in mounted:
                problems.append("%s: %s is not a mount declared in this host's gcsfuse_mounts (declared: %s)"
                                % (where, point, ", ".join(sorted(p for p in mounted if p)) or "none"))
    return problems


def field_path(error) -> str:
    """`worker_service_workers[0].image` from jsonschema's path deque."""
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        out = f"{out}.{missing}" if out else missing
    return out or "(top level)"


def explain(error) -> str:
    return error.schema.get("x-message") if isinstance(error.schema, dict) and "x-message" in error.schema \
        else error.message


def validate_host(schema: dict, doc: dict) -> list[str]:
    """Sorted `field: problem` lines for one host; [] when it conforms."""
    validator = _schema_validator()(schema)
    problems = []
    for error in validator.iter_errors(doc):
        # Report the innermost failures of a oneOf/anyOf/if, not the wrapper.
        leaves = list(error.context) if error.context else [error]
        for leaf in leaves or [error]:
            problems.append(f"{field_path(leaf)}: {explain(leaf)}")
    return sorted(set(problems))


def validate_fleet(schema: dict, hosts: dict[str, tuple[dict, list[str]]],
                   fleet_groups: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """{host: problems} for every host that does not conform. `fleet_groups` ({group: hosts}, the inventory's)
    defaults to the groups of the checked hosts."""
    properties = schema.get("properties", {})
    if fleet_groups is None:
        fleet_groups = {}
        for host, (_vars, groups) in hosts.items():
            for group in groups:
                fleet_groups.setdefault(group, []).append(host)
    result = {}
    for host, (hostvars, groups) in sorted(hosts.items()):
        problems = validate_host(schema, host_document(hostvars, groups, properties, fleet_groups))
        problems += cross_field_problems(hostvars, groups)
        if problems:
            result[host] = problems
    return result
