#!/usr/bin/python
# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


DOCUMENTATION = r"""
module: installed_packages
short_description: The installed Debian packages, as package_facts reports them, from dpkg's database
description:
  - Returns C(ansible_facts.packages) in the shape M(ansible.builtin.package_facts) gives with its apt manager,
    each installed package's name, version, architecture and source C(apt).
  - Reads dpkg's status database with one C(dpkg-query) instead of loading apt's package cache through python3-apt,
    which took about 1 s per host here against about 0.1 s (docs/benchmarks.md). The roles read it only to
    decide whether apt has anything to install.
  - Installed means dpkg's current state is installed (or installed with triggers awaited or pending); packages
    left half-installed, unpacked, half-configured or with only their configuration files are not listed, so the
    roles hand them to apt.
  - Read-only. Parsing lives in C(plugins/module_utils/_dpkg.py).
version_added: 0.1.0
author:
  - fleetwarden maintainers (@fleetwarden)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: debian
options: {}
requirements:
  - dpkg-query (Debian and Ubuntu)
"""

EXAMPLES = r"""
- name: Read which packages are installed
  fleetwarden.fleet.installed_packages:

- name: Install what is missing
  ansible.builtin.apt:
    name: "{{ ['curl', 'jq'] | difference(ansible_facts.packages.keys()) }}"
  when: "['curl', 'jq'] | difference(ansible_facts.packages.keys()) | length > 0"
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: complex
  contains:
    packages:
      description: Each installed package's name, mapped to one entry per installed architecture.
      returned: always
      type: dict
      sample: {"jq": [{"name": "jq", "version": "1.6-2.1", "arch": "amd64", "source": "apt"}]}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._dpkg import DPKG_QUERY_ARGV, installed_packages  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    rc, out, err = module.run_command(DPKG_QUERY_ARGV, environ_update={"LC_ALL": "C"})
    if rc != 0:
        module.fail_json(msg="dpkg-query could not read the package database: %s" % (err.strip() or "rc=%d" % rc),
                         rc=rc)
    module.exit_json(changed=False, ansible_facts={"packages": installed_packages(out)})


if __name__ == "__main__":
    main()
