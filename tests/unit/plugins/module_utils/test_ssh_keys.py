"""Unit tests for plugins/module_utils/_ssh_keys.py, checked against ssh-keygen on keys made at test time."""

import base64
import shutil
import struct
import subprocess

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _ssh_keys as sk

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")

KEY_SPECS = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa256": ["-t", "ecdsa", "-b", "256"],
    "ecdsa384": ["-t", "ecdsa", "-b", "384"],
    "ecdsa521": ["-t", "ecdsa", "-b", "521"],
    "rsa3072": ["-t", "rsa", "-b", "3072"],
    "rsa2048": ["-t", "rsa", "-b", "2048"],
    "dsa": ["-t", "dsa"],
}


def keygen(*args):
    return subprocess.run(["ssh-keygen", *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """name -> (private key path, public key line), generated once per test run."""
    directory = tmp_path_factory.mktemp("keys")
    made = {}
    for name, spec in KEY_SPECS.items():
        path = directory / name
        try:
            keygen("-q", *spec, "-N", "", "-C", f"test {name}@fleetwarden", "-f", str(path))
        except subprocess.CalledProcessError:
            continue  # e.g. DSA in OpenSSH builds without it
        made[name] = (path, path.with_suffix(".pub").read_text().strip())
    return made


def keygen_line(parsed):
    """The line ``ssh-keygen -l -f`` prints for a key, from what parse_public_key read of it."""
    return f"{parsed['bits']} {parsed['fingerprint']} {parsed['comment'] or 'no comment'} ({parsed['label']})"


@pytest.mark.parametrize("name", sorted(KEY_SPECS))
def test_bits_and_fingerprint_match_ssh_keygen_l(keys, name):
    if name not in keys:
        pytest.skip(f"this ssh-keygen cannot make {name} keys")
    path, line = keys[name]
    parsed = sk.parse_public_key(line)
    assert keygen_line(parsed) == keygen("-l", "-f", str(path.with_suffix(".pub")))
    assert parsed["comment"] == f"test {name}@fleetwarden"


@pytest.mark.parametrize("name", sorted(KEY_SPECS))
def test_private_public_half_matches_ssh_keygen_y(keys, name):
    if name not in keys:
        pytest.skip(f"this ssh-keygen cannot make {name} keys")
    path, line = keys[name]
    half = sk.private_key_public_half(path.read_text())
    assert half["key"] == " ".join(keygen("-y", "-f", str(path)).split()[:2])
    assert half["fingerprint"] == sk.parse_public_key(line)["fingerprint"]
    assert half["comment"] == f"test {name}@fleetwarden"


@pytest.mark.parametrize(("name", "allowed", "reason"), [
    ("ed25519", True, ""),
    ("ecdsa256", True, ""),
    ("ecdsa521", True, ""),
    ("rsa3072", True, ""),
    ("rsa2048", False, "rsa key has 2048 bits; the policy needs at least 3072"),
    ("dsa", False, "key type dsa is not allowed (allowed: ecdsa, ed25519, rsa)"),
])
def test_default_policy(keys, name, allowed, reason):
    if name not in keys:
        pytest.skip(f"this ssh-keygen cannot make {name} keys")
    assert sk.evaluate_policy(sk.parse_public_key(keys[name][1]), sk.DEFAULT_POLICY) == (allowed, reason)


def test_policy_without_rsa_rejects_any_rsa(keys):
    allowed, reason = sk.evaluate_policy(sk.parse_public_key(keys["rsa3072"][1]), {"ed25519": 256})
    assert not allowed
    assert reason == "key type rsa is not allowed (allowed: ed25519)"


def test_authorized_keys_options_are_split_off(keys):
    line = 'from="10.0.0.0/8,192.168.1.1",command="echo \\"hi there\\"",no-pty ' + keys["ed25519"][1]
    parsed = sk.parse_public_key(line)
    assert parsed["options"] == 'from="10.0.0.0/8,192.168.1.1",command="echo \\"hi there\\"",no-pty'
    assert parsed["type"] == "ed25519"
    assert parsed["comment"] == "test ed25519@fleetwarden"


def test_a_key_without_comment(keys):
    line = " ".join(keys["ed25519"][1].split()[:2])
    parsed = sk.parse_public_key(line)
    assert parsed["comment"] == ""
    assert keygen_line(parsed).endswith(" no comment (ED25519)")


def test_declared_type_must_match_the_blob(keys):
    _type, blob, comment = keys["ed25519"][1].split(" ", 2)
    with pytest.raises(sk.SshKeyError, match="says ssh-rsa but the key data is ssh-ed25519"):
        sk.parse_public_key(f"ssh-rsa {blob} {comment}")


@pytest.mark.parametrize(("line", "fragment"), [
    ("", "empty"),
    ("# a comment", "empty"),
    ("ssh-ed25519", "expected a key type"),
    ("ssh-ed25519 !!!notbase64!!! x", "not valid base64"),
    ("ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x05short").decode(), "32 bytes"),
    ("ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00").decode(), "truncated"),
    ("ssh-foo " + base64.b64encode(b"\x00\x00\x00\x07ssh-foo").decode() + " x", "unknown key type ssh-foo"),
    ('command="x y"', "no key after the options"),
    ("ssh-ed25519-cert-v01@openssh.com "
     + base64.b64encode(b"\x00\x00\x00\x20ssh-ed25519-cert-v01@openssh.com").decode(), "certificates"),
])
def test_bad_lines_are_rejected_with_a_reason(line, fragment):
    with pytest.raises(sk.SshKeyError, match=fragment):
        sk.parse_public_key(line)


