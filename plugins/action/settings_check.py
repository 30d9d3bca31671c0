"""Action plugin: a role's settings checks in one task, every failing check's message in one answer.

Each check is an assert (conditions that must all hold, a message naming the field) with its own optional `when`.
A role that ran one assert task per check paid Ansible's per-task cost for each on every host and run (about
0.13 s a task on the 3-host lab); here the checks share one task, and a bad configuration hears of every
field at once instead of one per run.
"""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

CHECK_KEYS = frozenset(("that", "msg", "when"))


def conditions(value: t.Any, where: str) -> list[str]:
    """A check's `that` or `when` as a list of condition strings."""
    items = value if isinstance(value, list) else [value]
    if not items or any(not isinstance(item, str) or not item.strip() for item in items):
        raise AnsibleActionFail(f"{where} must be a condition or a list of conditions (strings)")
    return items


def check_entries(checks: t.Any) -> list[str]:
    """Problems with the `checks` argument itself, each naming its entry (empty: usable)."""
    if not isinstance(checks, list) or not checks:
        return ["checks must be a non-empty list of {that, msg[, when]}"]
    problems = []
    for number, check in enumerate(checks):
        if not isinstance(check, dict):
            problems.append(f"checks[{number}] must be a mapping of that, msg and when")
            continue
        unknown = sorted(set(check) - CHECK_KEYS)
        if unknown:
            problems.append(f"checks[{number}] has unknown keys {unknown}")
        if "that" not in check or not isinstance(check.get("msg"), str) or not check["msg"].strip():
            problems.append(f"checks[{number}] needs that and a msg (a string)")
    return problems


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("checks",))

    @classmethod
    def finalize_task_arg(cls, name: str, value: t.Any, templar: t.Any, context: t.Any) -> t.Any:
        # The checks stay as written: run() evaluates each when and that as a conditional, in order, and
        # templates a message only when its check fails (a message may name what only a failure defines).
        if name == "checks":
            return value
        return super().finalize_task_arg(name, value, templar, context)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        checks = self._task.args.get("checks")
        problems = check_entries(checks)
        if problems:
            raise AnsibleActionFail("settings_check: " + "; ".join(problems))
        failures, skipped = [], 0
        for number, check in enumerate(checks):
            when = check.get("when")
            if when is not None and not all(self._templar.evaluate_conditional(conditional=c)
                                            for c in conditions(when, f"checks[{number}].when")):
                skipped += 1
                continue
            if not all(self._templar.evaluate_conditional(conditional=c)
                       for c in conditions(check["that"], f"checks[{number}].that")):
                failures.append(str(self._templar.template(check["msg"])).strip())
        result.update(changed=False, checked=len(checks) - skipped, failures=failures)
        if failures:
            result["failed"] = True
            result["msg"] = "\n".join(failures)
        else:
            result["msg"] = "All checks passed"
        return result
