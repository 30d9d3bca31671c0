# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure helpers for writing systemd units from data.

- ``systemd_quote`` / ``systemd_exec_line``: an argv as an ``ExecStart=`` value that systemd splits back into
  exactly that argv: no shell, no word splitting surprises, no ``%`` specifier or ``$VAR`` expansion.
- ``systemd_escape`` / ``systemd_escape_path``: what ``systemd-escape [--path]`` prints, for unit names.

Runs on managed hosts and the controller: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import posixpath
import re

# Words made only of these need no quotes in an Exec line (and read better without).
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_@+=:,./-]+$")
_C_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\a": "\\a", "\b": "\\b",
              "\f": "\\f", "\v": "\\v"}
# systemd-escape leaves these unescaped (unit_name_escape's VALID_CHARS minus "-" and "\").
_ESCAPE_KEEP = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:_.")


def systemd_quote(word):
    """One argv element as an Exec line word that systemd reads back as exactly ``word``.

    ``%`` becomes ``%%`` (specifiers) and ``$`` becomes ``$$`` (environment expansion), in and out of quotes.
    """
    if not isinstance(word, str):
        raise TypeError("argv elements must be strings, got %s" % type(word).__name__)
    if "\x00" in word:
        raise ValueError("an argv element cannot contain a NUL byte")
    if _PLAIN_WORD.match(word):
        return word
    out = []
    for char in word:
        if char in _C_ESCAPES:
            out.append(_C_ESCAPES[char])
        elif char == "%":
            out.append("%%")
        elif char == "$":
            out.append("$$")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append("\\x%02x" % ord(char))
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def systemd_exec_line(argv):
    """An ``ExecStart=`` value for ``argv``. The executable must be an absolute path.

    An absolute path also keeps systemd's prefixes (``-``, ``@``, ``+``, ``!``, ``:``) from reading its first
    character as a flag.
    """
    argv = list(argv)
    if not argv or not isinstance(argv[0], str) or not argv[0].startswith("/"):
        raise ValueError("the executable must be an absolute path, got %r" % (argv[0] if argv else None,))
    return " ".join(systemd_quote(word) for word in argv)


def systemd_escape(text):
    """``systemd-escape TEXT``: "/" becomes "-", a leading "." and anything but [A-Za-z0-9:_.] become \\xNN."""
    out = []
    for index, byte in enumerate(text.encode("utf-8")):
        char = chr(byte)
        if char == "/":
            out.append("-")
        elif (index == 0 and char == ".") or char not in _ESCAPE_KEEP:
            out.append("\\x%02x" % byte)
        else:
            out.append(char)
    return "".join(out)


def systemd_escape_path(path):
    """``systemd-escape --path PATH``: the path is simplified first; "/" is "-". Raises ValueError for ".."."""
    if not isinstance(path, str) or not path:
        raise ValueError("a path is required")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError("path %r is not normalized (contains ..)" % path)
    if not parts:
        return "-"
    return systemd_escape("/".join(parts))


def normalize_path(path):
    """``path`` with duplicate and trailing slashes and "." removed, as systemd compares mount points."""
    normalized = posixpath.normpath(path)
    return "/" + normalized.lstrip("/") if normalized.startswith("/") else normalized


def parse_systemctl_show_units(text):
    """{unit id: {property: value}} from ``systemctl show --property=Id,... UNIT...`` (a blank line between units)."""
    units, block = {}, {}
    for line in [*(text or "").splitlines(), ""]:
        if not line.strip():
            if block.get("Id"):
                units[block["Id"]] = block
            block = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            block[key] = value
    return units
