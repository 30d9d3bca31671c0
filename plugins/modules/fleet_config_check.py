"""Documentation of the fleet_config_check action plugin (it runs on the controller only)."""

DOCUMENTATION = r"""
---
module: fleet_config_check
short_description: Validate the fleet's configuration against the fleet-wide JSON Schema
description:
  - Runs on the controller, once, for every host of the play.
  - Checks each host's fleet variables (group_vars and host_vars) against C(schemas/fleet.schema.json),
    cross-field rules included, and fails naming each host and field that does not conform.
  - Changes nothing anywhere.
version_added: 0.1.0
author: fleetwarden maintainers (@fleetwarden)
options:
  hosts:
    description: Hosts to check; defaults to every host of the play.
    type: list
    elements: str
attributes:
  check_mode:
    description: Can run in check mode and return the changed status it predicts, without modifying the target.
    support: full
  diff_mode:
    description: Returns details of what has changed (or would change in check mode) when run with diff mode.
    support: none
"""

EXAMPLES = r"""
- name: Validate the fleet configuration
  fleetwarden.fleet.fleet_config_check:
  run_once: true
"""

RETURN = r"""
checked:
  description: Number of hosts checked.
  type: int
  returned: always
problems:
  description: For each host that does not conform, its problems, one C(field - reason) line each.
  type: dict
  returned: always
"""
