# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters for supervised workers; the logic is in module_utils._worker_unit.

- ``fleetwarden.fleet.worker_errors``: ``worker_service_workers`` -> list of problems, each naming the worker and
  the field (for preflight asserts, before any host changes).
- ``fleetwarden.fleet.worker_unpullable``: workers whose image is missing and whose pull policy is never -> one
  line each naming host, worker and image.
- ``fleetwarden.fleet.worker_unit_name``: worker name -> ``fleetwarden-worker-<name>.service``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.fleetwarden.fleet.plugins.module_utils._fleet_groups import TPU_GROUP
from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_unit import (
    unit_names,
    unpullable_errors,
    workers_errors,
)


def worker_errors(workers, groups=None, profiles=None, tpu_group=TPU_GROUP):
    """Problems with a list of worker declarations (never shows env values)."""
    return workers_errors(workers, list(groups or []), profiles, tpu_group)


def worker_unpullable(workers, missing_images, default_pull="missing", host="this host"):
    """Workers whose image is missing on the host and may not be pulled -> one line each (host, worker, image)."""
    return unpullable_errors(workers, missing_images, default_pull, host)


def worker_unit_name(name):
    return unit_names(name)["worker"]


class FilterModule:
    def filters(self):
        return {
            "worker_errors": worker_errors,
            "worker_unit_name": worker_unit_name,
            "worker_unpullable": worker_unpullable,
        }
