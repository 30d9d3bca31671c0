"""The docker CLI: its option's argument spec and doc fragment say the same, and what its answers mean."""

import yaml
from ansible_collections.fleetwarden.fleet.plugins.doc_fragments.docker import ModuleDocFragment
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _docker_cli
from ansible_collections.fleetwarden.fleet.plugins.module_utils._docker_cli import DOCKER_CLI_ARGUMENT_SPEC


def test_the_doc_fragment_documents_the_argument_spec():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert {name: {"type": option["type"], "default": option["default"]} for name, option in documented.items()} == (
        DOCKER_CLI_ARGUMENT_SPEC)


INSPECT = '[{"Id": "3f1c", "State": {"Status": "exited", "ExitCode": 137}}]\n'


def test_inspect_answers_the_container_none_when_there_is_none_or_the_error():
    assert _docker_cli.inspected_container(0, INSPECT, "") == (
        {"Id": "3f1c", "State": {"Status": "exited", "ExitCode": 137}}, None)
    assert _docker_cli.inspected_container(1, "[]\n", "Error: No such container: ray-worker\n") == (None, None)
    assert _docker_cli.inspected_container(
        1, "[]\n", "Error response from daemon: no such container: ray-worker\n") == (None, None)
    assert _docker_cli.inspected_container(1, "", "permission denied while trying to connect\n") == (
        None, "permission denied while trying to connect")
    assert _docker_cli.inspected_container(125, "unknown flag: --type\n", "") == (None, "unknown flag: --type")


def test_image_present_tells_missing_from_unknown():
    assert _docker_cli.image_present(0, "") is True
    assert _docker_cli.image_present(1, "Error: No such image: fleet/ray:2.60.0\n") is False
    assert _docker_cli.image_present(1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock\n") is None


def test_missing_images_reads_every_image_docker_names_on_stderr():
    stderr = ("Error response from daemon: No such image: fleet/ray:2.60.0\n"
              "Error: No such image: fleet/trainer:1.4\n"
              "some other complaint\n")
    assert _docker_cli.missing_images(stderr) == {"fleet/ray:2.60.0", "fleet/trainer:1.4"}
    assert _docker_cli.missing_images("") == set()
