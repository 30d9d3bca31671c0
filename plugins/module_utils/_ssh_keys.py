# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure parsing of OpenSSH keys and the key policy.

- Public keys (authorized_keys lines): type, bits and SHA256 fingerprint, read from the key blob the way
  ``ssh-keygen -l`` reads them, so a line whose declared type disagrees with its blob is caught.
- Private keys in the OpenSSH format: the public half, taken from the private section the way
  ``ssh-keygen -y`` takes it, without ever putting key material into a message.

Runs on managed hosts: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import re
import struct

# SSH key type name -> (policy family, label ssh-keygen -l prints, fixed bit size or None)
KEY_TYPES = {
    "ssh-ed25519": ("ed25519", "ED25519", 256),
    "ecdsa-sha2-nistp256": ("ecdsa", "ECDSA", 256),
    "ecdsa-sha2-nistp384": ("ecdsa", "ECDSA", 384),
    "ecdsa-sha2-nistp521": ("ecdsa", "ECDSA", 521),
    "ssh-rsa": ("rsa", "RSA", None),
    "ssh-dss": ("dsa", "DSA", None),
    "sk-ssh-ed25519@openssh.com": ("ed25519-sk", "ED25519-SK", 256),
    "sk-ecdsa-sha2-nistp256@openssh.com": ("ecdsa-sk", "ECDSA-SK", 256),
}
KEY_FAMILIES = ("dsa", "ecdsa", "ecdsa-sk", "ed25519", "ed25519-sk", "rsa")
DEFAULT_POLICY = {"ed25519": 256, "ecdsa": 256, "rsa": 3072}

_EC_COORD_BYTES = {"nistp256": 32, "nistp384": 48, "nistp521": 66}
_PRIVATE_ARMOR = re.compile(
    r"-----BEGIN OPENSSH PRIVATE KEY-----\s*(.*?)\s*-----END OPENSSH PRIVATE KEY-----", re.S)
_OTHER_ARMOR = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----")
_OPENSSH_MAGIC = b"openssh-key-v1\x00"


class SshKeyError(ValueError):
    """A key that cannot be parsed. The message never contains key material, and it is raised
    ``from None``: a chained cause could quote the data."""


class _Reader:
    """SSH wire format (RFC 4251): uint32, string, mpint."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def uint32(self):
        if self.pos + 4 > len(self.data):
            raise SshKeyError("truncated key data")
        (value,) = struct.unpack(">I", self.data[self.pos:self.pos + 4])
        self.pos += 4
        return value

    def string(self):
        length = self.uint32()
        if self.pos + length > len(self.data):
            raise SshKeyError("truncated key data")
        value = self.data[self.pos:self.pos + length]
        self.pos += length
        return value

    def text(self):
        try:
            return self.string().decode("ascii")
        except UnicodeDecodeError:
            raise SshKeyError("a key field that should be a name is not ASCII") from None

    def mpint(self):
        return int(binascii.hexlify(self.string()) or b"0", 16)

    def byte(self):
        if self.pos >= len(self.data):
            raise SshKeyError("truncated key data")
        self.pos += 1
        return self.data[self.pos - 1]

    def done(self):
        return self.pos == len(self.data)


def _wire_string(data):
    return struct.pack(">I", len(data)) + data


def _wire_mpint(value):
    if value == 0:
        return _wire_string(b"")
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    if raw[0] & 0x80:  # a leading zero byte keeps a positive number positive
        raw = b"\x00" + raw
    return _wire_string(raw)


def fingerprint_sha256(blob):
    """The fingerprint ssh-keygen -l prints by default: SHA256: and unpadded base64 of the blob's digest."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def describe_blob(blob):
    """Type name, policy family, label and bits of a public key blob. Raises SshKeyError."""
    reader = _Reader(blob)
    key_type = reader.text()
    if key_type.endswith("-cert-v01@openssh.com"):
        raise SshKeyError("certificates (%s) are not supported; list the plain key" % key_type)
    if key_type not in KEY_TYPES:
        raise SshKeyError("unknown key type %s" % key_type)
    family, label, bits = KEY_TYPES[key_type]
    if family in ("ed25519", "ed25519-sk"):
        if len(reader.string()) != 32:
            raise SshKeyError("an Ed25519 public key must be 32 bytes")
    elif family in ("ecdsa", "ecdsa-sk"):
        curve = reader.text()
        if key_type.split("-")[-1].split("@")[0] != curve:
            raise SshKeyError("curve %s does not match key type %s" % (curve, key_type))
        point = reader.string()
        if len(point) != 1 + 2 * _EC_COORD_BYTES[curve] or point[0:1] != b"\x04":
            raise SshKeyError("the ECDSA point is not an uncompressed point on %s" % curve)
    elif family == "rsa":
        exponent, modulus = reader.mpint(), reader.mpint()
        if exponent < 3 or modulus <= 0:
            raise SshKeyError("the RSA exponent or modulus is invalid")
        bits = modulus.bit_length()
    elif family == "dsa":
        prime = reader.mpint()
        for _field in range(3):
            reader.mpint()
        bits = prime.bit_length()
    if family.endswith("-sk"):
        reader.string()  # application, usually "ssh:"
    if not reader.done():
        raise SshKeyError("trailing data after the %s key" % key_type)
    return {"key_type": key_type, "type": family, "label": label, "bits": bits}


