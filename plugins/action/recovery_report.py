"""Action plugin: write the recovery role's report files on the controller, with no module run."""

from __future__ import annotations

import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

DIR_MODE = 0o750
FILE_MODE = 0o640


def write_report_files(files) -> list[str]:
    """Writes each {dest, content} (absolute dest, str content) atomically with FILE_MODE, its directory made with
    DIR_MODE; checks every entry before writing any. Returns the paths written."""
    if not isinstance(files, list) or not files:
        raise ValueError("files must be a non-empty list of {dest, content}")
    for index, entry in enumerate(files):
        if not isinstance(entry, dict) or set(entry) != {"dest", "content"}:
            raise ValueError(f"files[{index}] must have exactly the keys dest and content")
        if not isinstance(entry["dest"], str) or not os.path.isabs(entry["dest"]):
            raise ValueError(f"files[{index}].dest must be an absolute path, got {entry['dest']!r}")
        if not isinstance(entry["content"], str):
            raise ValueError(f"files[{index}].content must be a string")
    written = []
    for entry in files:
        directory = os.path.dirname(entry["dest"])
        os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".report-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(entry["content"])
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, entry["dest"])
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        written.append(entry["dest"])
    return written


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("files",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        try:
            written = write_report_files(self._task.args.get("files"))
        except ValueError as exc:
            raise AnsibleActionFail(f"recovery_report: {exc}") from exc
        except OSError as exc:
            raise AnsibleActionFail(f"recovery_report: cannot write the report: {exc}") from exc
        result.update(changed=False, files=written)
        return result
