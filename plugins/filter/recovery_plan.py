# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The recovery plan for roles/recovery/tasks/remediate.yml; the table and the logic are in
module_utils._recovery_plan.

- ``fleetwarden.fleet.recovery_plan``: a host's faulty diagnoses (container_diagnosis results with ``item``), and
  after dockerd was started the evidence of the workers it took down -> the plan: the actions in order, the mounts
  to remount, the Ray heads to wait for, the workers to recreate and the units to restart or start.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.fleetwarden.fleet.plugins.module_utils._recovery_plan import plan


def recovery_plan(faulty, outage_evidence=None):
    if not isinstance(faulty, list) or (outage_evidence is not None and not isinstance(outage_evidence, list)):
        raise AnsibleFilterError("recovery_plan: needs the list of faulty diagnoses (and a list of outage evidence)")
    return plan(faulty, outage_evidence)


class FilterModule:
    def filters(self):
        return {"recovery_plan": recovery_plan}
