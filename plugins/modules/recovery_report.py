"""Documentation of the recovery_report action plugin (it runs on the controller only)."""

DOCUMENTATION = r"""
---
module: recovery_report
short_description: Write diagnose.yml's and recover.yml's report files on the controller
description:
  - Runs on the controller only; it never connects to the host. Writes each file of O(files) (its parent
    directory created, mode C(0750)), replacing it atomically, with mode C(0640).
  - The reports are the controller's output, not a change to a host, so it reports C(changed=false) and writes
    in check mode too.
  - One task, no module run, where C(ansible.builtin.file) and a C(ansible.builtin.copy) per file ran a module
    each on the controller (docs/benchmarks.md).
version_added: 0.1.0
author: fleetwarden maintainers (@fleetwarden)
options:
  files:
    description: The files to write, each a dict with C(dest) (an absolute path) and C(content) (a string).
    type: list
    elements: dict
    required: true
attributes:
  check_mode:
    description: Can run in check mode and return the changed status it predicts, without modifying the target.
    support: full
    details: Writes in check mode too; the report is output on the controller.
  diff_mode:
    description: Returns details of what has changed (or would change in check mode) when run with diff mode.
    support: none
"""

EXAMPLES = r"""
- name: Write the host report and summary
  fleetwarden.fleet.recovery_report:
    files:
      - {dest: /srv/reports/20250305T142231Z/host-1.json, content: "{{ report | to_nice_json }}\n"}
      - {dest: /srv/reports/20250305T142231Z/host-1.txt, content: "{{ report | fleetwarden.fleet.recovery_summary }}"}
"""

RETURN = r"""
files:
  description: The paths written.
  type: list
  elements: str
  returned: always
"""
