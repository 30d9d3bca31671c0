"""Unit tests for the worker filters used by the worker_service role's preflight."""

from ansible_collections.fleetwarden.fleet.plugins.filter.worker import FilterModule

FILTERS = FilterModule().filters()
PROFILES = {"cpu": {}, "gpu": {}, "tpu": {}}


def test_worker_errors_names_each_bad_field_and_is_empty_for_good_input():
    workers = [{"name": "a", "image": "img", "restart": {"max_per_hour": 0}},
               {"name": "b", "image": "img", "accelerator": "tpu"},
               {"name": "c", "image": "img", "env": {"OK_NAME": "v"}, "setup_commands": ["echo 'hi'"]}]
    errors = FILTERS["worker_errors"](workers, ["gpu"], PROFILES)
    assert len(errors) == 2
    assert errors[0].startswith("worker a: restart.max_per_hour")
    assert errors[1].startswith("worker b: accelerator tpu needs a host in group tpu")
    assert FILTERS["worker_errors"](workers[2:], ["gpu"], PROFILES) == []


def test_worker_errors_refuses_a_profile_with_unknown_keys():
    errors = FILTERS["worker_errors"]([], [], {"gpu": {"runtme": "nvidia"}})
    assert errors == ["accelerator profile gpu: unknown key runtme (known: runtime, env, devices, device_globs, "
                      "privileged, cap_add, ulimits, host_network)"]


def test_worker_unit_name():
    assert FILTERS["worker_unit_name"]("ray-worker") == "fleetwarden-worker-ray-worker.service"
