"""Action plugin for fleetwarden.fleet.file_set: a role's files in one module call when nothing changes.

On the controller it resolves each file (``src`` from the role's files/, ``template`` rendered from its
templates/ with the task's variables, or inline ``content``) and hashes it. The first module call sends only the
checksums and the attributes: the host creates the directories, fixes attributes, and names the files whose
content differs. Only when some do, their content is transferred and a second call moves it into place.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

try:  # the variables the template action adds (ansible_managed, template_path, ...)
    from ansible._internal._templating import _template_vars
except ImportError:  # pragma: no cover - another ansible-core layout: templates then see the task's variables only
    _template_vars = None

MODULE = "fleetwarden.fleet.file_set"
SOURCES = ("src", "template", "content")
ATTRIBUTES = ("dest", "mode", "owner", "group", "validate")
DIRECTORY_KEYS = {"path", "mode", "owner", "group"}
DIFF_LIMIT = 64 * 1024


def expand_entries(files) -> list:
    """Each entry whose src is a list and whose dest ends in / becomes one entry per source, installed into that
    directory under its own name; other entries are kept as they are (pure)."""
    if not isinstance(files, list):
        return files
    expanded = []
    for index, entry in enumerate(files):
        if isinstance(entry, dict) and isinstance(entry.get("src"), list):
            if not str(entry.get("dest", "")).endswith("/"):
                raise AnsibleActionFail(f"file_set: files[{index}]: a list of src needs a dest ending in /")
            expanded += [entry | {"src": src, "dest": entry["dest"] + os.path.basename(src)} for src in entry["src"]]
        else:
            expanded.append(entry)
    return expanded


def check_entries(directories, files) -> list[str]:
    """Problems with the task's arguments, each naming its field (pure; the module re-checks paths and modes)."""
    errors = []
    if not isinstance(directories, list) or not isinstance(files, list):
        return ["directories and files must be lists"]
    for index, entry in enumerate(directories):
        if not isinstance(entry, dict) or "path" not in entry or "mode" not in entry:
            errors.append(f"directories[{index}] needs path and mode")
        elif set(entry) - DIRECTORY_KEYS:
            errors.append(f"directories[{index}] has unknown keys {sorted(set(entry) - DIRECTORY_KEYS)}")
    for index, entry in enumerate(files):
        if not isinstance(entry, dict):
            errors.append(f"files[{index}] must be a dict")
            continue
        given = [key for key in SOURCES if key in entry]
        if len(given) != 1:
            errors.append(f"files[{index}] needs exactly one of {', '.join(SOURCES)} (has {given or 'none'})")
        for key in ("dest", "mode"):
            if key not in entry:
                errors.append(f"files[{index}] needs {key}")
        unknown = set(entry) - set(SOURCES) - set(ATTRIBUTES)
        if unknown:
            errors.append(f"files[{index}] has unknown keys {sorted(unknown)}")
    for kind, entries in (("directories", directories), ("files", files)):
        for index, entry in enumerate(entries):
            mode = entry.get("mode") if isinstance(entry, dict) else None
            if mode is not None and not isinstance(mode, str):
                errors.append(f"{kind}[{index}].mode must be a quoted octal string such as '0644', got {mode!r}")
    return errors


def text_for_diff(data: bytes) -> str | None:
    if len(data) > DIFF_LIMIT:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class ActionModule(ActionBase):
    # The temporary directory is made only when some content must be sent.
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("directories", "files"))

    def _render(self, entry: dict, task_vars: dict) -> bytes:
        if "content" in entry:
            content = entry["content"]
            return to_bytes(content if isinstance(content, str) else to_text(content))
        kind = "files" if "src" in entry else "templates"
        try:
            path = self._find_needle(kind, entry.get("src") or entry["template"])
        except AnsibleError as exc:
            raise AnsibleActionFail(f"file_set: {entry['dest']}: {exc}") from exc
        if "src" in entry:
            with open(path, "rb") as handle:
                return handle.read()
        searchpath = [*task_vars.get("ansible_search_path", []), self._loader._basedir, os.path.dirname(path)]
        searchpath = [dirname for base in searchpath for dirname in (os.path.join(base, "templates"), base)]
        variables = dict(task_vars)
        if _template_vars is not None:
            variables.update(_template_vars.generate_ansible_template_vars(
                path=entry["template"], fullpath=path, dest_path=entry["dest"],
                include_ansible_managed="ansible_managed" not in variables))
        templar = self._templar.copy_with_new_env(searchpath=searchpath, available_variables=variables)
        rendered = templar.template(trust_as_template(self._loader.get_text_file_contents(path)),
                                    escape_backslashes=False)
        return to_bytes(rendered if rendered is not None else "")

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        directories = self._task.args.get("directories", [])
        files = expand_entries(self._task.args.get("files", []))
        errors = check_entries(directories, files)
        if errors:
            raise AnsibleActionFail("file_set: " + "; ".join(errors))
        contents, entries = {}, []
        for entry in files:
            data = self._render(entry, task_vars)
            contents[entry["dest"]] = data
            entries.append({key: entry[key] for key in ATTRIBUTES if key in entry}
                           | {"checksum": hashlib.sha1(data).hexdigest()})  # noqa: S324 - a content checksum, as copy's
        first = self._execute_module(MODULE, module_args={"directories": directories, "files": entries},
                                     task_vars=task_vars)
        if first.get("failed"):
            return result | first
        changed_paths = list(first.get("changed_paths", []))
        needed = first.get("content_needed", [])
        if needed and not self._task.check_mode:
            second = self._send(needed, contents, entries, task_vars)
            if second.get("failed"):
                return result | second
            changed_paths += [path for path in second.get("changed_paths", []) if path not in changed_paths]
        result.update(changed=bool(changed_paths), changed_paths=changed_paths,
                      checksums={entry["dest"]: entry["checksum"] for entry in entries})
        if self._task.diff and needed:
            before = first.get("before", {})
            result["diff"] = [{"before_header": dest, "after_header": dest,
                               "before": before.get(dest) if before.get(dest) is not None else "(not shown)\n",
                               "after": text_for_diff(contents[dest]) or "(binary or larger than 64 KiB)\n"}
                              for dest in needed]
        return result

    def _send(self, needed: list[str], contents: dict, entries: list[dict], task_vars: dict) -> dict:
        """Transfers the content of the files in `needed` and moves it into place with a second module call."""
        remote_tmp = self._make_tmp_path()
        try:
            sent, remote_paths = [], []
            with tempfile.TemporaryDirectory(prefix="fleetwarden-file-set-") as local_tmp:
                for number, entry in enumerate(entry for entry in entries if entry["dest"] in needed):
                    local = os.path.join(local_tmp, str(number))
                    with open(local, "wb") as handle:
                        handle.write(contents[entry["dest"]])
                    remote = self._connection._shell.join_path(remote_tmp, f"content-{number}")
                    self._transfer_file(local, remote)
                    remote_paths.append(remote)
                    sent.append(entry | {"src": remote})
            self._fixup_perms2([remote_tmp, *remote_paths], execute=False)
            return self._execute_module(MODULE, module_args={"directories": [], "files": sent}, task_vars=task_vars)
        finally:
            self._remove_tmp_path(remote_tmp)
