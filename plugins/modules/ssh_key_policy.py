#!/usr/bin/python
# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


DOCUMENTATION = r"""
module: ssh_key_policy
short_description: Check SSH public keys against a key policy, and private keys against their public half
description:
  - Parses every public key the way C(ssh-keygen -l) does (type, bits and SHA256 fingerprint read from the
    key data, not from the line's label) and checks it against O(policy).
  - Checks that each private key in O(private_keys) is an unencrypted OpenSSH key whose public half, read the
    way C(ssh-keygen -y) reads it, is the declared public key, and that the public key passes the policy.
  - Fails, naming each rejected key by user, position and comment with the reason, when any key is rejected.
    Writes nothing, so a play that runs it first writes nothing when a key is bad.
  - Private key content never appears in the result or in messages (the option is C(no_log)).
  - Parsing lives in C(plugins/module_utils/_ssh_keys.py).
version_added: 0.1.0
author:
  - fleetwarden maintainers (@fleetwarden)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads its arguments.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  authorized_keys:
    description: Users and the public keys (authorized_keys lines, options allowed) they should accept.
    type: list
    elements: dict
    default: []
    suboptions:
      user:
        description: The user, for messages.
        type: str
        required: true
      public_keys:
        description: authorized_keys lines.
        type: list
        elements: str
        default: []
      exclusive:
        description: Not used here; accepted so that the ssh_keys role passes its list unchanged.
        type: bool
  private_keys:
    description: Private keys to deploy, each with the public key it must match.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Where the key will be written, for messages.
        type: str
        required: true
      user:
        description: Not used here; accepted so that the ssh_keys role passes its list unchanged.
        type: str
      private_key:
        description:
          - The private key, in the OpenSSH format (C(-----BEGIN OPENSSH PRIVATE KEY-----)).
          - Never logged.
        type: str
        required: true
      public_key:
        description: The public key it must match, as one C(type base64 [comment]) line.
        type: str
        required: true
  policy:
    description:
      - Allowed key types and the minimum bits for each. A type that is not a key here is rejected.
      - Types are V(ed25519), V(ecdsa), V(rsa), V(dsa), V(ed25519-sk) and V(ecdsa-sk).
    type: dict
    default: {ed25519: 256, ecdsa: 256, rsa: 3072}
"""

EXAMPLES = r"""
- name: Reject keys the policy does not allow before any file is written
  fleetwarden.fleet.ssh_key_policy:
    authorized_keys:
      - user: root
        public_keys:
          - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ... alice@laptop
    private_keys:
      - path: /root/.ssh/ray_cluster
        private_key: "{{ vault_ray_cluster_private_key }}"
        public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK... ray-cluster
    policy: {ed25519: 256, ecdsa: 256, rsa: 3072}
"""

RETURN = r"""
keys:
  description: Every public key, parsed, with the policy's verdict.
  returned: always
  type: list
  elements: dict
  sample:
    - {user: root, index: 1, key_type: ssh-ed25519, type: ed25519, bits: 256, comment: alice@laptop,
       fingerprint: "SHA256:uVpEWqIWGUWtBqAkcTraUq5v+p7z5T4uFcrHtOwcP3s", allowed: true, reason: ""}
private_keys:
  description: Every private key's public half (never the private key), and whether it matches.
  returned: always
  type: list
  elements: dict
  sample:
    - {path: /root/.ssh/ray_cluster, type: ed25519, bits: 256, comment: ray-cluster, matches: true,
       fingerprint: "SHA256:uVpEWqIWGUWtBqAkcTraUq5v+p7z5T4uFcrHtOwcP3s", allowed: true, reason: ""}
rejected:
  description: One line per rejected key, as in the failure message.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._ssh_keys import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    DEFAULT_POLICY,
    KEY_FAMILIES,
    SshKeyError,
    check_key_pair,
    evaluate_policy,
    parse_public_key,
)


def _comment_of(line):
    """The comment of a line that could not be parsed, best effort, for the message."""
    parts = (line or "").split(None, 2)
    return parts[2].strip() if len(parts) > 2 else "no comment"


class KeyPolicy:
    def __init__(self, module):
        self.module = module
        self.policy = module.params["policy"]

    def check_public(self, user, index, line):
        try:
            parsed = parse_public_key(line)
        except SshKeyError as exc:
            return {"user": user, "index": index, "comment": _comment_of(line), "allowed": False,
                    "reason": "cannot parse the key: %s" % exc}
        allowed, reason = evaluate_policy(parsed, self.policy)
        return {"user": user, "index": index, "key_type": parsed["key_type"], "type": parsed["type"],
                "bits": parsed["bits"], "fingerprint": parsed["fingerprint"], "comment": parsed["comment"],
                "allowed": allowed, "reason": reason}

    def check_private(self, entry):
        result = {"path": entry["path"], "matches": False, "allowed": False}
        try:
            matches, public, private_fingerprint = check_key_pair(entry["private_key"], entry["public_key"])
        except SshKeyError as exc:
            result.update(comment=_comment_of(entry["public_key"]), reason=str(exc))
            return result
        allowed, reason = evaluate_policy(public, self.policy)
        result.update(type=public["type"], bits=public["bits"], fingerprint=public["fingerprint"],
                      comment=public["comment"], matches=matches, allowed=allowed and matches, reason=reason)
        if not matches:
            result["reason"] = ("the private key's public half (%s) is not the declared public key (%s)"
                                % (private_fingerprint, public["fingerprint"]))
        return result

    def run(self):
        unknown = sorted(set(self.policy) - set(KEY_FAMILIES))
        if unknown:
            self.module.fail_json(msg="policy: unknown key types %s (known: %s)"
                                  % (", ".join(unknown), ", ".join(KEY_FAMILIES)))
        keys = []
        for entry in self.module.params["authorized_keys"]:
            for index, line in enumerate(entry["public_keys"], start=1):
                keys.append(self.check_public(entry["user"], index, line))
        private_keys = [self.check_private(entry) for entry in self.module.params["private_keys"]]
        rejected = ["user %s key %d (%s): %s" % (key["user"], key["index"], key["comment"] or "no comment",
                                                 key["reason"])
                    for key in keys if not key["allowed"]]
        rejected += ["private key %s (%s): %s" % (key["path"], key["comment"] or "no comment", key["reason"])
                     for key in private_keys if not key["allowed"]]
        result = dict(changed=False, keys=keys, private_keys=private_keys, rejected=rejected)
        if rejected:
            self.module.fail_json(msg="rejected by the SSH key policy, nothing was written: " + "; ".join(rejected),
                                  **result)
        return result


def main():
    argument_spec = dict(
        authorized_keys=dict(type="list", elements="dict", default=[], no_log=False, options=dict(
            user=dict(type="str", required=True),
            public_keys=dict(type="list", elements="str", default=[], no_log=False),
            exclusive=dict(type="bool"),
        )),
        private_keys=dict(type="list", elements="dict", default=[], no_log=False, options=dict(
            path=dict(type="str", required=True),
            user=dict(type="str"),
            private_key=dict(type="str", required=True, no_log=True),
            public_key=dict(type="str", required=True, no_log=False),
        )),
        policy=dict(type="dict", default=dict(DEFAULT_POLICY)),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    module.exit_json(**KeyPolicy(module).run())


if __name__ == "__main__":
    main()
