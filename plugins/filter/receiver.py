# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters for the recovery receiver role.

- ``fleetwarden.fleet.receiver_inventory``: host names -> the inventory (as data) the receiver uses on the
  controller host: each host at its fleet address, host keys pinned by name, the same groups.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

SKIP_GROUPS = ("all", "ungrouped")


def receiver_inventory(hosts, hostvars, groups, address_var="ansible_host", port_var="ansible_port",
                       default_port=22, user="root", carry=(), key_file="", known_hosts_file=""):
    """Inventory data for where the receiver runs; never copies connection settings meant for this machine."""
    hosts = list(hosts)
    entries = {}
    for name in hosts:
        host = hostvars[name]
        address = host.get(address_var) or name
        port = host.get(port_var) if port_var else None
        entry = {
            "ansible_host": str(address),
            "ansible_port": int(port or default_port),
            "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o HostKeyAlias=%s"
                                       % (known_hosts_file, name),
        }
        for var in carry:
            if var in host:
                entry[var] = host[var]
        entries[name] = entry
    children = {}
    for group in sorted(groups):
        if group in SKIP_GROUPS:
            continue
        members = [name for name in groups[group] if name in entries]
        children[group] = {"hosts": dict((name, None) for name in members)}
    return {"all": {"vars": {"ansible_user": user, "ansible_ssh_private_key_file": key_file},
                    "hosts": entries, "children": children}}


class FilterModule:
    def filters(self):
        return {"receiver_inventory": receiver_inventory}