def test_trailing_data_in_the_blob_is_rejected(keys):
    _type, blob, _comment = keys["ed25519"][1].split(" ", 2)
    padded = base64.b64encode(base64.b64decode(blob) + struct.pack(">I", 0)).decode()
    with pytest.raises(sk.SshKeyError, match="trailing data"):
        sk.parse_public_key("ssh-ed25519 " + padded)


def test_key_pair_match_and_mismatch(keys):
    private = keys["ed25519"][0].read_text()
    assert sk.check_key_pair(private, keys["ed25519"][1])[0] is True
    matches, public, private_fingerprint = sk.check_key_pair(private, keys["ecdsa256"][1])
    assert matches is False
    assert public["type"] == "ecdsa"
    assert private_fingerprint == sk.parse_public_key(keys["ed25519"][1])["fingerprint"]


def _body(path):
    return "".join(line for line in path.read_text().splitlines() if not line.startswith("-----"))


def test_private_key_errors_never_quote_key_material(keys):
    path = keys["ed25519"][0]
    body = _body(path)
    first_line = path.read_text().splitlines()[1]
    broken = path.read_text().replace(first_line[10:50], "!" * 40)
    with pytest.raises(sk.SshKeyError) as raised:
        sk.private_key_public_half(broken)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    for start in range(0, len(body) - 16, 8):
        assert body[start:start + 16] not in str(raised.value)


def test_passphrase_protected_keys_are_refused(tmp_path):
    path = tmp_path / "locked"
    keygen("-q", "-t", "ed25519", "-N", "correct horse", "-f", str(path))
    with pytest.raises(sk.SshKeyError, match="passphrase-protected"):
        sk.private_key_public_half(path.read_text())


def test_pem_keys_are_refused_with_a_hint(tmp_path):
    path = tmp_path / "pem"
    keygen("-q", "-t", "rsa", "-b", "3072", "-m", "PEM", "-N", "", "-f", str(path))
    with pytest.raises(sk.SshKeyError, match=r"RSA PRIVATE KEY.*ssh-keygen -p"):
        sk.private_key_public_half(path.read_text())


def test_corrupt_private_section_is_detected(keys):
    path = keys["ed25519"][0]
    data = bytearray(base64.b64decode(_body(path)))
    public = base64.b64decode(keys["ed25519"][1].split()[1])[-32:]
    data[data.rfind(public) + 5] ^= 0xFF  # the copy of the public key inside the 64-byte secret key
    encoded = base64.b64encode(bytes(data)).decode()
    armored = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{encoded}\n-----END OPENSSH PRIVATE KEY-----\n"
    with pytest.raises(sk.SshKeyError):
        sk.private_key_public_half(armored)


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "not an OpenSSH private key"),
    ("ssh-ed25519 AAAA", "not an OpenSSH private key"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n", "no END line"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----", "not openssh-key-v1"),
])
def test_non_keys_are_refused(text, fragment):
    with pytest.raises(sk.SshKeyError, match=fragment):
        sk.private_key_public_half(text)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, 65537, 2 ** 2048 - 1])
def test_mpint_encoding_round_trips(value):
    encoded = sk._wire_mpint(value)
    reader = sk._Reader(encoded)
    assert reader.mpint() == value
    assert reader.done()
    length = struct.unpack(">I", encoded[:4])[0]
    assert length == 0 or encoded[4] < 0x80, "positive mpints keep the sign bit clear"
