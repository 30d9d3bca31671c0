"""Fleet-wide validation of the configuration, on the controller, before any host changes.

Each host's fleet variables are checked against one JSON Schema (schemas/fleet.schema.json).
Cross-field rules live there too (`if`/`then`). A subschema may carry `x-message`, a sentence
that replaces jsonschema's own wording when that subschema fails.
"""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "fleet.schema.json"


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return schema


def host_document(hostvars: dict, group_names: list[str], properties: dict) -> dict:
    """The part of one host's variables the schema speaks of, plus its groups."""
    doc = {key: hostvars[key] for key in properties if key in hostvars and key != "group_names"}
    doc["group_names"] = sorted(group_names)
    return json.loads(json.dumps(doc, default=str))  # plain JSON types only


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
    validator = Draft202012Validator(schema)
    problems = []
    for error in validator.iter_errors(doc):
        # Report the innermost failures of a oneOf/anyOf/if, not the wrapper.
        leaves = [e for e in error.context] if error.context else [error]
        for leaf in leaves or [error]:
            problems.append(f"{field_path(leaf)}: {explain(leaf)}")
    return sorted(set(problems))


def validate_fleet(schema: dict, hosts: dict[str, tuple[dict, list[str]]]) -> dict[str, list[str]]:
    """{host: problems} for every host that does not conform."""
    properties = schema.get("properties", {})
    result = {}
    for host, (hostvars, groups) in sorted(hosts.items()):
        problems = validate_host(schema, host_document(hostvars, groups, properties))
        if problems:
            result[host] = problems
    return result
