#!/usr/bin/python
# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


DOCUMENTATION = r"""
module: file_set
short_description: Converge a role's directories and files in one module call
description:
  - Makes each of O(directories) exist and each of O(files) hold the content whose SHA-1 is given, each with its
    mode, owner and group. Where a role used a copy or template task per file (two remote calls each, a stat then
    the write or the attributes), this is one call when nothing changes.
  - Call it through the action plugin of the same name, which resolves and renders the files on the controller,
    sends only their checksums first, and transfers the content of just the files that differ in a second call.
  - Every entry is checked before anything on the host changes. Files are written atomically (a temporary file
    renamed over the old one).
  - Not for secrets, since C(--diff) shows a text file's old and new content. Files that carry secrets are
    written by the module that owns them (M(fleetwarden.fleet.worker_unit) for env files).
version_added: 0.1.0
author:
  - fleetwarden maintainers (@fleetwarden)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what would change, writing nothing.
  diff_mode:
    support: full
    details: The action plugin shows the old and new content of each changed text file up to 64 KiB.
  platform:
    platforms: posix
options:
  directories:
    description: Directories to create (with their parents) and give these attributes, before any file.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      mode:
        description: Octal mode, as a string.
        type: str
        required: true
      owner:
        description: Owner; unchanged when not given.
        type: str
      group:
        description: Group; unchanged when not given.
        type: str
  files:
    description: Files and the content they must hold.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Absolute path.
        type: path
        required: true
      checksum:
        description: SHA-1 of the content, hex.
        type: str
        required: true
      mode:
        description: Octal mode, as a string.
        type: str
        required: true
      owner:
        description: Owner; unchanged when not given.
        type: str
      group:
        description: Group; unchanged when not given.
        type: str
      validate:
        description:
          - A command run on the new content before it replaces the file, with C(%s) standing for its path; the
            file is left as it was when the command fails. Runs only when the content differs.
        type: str
      src:
        description:
          - A file on the host that holds the new content (the action plugin's transfer), moved into place when
            the content differs. Without it, a file whose content differs is listed in RV(content_needed).
        type: path
"""

EXAMPLES = r"""
- name: Install the collector and its parsers
  fleetwarden.fleet.file_set:
    directories:
      - {path: /usr/local/lib/fleetwarden, mode: "0755", owner: root, group: root}
    files:
      - {src: fleetwarden_metrics.py, dest: /usr/local/lib/fleetwarden/fleetwarden_metrics.py, mode: "0755"}
      - {template: collector.service.j2, dest: /etc/systemd/system/collector.service, mode: "0644"}
      - {content: "{{ settings | to_nice_json }}", dest: /etc/fleetwarden/collector.json, mode: "0644"}
  notify: Restart the collector
"""

RETURN = r"""
changed_paths:
  description: Directories and files that were (or in check mode would be) created, written or given new attributes.
  returned: always
  type: list
  elements: str
checksums:
  description: The SHA-1 of each file's content, by path (added by the action plugin).
  returned: always
  type: dict
content_needed:
  description: Files whose content differs and for which no O(files[].src) was given.
  returned: always
  type: list
  elements: str
before:
  description: With C(--diff), the current content of each file in RV(content_needed) that is UTF-8 text up to 64 KiB.
  returned: when diff mode is on
  type: dict
"""

import os  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import stat  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)

DIFF_LIMIT = 64 * 1024


def entry_errors(directories, files):
    """Problems with the entries, each naming its field; empty when all are usable."""
    errors = []
    for kind, entries, key in (("directories", directories, "path"), ("files", files, "dest")):
        for index, entry in enumerate(entries):
            path = entry.get(key) or ""
            if not os.path.isabs(path):
                errors.append("%s[%d].%s must be an absolute path, got %r" % (kind, index, key, path))
            mode = entry.get("mode") or ""
            if not (isinstance(mode, str) and mode.isdigit() and set(mode) <= set("01234567") and len(mode) in (3, 4)):
                errors.append("%s[%d].mode must be an octal string such as '0644', got %r" % (kind, index, mode))
    for index, entry in enumerate(files):
        checksum = entry.get("checksum") or ""
        if len(checksum) != 40 or not all(c in "0123456789abcdef" for c in checksum):
            errors.append("files[%d].checksum must be a SHA-1 in hex" % index)
    dests = [entry.get("dest") for entry in files]
    for dest in sorted(set(d for d in dests if dests.count(d) > 1)):
        errors.append("files: %s is listed more than once" % dest)
    return errors


