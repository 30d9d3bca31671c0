#!/usr/bin/python
# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


DOCUMENTATION = r"""
module: worker_declarations
short_description: The supervised workers a host runs, from the declarations worker_service wrote there
description:
  - Reads every C(<name>.json) under I(config_dir), where C(fleetwarden.fleet.worker_service) writes one
    declaration per worker (the Ray head and Ray workers of C(fleetwarden.fleet.ray_cluster) included), and
    returns them sorted by name. This is how C(playbooks/diagnose.yml) and C(playbooks/recover.yml) learn a
    host's workers, with no variables.
  - Env values and setup commands may hold secrets and are never returned; C(env_names) and
    C(setup_command_count) say what there is.
  - Read-only. Parsing lives in C(plugins/module_utils/_worker_unit.py) (C(read_declarations)).
version_added: 0.2.0
author:
  - fleetwarden maintainers (@fleetwarden)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  platform:
    platforms: linux
options:
  config_dir:
    description: Where worker_service writes the declarations.
    type: path
    default: /etc/fleetwarden/workers
seealso:
  - module: fleetwarden.fleet.worker_unit
"""

EXAMPLES = r"""
- name: Read the host's workers
  fleetwarden.fleet.worker_declarations:
  register: declared

- name: Name them
  ansible.builtin.debug:
    msg: "{{ declared.workers | map(attribute='name') | list }}"
"""

RETURN = r"""
workers:
  description: The declarations (as worker_service rendered them, less env values and setup commands).
  returned: always
  type: list
  elements: dict
errors:
  description: One line per file that is not a readable declaration (it is left out of I(workers)).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - modules import after their doc strings
from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_state import (  # noqa: E402 - as above
    read_declarations,
)


def main():
    module = AnsibleModule(argument_spec=dict(config_dir=dict(type="path", default="/etc/fleetwarden/workers")),
                           supports_check_mode=True)
    workers, errors = read_declarations(module.params["config_dir"])
    module.exit_json(changed=False, workers=workers, errors=errors)


if __name__ == "__main__":
    main()
