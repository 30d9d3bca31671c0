# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""The docker CLI option, merged into the argument spec of every module that runs docker.

Documented once, in the doc fragment ``fleetwarden.fleet.docker`` (plugins/doc_fragments/docker.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCKER_CLI_ARGUMENT_SPEC = {"docker_cli": {"type": "str", "default": "docker"}}


def find_docker_cli(module, required=False):
    """The path of the docker CLI the ``docker_cli`` option names, or None; with ``required``, fails the module."""
    return module.get_bin_path(module.params["docker_cli"], required=required)
