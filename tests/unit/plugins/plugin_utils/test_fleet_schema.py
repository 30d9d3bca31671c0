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
    import jsonschema

    jsonschema.validators.validator_for(schema).check_schema(schema)  # raises SchemaError on a broken schema
    broken = dict(schema, properties={"worker_service_workers": {"type": "no-such-type"}})
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.validators.validator_for(broken).check_schema(broken)


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


# --- cross-field rules (the list); each problem names the field -------------------------------------------
IMAGE = "fleetwarden/ray-worker:latest"


def fleet(workers=None, head=("h1",), worker_hosts=("w1",), **worker_vars):
    """A fleet of head and worker hosts; the worker hosts get `workers` and `worker_vars`."""
    hosts = {name: ({}, ["head"]) for name in head}
    hosts.update({name: (dict(worker_service_workers=workers or [], **worker_vars), ["workers"])
                  for name in worker_hosts})
    return hosts


def problems_of(schema, hosts, host="w1"):
    return validate_fleet(schema, hosts).get(host, [])


def test_the_lab_shape_has_no_problems(schema):
    assert validate_fleet(schema, fleet([{"name": "drill", "image": IMAGE}], ray_cluster_image=IMAGE)) == {}


@pytest.mark.parametrize("heads", [(), ("h1", "h2")])
def test_ray_workers_need_exactly_one_head(schema, heads):
    result = validate_fleet(schema, fleet(head=heads))
    assert result["w1"] == ["fleet_groups.head: Ray workers are declared (group workers has hosts), so group head "
                            "must hold exactly one host"] or result["w1"] == [
        "fleet_groups: Ray workers are declared (group workers has hosts), so group head must hold exactly one host"]


def test_no_ray_workers_no_head_needed(schema):
    assert validate_fleet(schema, {"solo": ({}, ["gpu"])}) == {}


def test_worker_names_are_unique_per_host_the_ray_node_included(schema):
    found = problems_of(schema, fleet([{"name": "ray-worker", "image": IMAGE}]))
    assert any(p.startswith("worker_names: worker names must be unique on a host") for p in found)


@pytest.mark.parametrize("name", ["has space", "-dash-first", "x" * 64, "a/b"])
def test_worker_names_must_be_valid_unit_and_container_names(schema, name):
    found = problems_of(schema, fleet([{"name": name, "image": IMAGE}]))
    assert any("a worker name must be a valid unit and container name" in p for p in found), found


def test_every_gcsfuse_mount_a_worker_names_is_declared(schema):
    hosts = fleet([{"name": "trainer", "image": IMAGE, "gcsfuse_mounts": ["/mnt/data", {"mountpoint": "/mnt/ok"}]}],
                  gcsfuse_mounts=[{"bucket": "b", "mountpoint": "/mnt/ok"}], ray_cluster_gcsfuse_mounts=["/mnt/ray"])
    found = problems_of(schema, hosts)
    assert "worker trainer: gcsfuse_mounts: /mnt/data is not a mount declared in this host's gcsfuse_mounts " \
           "(declared: /mnt/ok)" in found
    assert any(p.startswith("ray_cluster_gcsfuse_mounts: /mnt/ray is not a mount declared") for p in found)
    assert not any("/mnt/ok is not" in p for p in found)


@pytest.mark.parametrize("image", ["Upper/Case:1", "ray worker", "ray:", "ray@sha256:123", "//x"])
def test_image_references_must_be_valid(schema, image):
    found = problems_of(schema, fleet([{"name": "w", "image": image}]))
    assert any("must be a docker image reference" in p for p in found), found


@pytest.mark.parametrize(("extra", "field"), [
    ({"worker_service_restart_max_per_hour": 0}, "worker_service_restart_max_per_hour: the restart budget"),
    ({"ray_cluster_restart": {"max_per_hour": 0}}, "ray_cluster_restart.max_per_hour: the restart budget"),
])
def test_restart_budgets_are_at_least_one(schema, extra, field):
    assert any(p.startswith(field) for p in problems_of(schema, fleet(**extra)))


def test_a_workers_own_restart_budget_is_at_least_one(schema):
    found = problems_of(schema, fleet([{"name": "w", "image": IMAGE, "restart": {"max_per_hour": 0}}]))
    assert any("worker w: restart.max_per_hour must be a whole number of at least 1" in p for p in found), found


def test_an_unknown_worker_key_is_named_with_the_closest_valid_key(schema):
    found = problems_of(schema, fleet([{"name": "w", "image": IMAGE, "gcsfuse_mount": ["/mnt/x"]}]))
    assert found[0].startswith("worker_service_workers[0].gcsfuse_mount: unknown key (did you mean gcsfuse_mounts?)")


@pytest.mark.parametrize("where", ["worker", "ray"])
def test_an_env_value_with_a_carriage_return_is_refused_naming_the_variable(schema, where):
    value = "token-value\r"
    if where == "worker":
        hosts = fleet([{"name": "w", "image": IMAGE, "env": {"HF_TOKEN": value}}])
    else:
        hosts = fleet(ray_cluster_env={"HF_TOKEN": value})
    found = problems_of(schema, hosts)
    assert any("HF_TOKEN" in p and "carriage return" in p for p in found), found
    assert not any("token-value" in p for p in found)  # the value itself is never printed


def test_the_schemas_name_rule_is_the_worker_units():
    from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_unit import _NAME

    assert load_schema()["properties"]["worker_names"]["items"]["pattern"] == _NAME.pattern
