"""Action plugin: validate every play host's fleet configuration before any host changes."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._fleet_schema import (
    DERIVED,
    WORKER_VARS,
    load_schema,
    validate_fleet,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("hosts",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        names = self._task.args.get("hosts") or task_vars.get("ansible_play_hosts_all", [])
        try:
            schema = load_schema()
        except (OSError, ValueError) as exc:
            raise AnsibleActionFail(f"cannot read the fleet schema: {exc}") from exc
        # Only the variables the schema speaks of are templated, so unrelated
        # undefined variables elsewhere do not matter here.
        wanted = [key for key in schema.get("properties", {}) if key not in DERIVED] + list(WORKER_VARS)
        hostvars = task_vars["hostvars"]
        hosts = {}
        for name in names:
            vars_ = hostvars[name]
            hosts[name] = ({key: vars_[key] for key in wanted if key in vars_}, list(vars_.get("group_names", [])))
        groups = {g: list(h) for g, h in (task_vars.get("groups") or {}).items() if g not in ("all", "ungrouped")}
        problems = validate_fleet(schema, hosts, groups)
        result.update(changed=False, checked=len(hosts), problems=problems)
        if problems:
            lines = [f"{host}: {problem}" for host, items in problems.items() for problem in items]
            result["failed"] = True
            result["msg"] = "the fleet configuration is invalid; nothing was changed:\n" + "\n".join(lines)
        return result
