# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""The docker CLI: the option every module that runs docker merges into its argument spec, and what its answers mean.

The option is documented once, in the doc fragment ``fleetwarden.fleet.docker`` (plugins/doc_fragments/docker.py).
The answer readers are pure functions of (rc, stdout, stderr), unit-tested in tests/unit/plugins/module_utils.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

DEFAULT_DOCKER_CLI = "docker"
DOCKER_CLI_ARGUMENT_SPEC = {"docker_cli": {"type": "str", "default": DEFAULT_DOCKER_CLI}}
DEFAULT_DOCKER_ROOT = "/var/lib/docker"  # dockerd's data-root when docker info does not say


def find_docker_cli(module, required=False):
    """The path of the docker CLI the ``docker_cli`` option names, or None; with ``required``, fails the module."""
    return module.get_bin_path(module.params["docker_cli"], required=required)


def docker_cli_path(module):
    """The docker CLI's absolute path where found, else the ``docker_cli`` option as given: for modules that report
    a missing CLI as a failed command (or write it into a unit) rather than failing themselves."""
    return find_docker_cli(module) or module.params["docker_cli"]


def inspected_container(rc, stdout, stderr):
    """``docker inspect --type container NAME`` -> (the container's object, None), (None, None) when there is no
    such container, or (None, the error) when docker failed otherwise."""
    if rc != 0:
        if "no such container" in (stderr or "").lower():
            return None, None
        return None, (stderr or stdout).strip()
    return json.loads(stdout)[0], None


def image_present(rc, stderr):
    """``docker image inspect IMAGE`` -> True, False (no such image) or None (docker could not tell)."""
    if rc == 0:
        return True
    return False if "no such image" in (stderr or "").lower() else None


def missing_images(stderr):
    """The images ``docker image inspect IMAGE...`` names as missing on stderr."""
    return set(line.split("No such image:", 1)[1].strip() for line in (stderr or "").splitlines()
               if "No such image:" in line)
