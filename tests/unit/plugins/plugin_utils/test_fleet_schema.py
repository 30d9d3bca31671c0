"""The fleet-wide schema check: field paths, x-message wording, cross-field rules."""

import pytest
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._fleet_schema import (
    host_document,
    load_schema,
    validate_fleet,
    validate_host,
)


@pytest.fixture(scope="module")
def schema():
    return load_schema()


def test_the_shipped_schema_is_a_valid_json_schema(schema):
    assert schema["type"] == "object"


def test_a_conforming_host_has_no_problems(schema):
    doc = host_document({"baseline_journal_max_use": "2G", "unrelated": object()}, ["workers"],
                        schema["properties"])
    assert "unrelated" not in doc
    assert validate_host(schema, doc) == []


def test_x_message_replaces_jsonschema_wording_and_names_the_field(schema):
    problems = validate_host(schema, {"baseline_journal_max_use": "12X", "group_names": []})
    assert problems == ["baseline_journal_max_use: must be a size journald understands, such as 500M or 1G"]


def test_nested_paths_are_rendered_with_indexes(schema):
    problems = validate_host(schema, {"baseline_packages": ["jq", ""], "group_names": []})
    assert problems and problems[0].startswith("baseline_packages[1]: ")


def test_validate_fleet_reports_only_bad_hosts(schema):
    hosts = {
        "good": ({"baseline_journal_storage": "persistent"}, ["all"]),
        "bad": ({"baseline_journal_storage": "disk"}, ["all"]),
    }
    result = validate_fleet(schema, hosts)
    assert list(result) == ["bad"]
    assert result["bad"][0].startswith("baseline_journal_storage: ")