def _is_key_type(word):
    return word in KEY_TYPES or word.endswith("-cert-v01@openssh.com")


def _split_options(line):
    """Split an authorized_keys line into (options, rest): options end at the first unquoted blank."""
    quoted = False
    for index, char in enumerate(line):
        if char == '"' and (index == 0 or line[index - 1] != "\\"):
            quoted = not quoted
        elif char in " \t" and not quoted:
            return line[:index], line[index:].lstrip()
    raise SshKeyError("no key after the options")


def parse_public_key(line):
    """Parse one authorized_keys line: ``[options] type base64 [comment]``.

    Returns a dict with ``key_type`` (e.g. ssh-ed25519), ``type`` (the policy family: ed25519, ecdsa, rsa, ...),
    ``label`` (as ssh-keygen prints it, e.g. ED25519), ``bits``, ``fingerprint``, ``comment``, ``options``
    and ``key`` (type and base64 only, the canonical form). Raises SshKeyError.
    """
    text = (line or "").strip()
    if not text or text.startswith("#"):
        raise SshKeyError("empty line or comment, not a key")
    options = ""
    if not _is_key_type(text.split(None, 1)[0]):
        options, rest = _split_options(text)
        if not _is_key_type(rest.split(None, 1)[0]):
            raise SshKeyError("unknown key type %s" % text.split(None, 1)[0][:40])
        text = rest
    parts = text.split(None, 2)
    if len(parts) < 2:
        raise SshKeyError("expected a key type and a base64 key")
    declared, encoded = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) > 2 else ""
    try:
        blob = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise SshKeyError("the key data is not valid base64") from None
    described = describe_blob(blob)
    if described["key_type"] != declared:
        raise SshKeyError("the line says %s but the key data is %s" % (declared, described["key_type"]))
    described.update(fingerprint=fingerprint_sha256(blob), comment=comment, options=options,
                     key="%s %s" % (declared, encoded))
    return described


def evaluate_policy(parsed, policy):
    """(allowed, reason) for a parsed key under ``policy``, a dict of allowed family -> minimum bits."""
    family = parsed["type"]
    if family not in policy:
        return False, "key type %s is not allowed (allowed: %s)" % (family, ", ".join(sorted(policy)) or "none")
    minimum = int(policy[family] or 0)
    if parsed["bits"] < minimum:
        return False, "%s key has %d bits; the policy needs at least %d" % (family, parsed["bits"], minimum)
    return True, ""


