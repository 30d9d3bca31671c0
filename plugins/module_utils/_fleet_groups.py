# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The inventory groups fleetwarden's playbooks and tools name: one home for the Python side.

site.yml's plays, the roles' defaults (worker_service_tpu_group) and the inventory plugins' groups name the same
groups in YAML; tests/unit/test_constants.py holds them to these.

Runs on managed hosts and the controller: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

HEAD_GROUP = "head"  # the Ray head's host
WORKERS_GROUP = "workers"  # hosts of Ray workers
MONITORING_GROUP = "monitoring"  # Prometheus and Alertmanager
CONTROLLER_GROUP = "controller"  # the recovery receiver
GPU_GROUP = "gpu"  # hosts with NVIDIA GPUs
TPU_GROUP = "tpu"  # TPU VMs: a tpu worker is refused on a host outside it
GROUPS = (HEAD_GROUP, WORKERS_GROUP, MONITORING_GROUP, CONTROLLER_GROUP, GPU_GROUP, TPU_GROUP)