def read_before(path):
    """The file's text for a diff, or None when it is absent, not UTF-8 or larger than DIFF_LIMIT."""
    try:
        if os.path.getsize(path) > DIFF_LIMIT:
            return None
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def file_args(entry, path):
    return {"path": path, "mode": entry["mode"], "owner": entry.get("owner"), "group": entry.get("group"),
            "secontext": [None, None, None], "attributes": None}


def converge_directory(module, entry, changed_paths):
    path = entry["path"]
    created = False
    if not os.path.lexists(path):
        created = True
        if not module.check_mode:
            os.makedirs(path)
    elif not os.path.isdir(path):
        module.fail_json(msg="%s exists and is not a directory" % path)
    if created and module.check_mode:
        changed_paths.append(path)
        return
    if module.set_fs_attributes_if_different(file_args(entry, path), False) or created:
        changed_paths.append(path)


def write_file(module, entry):
    """Moves the content sent (``src``, checked against its checksum) into place, after its validate command."""
    dest = entry["dest"]
    if module.sha1(entry["src"]) != entry["checksum"]:
        module.fail_json(msg="the content sent for %s does not match its checksum" % dest)
    if module.check_mode:
        return
    if entry.get("validate"):
        if "%s" not in entry["validate"]:
            module.fail_json(msg="validate for %s must contain %%s" % dest)
        rc, out, err = module.run_command(entry["validate"] % entry["src"])
        if rc != 0:
            module.fail_json(msg="%s: validation failed (%s): %s" % (dest, rc, (err or out).strip()),
                             rc=rc, stdout=out, stderr=err)
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        module.fail_json(msg="%s: its directory %s does not exist" % (dest, parent))
    module.atomic_move(entry["src"], dest)


def converge_file(module, entry, changed_paths, content_needed, before):
    dest = entry["dest"]
    exists = os.path.lexists(dest)
    if exists and stat.S_ISDIR(os.lstat(dest).st_mode):
        module.fail_json(msg="%s is a directory, not a file" % dest)
    same = exists and os.path.isfile(dest) and module.sha1(dest) == entry["checksum"]
    if not same:
        if entry.get("src") is None:
            content_needed.append(dest)
            if module._diff:
                before[dest] = read_before(dest) if exists else ""
            if module.check_mode:
                changed_paths.append(dest)
            return
        write_file(module, entry)
        changed_paths.append(dest)
        if module.check_mode:
            return
    elif module.check_mode and not exists:
        changed_paths.append(dest)
        return
    if module.set_fs_attributes_if_different(file_args(entry, dest), False) and dest not in changed_paths:
        changed_paths.append(dest)


def converge(module, directories, files):
    """Applies the entries (check mode aware); returns (changed_paths, content_needed, before)."""
    changed_paths, content_needed, before = [], [], {}
    for entry in directories:
        converge_directory(module, entry, changed_paths)
    for entry in files:
        converge_file(module, entry, changed_paths, content_needed, before)
    return changed_paths, content_needed, before


def main():
    owner_group = {"owner": {"type": "str"}, "group": {"type": "str"}}
    module = AnsibleModule(
        argument_spec={
            "directories": {"type": "list", "elements": "dict", "default": [], "options": {
                "path": {"type": "path", "required": True}, "mode": {"type": "str", "required": True},
                **owner_group}},
            "files": {"type": "list", "elements": "dict", "default": [], "options": {
                "dest": {"type": "path", "required": True}, "checksum": {"type": "str", "required": True},
                "mode": {"type": "str", "required": True}, "src": {"type": "path"}, "validate": {"type": "str"},
                **owner_group}},
        },
        supports_check_mode=True,
    )
    directories, files = module.params["directories"], module.params["files"]
    errors = entry_errors(directories, files)
    if errors:
        module.fail_json(msg="file_set: " + "; ".join(errors), errors=errors)
    changed_paths, content_needed, before = converge(module, directories, files)
    result = {"changed": bool(changed_paths), "changed_paths": changed_paths, "content_needed": content_needed}
    if module._diff:
        result["before"] = before
    module.exit_json(**result)


if __name__ == "__main__":
    main()
