"""Host keys pinned from the cloud's guest attributes: parsing, pinning, replacing, refusing."""

import subprocess

import pytest
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._host_keys import (
    HostKeyError,
    keys_from_guest_attributes,
    known_hosts_lines,
    pin,
    verify,
)


def ssh_keygen(tmp_path, kind):
    path = tmp_path / f"key_{kind}"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    key_type, blob = (path.with_suffix(".pub")).read_text().split()[:2]
    return key_type, blob


def attributes(*entries):
    return {"queryPath": "hostkeys/", "queryValue": {"items": [
        {"namespace": namespace, "key": key, "value": value} for namespace, key, value in entries]}}


def test_real_keys_from_guest_attributes_become_known_hosts_lines(tmp_path):
    ed25519 = ssh_keygen(tmp_path, "ed25519")
    ecdsa = ssh_keygen(tmp_path, "ecdsa")
    answer = attributes(("hostkeys", *ed25519), ("hostkeys", *ecdsa), ("other", "x", "y"))
    keys = keys_from_guest_attributes(answer, "lab-head")
    assert keys == {ed25519[0]: ed25519[1], ecdsa[0]: ecdsa[1]}
    lines = known_hosts_lines("lab-head.us-central1-a.ml-prod", keys)
    assert lines == [f"lab-head.us-central1-a.ml-prod {ed25519[0]} {ed25519[1]}",
                     f"lab-head.us-central1-a.ml-prod {ecdsa[0]} {ecdsa[1]}"]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("\n".join(lines) + "\n")
    # ssh-keygen finds the key under the alias: the file is what OpenSSH reads.
    found = subprocess.run(["ssh-keygen", "-F", "lab-head.us-central1-a.ml-prod", "-f", str(known_hosts)],
                           capture_output=True, text=True, check=True)
    assert ed25519[1] in found.stdout


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (("hostkeys", "ssh-dss", "AAAA"), "unknown type 'ssh-dss'"),
        (("hostkeys", "ssh-ed25519", "AAAA bad\nevil-host ssh-ed25519 AAAA"), "not a valid key of that type"),
        (("hostkeys", "ssh-rsa", "AAAAC3NzaC1lZDI1NTE5AAAAIIpJsLZKghj4UbC72JPgLY/mQY2+63JvjnGvZRUy6tz4"),
         "not a valid key of that type"),  # an ed25519 blob claimed to be RSA
    ],
)
def test_a_key_that_is_not_what_it_claims_is_refused(entry, message):
    with pytest.raises(HostKeyError, match=message):
        keys_from_guest_attributes(attributes(entry), "lab-gpu")


def test_no_published_key_is_an_error_not_an_accept_new():
    with pytest.raises(HostKeyError, match="publishes no SSH host key"):
        keys_from_guest_attributes({"queryPath": "hostkeys/", "queryValue": {"items": []}}, "lab-gpu")


def test_a_recreated_host_replaces_its_keys_and_says_so(tmp_path):
    old = dict([ssh_keygen(tmp_path, "ed25519")])
    (tmp_path / "key_ed25519").unlink()
    new = dict([ssh_keygen(tmp_path, "ed25519")])
    text, change = pin("other ssh-ed25519 AAAAother\n", "lab-tpu-w0", old)
    assert change == "added"
    assert pin(text, "lab-tpu-w0", old) == (text, "unchanged")
    replaced, change = pin(text, "lab-tpu-w0", new)
    assert change == "replaced"
    assert replaced.splitlines() == ["other ssh-ed25519 AAAAother", *known_hosts_lines("lab-tpu-w0", new)]


def test_a_key_the_cloud_does_not_publish_fails_with_a_clear_error(tmp_path):
    published = dict([ssh_keygen(tmp_path, "ed25519")])
    verify(published, "lab-gpu", "ssh-ed25519", published["ssh-ed25519"])
    with pytest.raises(HostKeyError, match="offered a ssh-ed25519 host key that the cloud does not publish"):
        verify(published, "lab-gpu", "ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIPBm0XQCpThgwWc4nGe")
