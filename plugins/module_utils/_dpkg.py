"""dpkg's package database as package_facts reports it: the parser the installed_packages module uses.

Pure functions over the output of DPKG_QUERY_ARGV, so that they are unit-tested without a host.
"""

from __future__ import annotations

# Tab-separated: status abbreviation (want, state, error), name, version, architecture.
DPKG_QUERY_ARGV = ["dpkg-query", "--show", "--showformat",
                   "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"]

# dpkg's current states (the status abbreviation's second letter) in which the package's files are on the host
# and configured: installed, and installed with triggers awaited or pending. Not: not-installed (n), config-files
# only (c), half-installed (H), unpacked (U) and half-configured (F), which apt would still have to finish.
INSTALLED_STATES = frozenset("iWt")


def installed_packages(output: str) -> dict[str, list[dict[str, str]]]:
    """{name: [{name, version, arch, source}]} for each installed package, the shape package_facts gives
    (one entry per architecture of a multi-arch package)."""
    packages: dict[str, list[dict[str, str]]] = {}
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) != 4:
            continue
        status, name, version, arch = fields
        if len(status) < 2 or status[1] not in INSTALLED_STATES or not name:
            continue
        packages.setdefault(name, []).append({"name": name, "version": version, "arch": arch, "source": "apt"})
    return packages
