# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""The docker CLI option, merged into the argument spec of every module that runs docker.

Documented once, in the doc fragment ``fleetwarden.fleet.docker`` (plugins/doc_fragments/docker.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DEFAULT_DOCKER_CLI = "docker"
DOCKER_CLI_ARGUMENT_SPEC = {"docker_cli": {"type": "str", "default": DEFAULT_DOCKER_CLI}}


def find_docker_cli(module, required=False):
    """The path of the docker CLI the ``docker_cli`` option names, or None; with ``required``, fails the module."""
    return module.get_bin_path(module.params["docker_cli"], required=required)


def docker_cli_path(module):
    """The docker CLI's absolute path where found, else the ``docker_cli`` option as given: for modules that report
    a missing CLI as a failed command (or write it into a unit) rather than failing themselves."""
    return find_docker_cli(module) or module.params["docker_cli"]
