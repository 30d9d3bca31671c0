"""The lab backend's pure part: the host keys read from a container become guest attribute values."""

import subprocess

from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._host_keys import keys_from_guest_attributes

from fleetwarden.cloud.lab_backend import HOST_KEY_FILES, parse_host_keys


def test_host_keys_read_from_pub_files_are_what_the_pinning_helper_accepts(tmp_path):
    texts = []
    for kind in ("ed25519", "ecdsa", "rsa"):
        path = tmp_path / f"ssh_host_{kind}_key"
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@lab-tpu-w0", "-f", str(path)],
                       check=True)
        texts.append(path.with_suffix(".pub").read_text())
    keys = parse_host_keys("".join(texts) + "cat: /etc/ssh/missing.pub: No such file or directory\n")
    assert sorted(keys) == ["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"]
    attributes = {"queryValue": {"items": [{"namespace": "hostkeys", "key": kind, "value": blob}
                                           for kind, blob in keys.items()]}}
    assert keys_from_guest_attributes(attributes, "lab-tpu-w0") == keys
    assert [path.rsplit("/", 1)[1] for path in HOST_KEY_FILES] == [
        "ssh_host_ed25519_key.pub", "ssh_host_ecdsa_key.pub", "ssh_host_rsa_key.pub"]
