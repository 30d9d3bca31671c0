#!/usr/bin/python
# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


DOCUMENTATION = r"""
module: node_facts
short_description: Memory, swap, disk and OOM-kill facts of a worker host
description:
  - Reads C(/proc/meminfo), C(/proc/vmstat), C(/proc/uptime) and C(statvfs) of the given paths, and returns
    memory and swap use, space and inodes per path, and how many processes the kernel OOM killer has
    killed since boot.
  - Read-only; no commands are run. Parsing lives in C(plugins/module_utils/_node.py).
version_added: 0.1.0
author:
  - fleetwarden maintainers (@fleetwarden)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: linux
options:
  paths:
    description:
      - Paths whose filesystems to measure. A path that does not exist is reported with an C(error).
    type: list
    elements: path
    default: [/, /var/lib/docker]
  disk_full_threshold_pct:
    description: Block or inode use, in percent, at or above which a filesystem counts as C(full).
    type: int
    default: 95
seealso:
  - module: fleetwarden.fleet.gpu_facts
  - module: fleetwarden.fleet.container_diagnosis
"""

EXAMPLES = r"""
- name: Read memory, disk and OOM facts
  fleetwarden.fleet.node_facts:
  register: node

- name: Say when the OOM killer has been busy
  ansible.builtin.debug:
    msg: "{{ node.oom_kill_count }} OOM kills since boot"
  when: (node.oom_kill_count | default(0, true)) > 0

- name: Measure the data disk too
  fleetwarden.fleet.node_facts:
    paths: [/, /var/lib/docker, /mnt/data]
    disk_full_threshold_pct: 90
"""

RETURN = r"""
memory:
  description: Memory in bytes; C(used_bytes) is total minus MemAvailable.
  returned: always
  type: dict
  sample: {total_bytes: 270157553664, available_bytes: 251658240000, free_bytes: 240000000000,
           used_bytes: 18499313664, used_pct: 6.8}
swap:
  description: Swap in bytes.
  returned: always
  type: dict
  sample: {total_bytes: 0, free_bytes: 0, used_bytes: 0, used_pct: 0.0}
disks:
  description:
    - One dict per path, in the order given. C(used_pct) is computed like df does (used over used plus
      available to non-root). A path that cannot be measured has only C(path) and C(error).
  returned: always
  type: list
  elements: dict
  sample:
    - {path: /, total_bytes: 207929917440, used_bytes: 41585983488, available_bytes: 166327156736,
       used_pct: 20.0, inodes_total: 12902400, inodes_free: 12500000, inodes_used_pct: 3.1, full: false}
oom_kill_count:
  description: Processes killed by the kernel OOM killer since boot (C(oom_kill) in C(/proc/vmstat),
    kernel 4.13+); V(null) where the kernel lacks the counter.
  returned: always
  type: int
  sample: 3
uptime_s:
  description: Seconds since boot.
  returned: always
  type: float
  sample: 86400.5
ansible_facts:
  description: The same data under C(fleet_node).
  returned: always
  type: dict
"""

# Module anatomy (community.docker): imports follow DOCUMENTATION, EXAMPLES and RETURN.
import os  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._node import NODE_FACT_PATHS, node_facts  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)


# Host access, kept in small functions so that tests can replace them.
def statvfs(path):
    return os.statvfs(path)


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return ""


class NodeFacts:
    """Reads /proc and statvfs; the shaping is in module_utils._node (node_facts, shared with container_diagnosis)."""

    def __init__(self, module):
        self.module = module
        self.params = module.params

    def run(self):
        return node_facts(read_text, statvfs, self.params["paths"], self.params["disk_full_threshold_pct"])


def main():
    argument_spec = dict(
        paths=dict(type="list", elements="path", default=list(NODE_FACT_PATHS)),
        disk_full_threshold_pct=dict(type="int", default=95),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    facts = NodeFacts(module).run()
    module.exit_json(changed=False, ansible_facts={"fleet_node": facts}, **facts)


if __name__ == "__main__":
    main()
