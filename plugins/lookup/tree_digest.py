"""Lookup plugin: one SHA-256 over the files under some paths on the controller (names and content)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: tree_digest
short_description: A digest of the files under paths on the controller
description:
  - Returns one SHA-256 (hex) over every regular file under the given paths, walked in sorted order, each file's
    path relative to O(root) and its content. Any added, removed, renamed or edited file changes it.
  - Directories named in O(exclude) (such as C(__pycache__)) are skipped.
  - Lets a task that builds something from a source tree on the controller run only when the tree changed.
options:
  _terms:
    description: Paths relative to O(root), files or directories.
    required: true
  root:
    description: The directory the paths are relative to.
    type: path
    required: true
  exclude:
    description: Directory names to skip wherever they occur.
    type: list
    elements: str
    default: [__pycache__, .mypy_cache, .pytest_cache]
"""

RETURN = r"""
_raw:
  description: The digest, one hex string.
  type: list
  elements: str
"""

import hashlib  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import os  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)

from ansible.errors import AnsibleLookupError  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible.plugins.lookup import LookupBase  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)


def tree_digest(root: str, paths: list[str], exclude=("__pycache__",)) -> str:
    """SHA-256 over (relative name, content) of every regular file under `paths` (relative to `root`), sorted."""
    files = []
    for path in paths:
        full = os.path.join(root, path)
        if os.path.isfile(full):
            files.append(path)
        elif os.path.isdir(full):
            for directory, subdirs, names in os.walk(full):
                subdirs[:] = [name for name in subdirs if name not in exclude]
                files += [os.path.relpath(os.path.join(directory, name), root) for name in names
                          if os.path.isfile(os.path.join(directory, name))]
        else:
            raise FileNotFoundError(full)
    digest = hashlib.sha256()
    for name in sorted(set(files)):
        with open(os.path.join(root, name), "rb") as handle:
            content = handle.read()
        digest.update(f"{name}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        try:
            return [tree_digest(self.get_option("root"), list(terms), tuple(self.get_option("exclude")))]
        except OSError as exc:
            raise AnsibleLookupError(f"tree_digest: cannot read {exc.filename or exc}: {exc.strerror or exc}") from exc
