# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters for the recovery receiver role.

- ``fleetwarden.fleet.receiver_inventory``: host names -> the inventory (as data) the receiver uses on the
  controller host: each host at its fleet address, host keys pinned by name, the same groups.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

SKIP_GROUPS = ("all", "ungrouped")
# Never carried: the receiver's own settings hold its token and key.
NEVER_CARRIED = ("recovery_receiver_", "ansible_", "vault_")


def receiver_inventory(hosts, hostvars, groups, address_var="ansible_host", port_var="ansible_port",
                       default_port=22, user="root", carry=(), key_file="", known_hosts_file="", carry_prefixes=()):
    """Inventory data for where the receiver runs; never copies connection settings meant for this machine.

    Host variables named in `carry`, or starting with one of `carry_prefixes`, are copied with their values as
    resolved here, so recover.yml on the controller sees the fleet's declarations; connection variables and
    the receiver's own (its token) never are."""
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
        for var in sorted(host.keys()):
            if var.startswith(NEVER_CARRIED) or not (var in carry or var.startswith(tuple(carry_prefixes))):
                continue
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
