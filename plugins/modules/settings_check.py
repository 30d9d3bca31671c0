"""Documentation of the settings_check action plugin (it runs on the controller only)."""

DOCUMENTATION = r"""
---
module: settings_check
short_description: A role's settings checks in one task, reporting every failing check at once
description:
  - Runs on the controller. Each entry of O(checks) is an assert with its own message and optional condition;
    the task fails when any check fails, with every failing check's message, one per line.
  - Conditions are evaluated as M(ansible.builtin.assert) evaluates C(that); a message is templated only when its
    check fails.
  - One task instead of one assert per check (Ansible's per-task cost, on every host and run); changes nothing.
version_added: 0.1.0
author: fleetwarden maintainers (@fleetwarden)
options:
  checks:
    description: The checks, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      that:
        description: A condition, or a list of conditions that must all hold.
        type: raw
        required: true
      msg:
        description: What is wrong, naming the field; templated when the check fails.
        type: str
        required: true
      when:
        description: A condition, or a list, under which the check applies; it is skipped otherwise.
        type: raw
attributes:
  check_mode:
    description: Can run in check mode and return the changed status it predicts, without modifying the target.
    support: full
  diff_mode:
    description: Returns details of what has changed (or would change in check mode) when run with diff mode.
    support: none
"""

EXAMPLES = r"""
- name: Check the log settings
  fleetwarden.fleet.settings_check:
    checks:
      - that: docker_engine_log_max_file | int >= 1
        msg: "docker_engine_log_max_file must be at least 1, got {{ docker_engine_log_max_file }}"
      - that: docker_engine_log_max_file | int >= 2
        when: docker_engine_log_compress
        msg: docker_engine_log_compress needs docker_engine_log_max_file of at least 2
"""

RETURN = r"""
checked:
  description: How many checks applied (their when held).
  type: int
  returned: always
failures:
  description: The message of each check that failed, in order.
  type: list
  elements: str
  returned: always
"""
