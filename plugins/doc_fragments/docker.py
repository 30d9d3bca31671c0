# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""The docker CLI option of the modules that run docker; its argument spec is module_utils._docker_cli."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  docker_cli:
    description:
      - The docker CLI the module runs, a name looked up on the host's E(PATH) or an absolute path.
    type: str
    default: docker
"""
