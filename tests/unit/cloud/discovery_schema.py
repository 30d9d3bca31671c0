"""A small validator of JSON values against the schemas of a Google discovery document.

Strict where the stand-in could drift from the real API: a field that the schema does not have is an
error, and so is a value of the wrong type or outside an enum. Objects described only by
`additionalProperties` (labels, metadata, aggregated scopes) check each value against it.
"""

import json
from pathlib import Path

import googleapiclient

DOCUMENTS = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"


def load(api, version):
    return json.loads((DOCUMENTS / f"{api}.{version}.json").read_text())


def method(document, dotted):
    """The discovery method at `projects.locations.nodes.list` (resources path, then method name)."""
    *resources, name = dotted.split(".")
    node = document
    for resource in resources:
        node = node["resources"][resource]
    return node["methods"][name]


def errors(document, schema, value, path="$"):
    """Every way `value` breaks `schema` (a discovery schema dict or {"$ref": name}), as 'path: problem' lines."""
    if "$ref" in schema:
        return errors(document, document["schemas"][schema["$ref"]], value, path)
    kind = schema.get("type")
    if kind == "any" or (kind is None and "properties" not in schema):
        return []
    if kind == "object" or "properties" in schema:
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        found = []
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                found += errors(document, properties[key], item, f"{path}.{key}")
            elif extra is not None:
                found += errors(document, extra, item, f"{path}.{key}")
            elif properties is not None:
                found.append(f"{path}.{key}: the API has no such field")
        return found
    if kind == "array":
        if not isinstance(value, list):
            return [f"{path}: expected an array, got {type(value).__name__}"]
        return [problem for index, item in enumerate(value)
                for problem in errors(document, schema["items"], item, f"{path}[{index}]")]
    expected = {"string": str, "boolean": bool, "integer": int, "number": (int, float)}[kind]
    if not isinstance(value, expected) or (kind in ("integer", "number") and isinstance(value, bool)):
        return [f"{path}: expected {kind}, got {type(value).__name__} {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} is not one of the API's values"]
    return []
