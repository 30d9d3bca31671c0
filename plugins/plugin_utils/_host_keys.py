# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""SSH host keys pinned from the cloud: guest attributes `hostkeys/` to known_hosts lines; controller-only.

Compute Engine's guest agent publishes a VM's host public keys as guest attributes in namespace `hostkeys`
(key: the key type, value: the base64 key blob); TPU VMs do the same per worker (`nodes.getGuestAttributes`).
The lab's cloud stand-in serves them the same way. Pure functions: what the cloud says becomes the only
accepted key for a host (no accept-new, no StrictHostKeyChecking=no), a recreated host's new keys replace
the old ones with the change reported, and a key the cloud did not publish is refused with a clear error.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import re
import struct

KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
NAMESPACE = "hostkeys"
QUERY_PATH = "hostkeys/"
ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


class HostKeyError(Exception):
    """A host key the cloud published that cannot be used, or a key that does not match what the cloud says."""


def _blob_type(blob):
    """The key type written inside an OpenSSH public key blob, or None for anything that is not one."""
    try:
        raw = base64.b64decode(blob, validate=True)
        (length,) = struct.unpack(">I", raw[:4])
        return raw[4 : 4 + length].decode("ascii") if 0 < length <= 64 and len(raw) > 4 + length else None
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError):
        return None


def checked_key(key_type, blob, host):
    """(type, blob) when the blob is a well-formed key of that type; HostKeyError otherwise.

    Guest attributes are written by whoever controls the VM: a value with a space or a newline could add
    lines to known_hosts, so a value is accepted only when it decodes to a key of the type it claims.
    """
    if key_type not in KEY_TYPES:
        raise HostKeyError("%s: the cloud published a host key of unknown type %r" % (host, key_type))
    if not isinstance(blob, str) or _blob_type(blob) != key_type:
        raise HostKeyError(
            "%s: the cloud published a %s host key that is not a valid key of that type" % (host, key_type)
        )
    return key_type, blob


def keys_from_guest_attributes(attributes, host):
    """{type: blob} from one host's guest attributes: Compute Engine's GuestAttributes answer, or one entry of
    a TPU node's `guestAttributes` list (both have queryValue.items). HostKeyError when it holds no key."""
    items = ((attributes or {}).get("queryValue") or {}).get("items") or []
    keys = {}
    for item in items:
        if item.get("namespace") == NAMESPACE:
            key_type, blob = checked_key(item.get("key"), item.get("value"), host)
            keys[key_type] = blob
    if not keys:
        raise HostKeyError("%s: the cloud publishes no SSH host key for it (guest attributes %s are empty; "
                           "is the guest agent running, or the VM still booting?)" % (host, QUERY_PATH))
    return keys


def known_hosts_lines(alias, keys):
    """known_hosts lines for `alias` (used with HostKeyAlias, so an address that changes does not matter)."""
    if not ALIAS_RE.match(alias or ""):
        raise HostKeyError("%r cannot be a known_hosts host name" % (alias,))
    return ["%s %s %s" % (alias, key_type, keys[key_type]) for key_type in KEY_TYPES if key_type in keys]


def pin(known_hosts_text, alias, keys):
    """(new known_hosts text, change) with `alias`'s lines replaced by `keys`.

    change is "added" (no key was pinned), "replaced" (a recreated host: other keys than before, to be logged)
    or "unchanged". Lines of other hosts are kept as they are.
    """
    lines = (known_hosts_text or "").splitlines()
    old = sorted(line for line in lines if line.split(" ", 1)[0] == alias)
    kept = [line for line in lines if line.split(" ", 1)[0] != alias]
    new = known_hosts_lines(alias, keys)
    change = "added" if not old else "unchanged" if old == sorted(new) else "replaced"
    return "\n".join(kept + new) + "\n", change


def verify(keys, alias, offered_type, offered_blob):
    """Nothing when the key a host offers is one the cloud published for it; HostKeyError saying so otherwise."""
    if keys.get(offered_type) == offered_blob:
        return
    raise HostKeyError(
        "%s offered a %s host key that the cloud does not publish for it (guest attributes %s list %s): "
        "the connection is refused. If the host was recreated, refresh the pinned keys from the cloud; "
        "otherwise something else answers at its address."
        % (alias, offered_type, QUERY_PATH, ", ".join(sorted(keys)) or "none")
    )
