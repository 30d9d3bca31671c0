"""Unit tests for plugins/plugin_utils: the helpers every inventory plugin shares, and the Google failures."""

import httplib2
import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils._gcp import TimeBudgetSpent
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._gcp_inventory import (
    describe_project_failure,
    short_name,
)
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._inventory import (
    NAME_SCHEMES,
    InventoryError,
    choose_address,
    describe_unknown_options,
    group_name,
    make_unsafe_tree,
    make_unsafe_vars,
    matches_filters,
    paused_gc,
    pick_hostname,
    unknown_options,
    usable_cache_entry,
    validate_filters,
    validate_hostnames,
)
from googleapiclient.errors import HttpError

# --- shaping helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a", "us-central1-a"),
        ("projects/p/locations/us-east1-d", "us-east1-d"),
        ("us-east1-d", "us-east1-d"),
        (None, None),
    ],
)
def test_short_name(resource, expected):
    assert short_name(resource) == expected


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (["name"], ("train-w1", "name")),
        (["name_zone"], ("train-w1.us-central2-b", "name_zone")),
        (["name_project"], ("train-w1.fw-ml-prod", "name_project")),
        (["name_zone_project"], ("train-w1.us-central2-b.fw-ml-prod", "name_zone_project")),
        (["labels.role", "name"], ("head-w1", "labels.role")),
        (["labels.missing", "internal_ip"], ("10.0.0.1", "internal_ip")),
        (["external_ip", "name"], ("train-w1", "name")),  # no external address: the next choice
        (["external_ip"], (None, None)),
    ],
)
def test_pick_hostname_takes_the_first_choice_the_host_has(order, expected):
    qualifiers = {"zone": "us-central2-b", "project": "fw-ml-prod"}
    labels = {"role": "head"}
    addresses = {"internal_ip": "10.0.0.1", "external_ip": None}
    assert pick_hostname(order, "train", qualifiers, labels, addresses, suffix="-w1") == expected


def test_a_qualified_name_needs_every_qualifier():
    assert pick_hostname(["name_zone", "name"], "n", {"zone": None}) == ("n", "name")


@pytest.mark.parametrize(
    ("order", "addresses", "expected"),
    [
        (["external_ip", "internal_ip"], {"external_ip": "34.1.1.1", "internal_ip": "10.0.0.1"}, "34.1.1.1"),
        (["internal_ip", "external_ip"], {"external_ip": "34.1.1.1", "internal_ip": "10.0.0.1"}, "10.0.0.1"),
        (["external_ip", "internal_ip"], {"external_ip": None, "internal_ip": "10.0.0.1"}, "10.0.0.1"),
        (["external_ip"], {"external_ip": None}, None),
        ([], {"external_ip": "34.1.1.1"}, None),
    ],
)
def test_choose_address_takes_the_first_available(order, addresses, expected):
    assert choose_address(order, addresses) == expected


@pytest.mark.parametrize("order", [["public_ip"], ["name", "hostname"], [], "name", ["labels."], [3]])
def test_validate_hostnames_rejects_unsupported_values(order):
    with pytest.raises(InventoryError, match="hostnames"):
        validate_hostnames(order, NAME_SCHEMES, ("external_ip", "internal_ip"))


@pytest.mark.parametrize("order", [["name_zone_project"], ["labels.role", "internal_ip", "name"]])
def test_validate_hostnames_accepts_schemes_labels_and_addresses(order):
    validate_hostnames(order, NAME_SCHEMES, ("external_ip", "internal_ip"))


def test_make_unsafe_vars_descends_into_lists_and_dicts():
    """runpod's own copy stopped at lists; every plugin now uses this one."""

    def wrap(value):
        return ("unsafe", value)

    result = make_unsafe_vars({"plain": "x", "tags": ["{{ a }}", "b"], "labels": {"k": "{% b %}"}, "n": 3}, wrap)
    assert result == {
        "plain": "x",
        "tags": [("unsafe", "{{ a }}"), "b"],
        "labels": {"k": ("unsafe", "{% b %}")},
        "n": 3,
    }


@pytest.mark.parametrize(
    ("value", "usable"),
    [
        ({"format": 2, "records": [], "failures": []}, True),
        ([["old-host", {}]], False),  # what the plugins wrote before the cache kept failures
        ({"format": 1, "records": []}, False),
        (None, False),
    ],
)
def test_usable_cache_entry(value, usable):
    assert (usable_cache_entry(value) is not None) is usable


HOST = {"tpu_state": "PREEMPTED", "tpu_accelerator_type": "v4-8", "tpu_labels": {"team": "ml"}, "spot": True}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, True),
        ({"tpu_state": "PREEMPTED"}, True),
        ({"tpu_state": ["READY", "PREEMPTED"]}, True),
        ({"tpu_state": "READY"}, False),
        ({"tpu_accelerator_type": "v4-*"}, True),
        ({"tpu_accelerator_type": "v5*"}, False),
        ({"tpu_labels.team": "ml", "tpu_state": "PREEMPTED"}, True),
        ({"tpu_labels.team": "ml", "tpu_state": "READY"}, False),
        ({"tpu_labels.missing": "*"}, False),
        ({"spot": True}, True),
    ],
)
def test_matches_filters(filters, expected):
    assert matches_filters(HOST, filters) is expected


@pytest.mark.parametrize("filters", [["tpu_state=READY"], {"tpu_state": [{"a": 1}]}])
def test_validate_filters_rejects_bad_shapes(filters):
    with pytest.raises(InventoryError, match="filters"):
        validate_filters(filters)


@pytest.mark.parametrize(
    ("prefix", "value", "expected"),
    [("tpu_state", "READY", "tpu_state_ready"), ("tpu_accelerator", "v5litepod-4", "tpu_accelerator_v5litepod_4")],
)
def test_group_name(prefix, value, expected):
    assert group_name(prefix, value) == expected


def test_make_unsafe_tree_wraps_only_template_strings():
    wrapped = []

    def wrap(value):
        wrapped.append(value)
        return ("unsafe", value)

    result = make_unsafe_tree({"a": "plain", "b": ["{{ x }}", 3], "c": {"d": "{% y %}"}}, wrap)
    assert result == {"a": "plain", "b": [("unsafe", "{{ x }}"), 3], "c": {"d": ("unsafe", "{% y %}")}}
    assert wrapped == ["{{ x }}", "{% y %}"]


def test_unknown_options_suggest_the_closest_option():
    known = {"projects", "zones", "hostnames", "plugin"}
    unknown = unknown_options({"plugin": 1, "zone": 1, "colour": 1}, known)
    assert unknown == ["colour", "zone"]
    assert describe_unknown_options(unknown, known) == "colour, zone (did you mean zones?)"


def test_paused_gc_restores_the_collector_even_on_errors():
    import gc

    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # it was off before: stays off
    finally:
        gc.enable()


def http_error(code, body=b'{"error": {"code": 0, "message": "m"}}'):
    return HttpError(httplib2.Response({"status": str(code)}), body)


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (http_error(403), "Grant the credential roles/tpu.viewer on project p, or remove it from projects."),
        (http_error(404), "Check the project ID in projects."),
        (http_error(429), "Try again later, or raise retries or total_timeout."),
        (TimeBudgetSpent("the time budget ran out"), "Raise total_timeout"),
        (ConnectionResetError("reset"), "Try again later."),
    ],
)
def test_a_lost_project_is_described_with_its_fix(error, fix):
    message = describe_project_failure(error, "tpu.googleapis.com", "p", "listing TPU nodes", "roles/tpu.viewer")
    assert "project p" in message
    assert fix in message
