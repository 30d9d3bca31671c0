#!/usr/bin/python
# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


DOCUMENTATION = r"""
module: gpu_facts
short_description: Per-GPU facts and a health verdict from nvidia-smi
description:
  - Runs C(nvidia-smi -q -x) (or the C(--query-gpu) and C(--query-compute-apps) CSV forms) and returns,
    per GPU, its identity, memory, utilisation, temperature, power, ECC and memory-repair state, the
    compute processes on it, and a health verdict with the reasons behind it.
  - A host without C(nvidia-smi) returns RV(gpu_count=0) and an empty RV(gpus); that is not a failure.
  - When C(nvidia-smi) is present but fails (a GPU fell off the bus, the driver is not loaded), the module
    does not fail either; it returns RV(health=unhealthy) with the error in RV(reasons).
  - Read-only. Parsing lives in C(plugins/module_utils/_nvidia_smi.py).
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
    platforms: posix
options:
  source:
    description:
      - V(xml) runs C(nvidia-smi -q -x), which carries every fact, including ECC detail, row remapping,
        recovery action and PCIe link width.
      - V(csv) runs C(nvidia-smi --query-gpu=... --format=csv) and C(--query-compute-apps); faster, with
        fewer facts (those it lacks are V(null)).
    type: str
    choices: [xml, csv]
    default: xml
  nvidia_smi_path:
    description:
      - Path to C(nvidia-smi). By default it is looked up on E(PATH).
    type: path
  temperature_threshold_c:
    description: GPU temperature in Celsius at or above which a GPU is V(degraded).
    type: int
    default: 85
  memory_temperature_threshold_c:
    description: HBM temperature in Celsius at or above which a GPU is V(degraded).
    type: int
    default: 95
notes:
  - Health rules. V(unhealthy) - uncorrectable volatile ECC errors, a pending or failed row remap, pending
    page retirement, or a recovery action requested by the driver. V(degraded) - temperature over a
    threshold, thermal clock slowdown, or a PCIe link narrower than its maximum. Otherwise V(healthy).
seealso:
  - module: fleetwarden.fleet.container_diagnosis
  - module: fleetwarden.fleet.node_facts
"""

EXAMPLES = r"""
- name: Read GPU facts
  fleetwarden.fleet.gpu_facts:
  register: gpu

- name: Stop when a GPU needs a reset or a replacement
  ansible.builtin.assert:
    that: gpu.health != 'unhealthy'
    fail_msg: "{{ gpu.gpus | selectattr('health', 'eq', 'unhealthy') | map(attribute='reasons') | list }}"

- name: Quick read through the CSV query form
  fleetwarden.fleet.gpu_facts:
    source: csv
    temperature_threshold_c: 80
"""

RETURN = r"""
gpu_count:
  description: Number of GPUs nvidia-smi listed; V(0) without nvidia-smi.
  returned: always
  type: int
  sample: 1
health:
  description: Worst per-GPU verdict, V(healthy), V(degraded) or V(unhealthy); V(absent) when there are no GPUs.
  returned: always
  type: str
  sample: healthy
reasons:
  description: Host-level reasons, such as an nvidia-smi failure.
  returned: always
  type: list
  elements: str
  sample: []
driver_version:
  description: NVIDIA driver version.
  returned: always
  type: str
  sample: 580.159.04
cuda_version:
  description: CUDA version the driver supports (XML source only).
  returned: always
  type: str
  sample: "13.0"
nvidia_smi:
  description: Where nvidia-smi was found, and its error when it failed.
  returned: always
  type: dict
  sample: {path: /usr/bin/nvidia-smi, present: true, rc: 0, error: null}
gpus:
  description:
    - One dict per GPU, in nvidia-smi index order. Memory in MiB, power in W, temperature in Celsius.
    - Facts the source does not carry are V(null).
  returned: always
  type: list
  elements: dict
  sample:
    - index: 0
      uuid: GPU-da209364-6291-0e16-59d7-4167312d9bd0
      name: NVIDIA H100 80GB HBM3
      pci_bus_id: "00000000:00:06.0"
      memory_total_mib: 81559
      memory_used_mib: 0
      memory_free_mib: 81079
      utilization_gpu_pct: 0
      temperature_c: 35
      power_draw_w: 97.37
      power_limit_w: 700.0
      ecc_volatile_uncorrected: 0
      retired_pages_pending: null
      remapped_rows_pending: false
      processes: [{pid: 460, name: python3, type: C, used_memory_mib: 10758}]
      health: healthy
      reasons: []
ansible_facts:
  description: The same data under C(fleet_gpu).
  returned: always
  type: dict
"""

# Module anatomy (community.docker): imports follow DOCUMENTATION, EXAMPLES and RETURN.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._nvidia_smi import GPU_FACTS_DEFAULTS, GpuFacts  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)


def main():
    argument_spec = dict(
        source=dict(type="str", choices=["xml", "csv"], default=GPU_FACTS_DEFAULTS["source"]),
        nvidia_smi_path=dict(type="path"),
        temperature_threshold_c=dict(type="int", default=GPU_FACTS_DEFAULTS["temperature_threshold_c"]),
        memory_temperature_threshold_c=dict(type="int", default=GPU_FACTS_DEFAULTS["memory_temperature_threshold_c"]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    facts = GpuFacts(module, module.params).run()
    module.exit_json(changed=False, ansible_facts={"fleet_gpu": facts}, **facts)


if __name__ == "__main__":
    main()