def _private_public_blob(key_type, reader):
    """Read one key from an OpenSSH private section; return the public blob ssh-keygen -y would print."""
    family = KEY_TYPES.get(key_type, (None,))[0]
    head = _wire_string(key_type.encode("ascii"))
    if family == "ed25519":
        public, secret = reader.string(), reader.string()
        if len(public) != 32 or len(secret) != 64 or secret[32:] != public:
            raise SshKeyError("the Ed25519 private part does not hold its own public key")
        return head + _wire_string(public)
    if family == "ecdsa":
        curve, point = reader.string(), reader.string()
        reader.mpint()
        return head + _wire_string(curve) + _wire_string(point)
    if family == "rsa":
        modulus, exponent = reader.mpint(), reader.mpint()
        for _field in range(2):  # d, iqmp
            reader.mpint()
        prime_p, prime_q = reader.mpint(), reader.mpint()
        if prime_p * prime_q != modulus:
            raise SshKeyError("the RSA private part is inconsistent (p*q != n)")
        return head + _wire_mpint(exponent) + _wire_mpint(modulus)
    if family == "dsa":
        values = [reader.mpint() for _field in range(4)]
        reader.mpint()
        return head + b"".join(_wire_mpint(value) for value in values)
    if family == "ed25519-sk":
        public, application = reader.string(), reader.string()
        reader.byte()
        reader.string()
        reader.string()
        return head + _wire_string(public) + _wire_string(application)
    if family == "ecdsa-sk":
        curve, point, application = reader.string(), reader.string(), reader.string()
        reader.byte()
        reader.string()
        reader.string()
        return head + _wire_string(curve) + _wire_string(point) + _wire_string(application)
    raise SshKeyError("unsupported private key type %s" % key_type)


def private_key_public_half(text):
    """The public half of an unencrypted OpenSSH-format private key, parsed like parse_public_key.

    Raises SshKeyError for other formats, passphrase-protected keys and corrupt keys; messages never
    contain key material.
    """
    match = _PRIVATE_ARMOR.search(text or "")
    if not match:
        other = _OTHER_ARMOR.search(text or "")
        if other and other.group(1) == "OPENSSH PRIVATE KEY":
            raise SshKeyError("the OPENSSH PRIVATE KEY block has no END line")
        if other:
            raise SshKeyError("%s in PEM format is not supported; convert it to the OpenSSH format with "
                              "ssh-keygen -p -f KEYFILE" % other.group(1))
        raise SshKeyError("not an OpenSSH private key (no BEGIN OPENSSH PRIVATE KEY block)")
    try:
        data = base64.b64decode("".join(match.group(1).split()).encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise SshKeyError("the private key block is not valid base64") from None
    if not data.startswith(_OPENSSH_MAGIC):
        raise SshKeyError("the private key block is not openssh-key-v1")
    reader = _Reader(data[len(_OPENSSH_MAGIC):])
    cipher, kdf = reader.text(), reader.text()
    reader.string()  # kdf options
    if reader.uint32() != 1:
        raise SshKeyError("the file holds more than one key")
    header_blob = reader.string()
    if cipher != "none" or kdf != "none":
        raise SshKeyError("the private key is passphrase-protected (%s); a service key must be usable "
                          "without a passphrase" % cipher)
    private = _Reader(reader.string())
    if private.uint32() != private.uint32():
        raise SshKeyError("the private section's check values differ: the key is corrupt")
    blob = _private_public_blob(private.text(), private)
    comment = private.string().decode("utf-8", "replace")
    if blob != header_blob:
        raise SshKeyError("the private part and the public key in the file's header differ: the key is corrupt")
    described = describe_blob(blob)
    described.update(fingerprint=fingerprint_sha256(blob), comment=comment, options="",
                     key="%s %s" % (described["key_type"], base64.b64encode(blob).decode("ascii")))
    return described


def check_key_pair(private_text, public_line):
    """(matches, public_parsed, private_fingerprint); raises SshKeyError when either key cannot be parsed."""
    public = parse_public_key(public_line)
    private = private_key_public_half(private_text)
    return private["fingerprint"] == public["fingerprint"], public, private["fingerprint"]
