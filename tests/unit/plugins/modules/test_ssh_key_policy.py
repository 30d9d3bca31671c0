"""Unit tests for the ssh_key_policy module: main() on keys made with ssh-keygen at test time."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.fleetwarden.fleet.plugins.module_utils._ssh_keys import DEFAULT_POLICY
from ansible_collections.fleetwarden.fleet.plugins.modules import ssh_key_policy

ROLE = Path(__file__).resolve().parents[4] / "roles" / "ssh_keys"
pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")


@pytest.fixture
def run_module(run_main):
    return lambda params: run_main(ssh_key_policy, params)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    made = {}
    for name, spec in {"alice": ["-t", "ed25519"], "bob": ["-t", "ecdsa"], "carol": ["-t", "rsa", "-b", "2048"],
                       "ray": ["-t", "ed25519"], "other": ["-t", "ed25519"]}.items():
        path = directory / name
        subprocess.run(["ssh-keygen", "-q", *spec, "-N", "", "-C", name + "@fleet", "-f", str(path)], check=True)
        made[name] = {"private": path.read_text(), "public": path.with_suffix(".pub").read_text().strip()}
    return made


def test_allowed_keys_pass_with_their_facts(keys, run_module):
    lines = [keys["alice"]["public"], keys["bob"]["public"]]
    result = run_module({"authorized_keys": [{"user": "root", "public_keys": lines}]})
    assert "failed" not in result
    assert result["changed"] is False
    assert [(k["user"], k["index"], k["type"], k["bits"], k["allowed"]) for k in result["keys"]] == [
        ("root", 1, "ed25519", 256, True), ("root", 2, "ecdsa", 256, True)]
    assert result["keys"][0]["fingerprint"].startswith("SHA256:")
    assert result["rejected"] == []


def test_rejected_key_fails_naming_user_position_comment_and_reason(keys, run_module):
    result = run_module({"authorized_keys": [
        {"user": "root", "public_keys": [keys["alice"]["public"]]},
        {"user": "ray",
         "public_keys": [keys["bob"]["public"], keys["carol"]["public"], "ssh-ed25519 garbage broken@key"]},
    ]})
    assert result["failed"] is True
    assert result["rejected"] == [
        "user ray key 2 (carol@fleet): rsa key has 2048 bits; the policy needs at least 3072",
        "user ray key 3 (broken@key): cannot parse the key: the key data is not valid base64",
    ]
    assert "nothing was written" in result["msg"]
    assert "carol@fleet" in result["msg"]


def test_policy_is_a_parameter(keys, run_module):
    result = run_module({"authorized_keys": [{"user": "root", "public_keys": [keys["bob"]["public"]]}],
                         "policy": {"ed25519": 256}})
    assert result["rejected"] == ["user root key 1 (bob@fleet): key type ecdsa is not allowed (allowed: ed25519)"]


def test_unknown_policy_type_fails(keys, run_module):
    result = run_module({"policy": {"ed25519": 256, "ed448": 456}})
    assert result["failed"] is True
    assert "ed448" in result["msg"]


def test_matching_private_key_passes_and_is_never_returned(keys, run_module):
    result = run_module({"private_keys": [{"path": "/home/ray/.ssh/id_ed25519", "private_key": keys["ray"]["private"],
                                           "public_key": keys["ray"]["public"]}]})
    assert "failed" not in result
    assert result["private_keys"] == [{
        "path": "/home/ray/.ssh/id_ed25519", "matches": True, "allowed": True, "type": "ed25519", "bits": 256,
        "fingerprint": result["private_keys"][0]["fingerprint"], "comment": "ray@fleet", "reason": ""}]
    assert_no_private_material(result, keys["ray"]["private"])


def test_mismatched_pair_fails_with_both_fingerprints(keys, run_module):
    result = run_module({"private_keys": [{"path": "/home/ray/.ssh/id_ed25519", "private_key": keys["ray"]["private"],
                                           "public_key": keys["other"]["public"]}]})
    assert result["failed"] is True
    (line,) = result["rejected"]
    assert line.startswith("private key /home/ray/.ssh/id_ed25519 (other@fleet): the private key's public half")
    assert "is not the declared public key" in line
    assert_no_private_material(result, keys["ray"]["private"])


def test_unparsable_private_key_fails_without_quoting_it(keys, run_module):
    mangled = keys["ray"]["private"].replace("-----END", "-----XEND")
    result = run_module({"private_keys": [{"path": "/k", "private_key": mangled, "public_key": keys["ray"]["public"]}]})
    assert result["failed"] is True
    assert "no END line" in result["rejected"][0]
    assert_no_private_material(result, mangled)


def assert_no_private_material(result, private_text):
    dumped = json.dumps(result)
    body = "".join(line for line in private_text.splitlines() if not line.startswith("-----"))
    for start in range(0, len(body) - 24, 12):
        assert body[start:start + 24] not in dumped


def test_the_default_policy_is_the_same_in_the_module_its_docs_and_the_role():
    documented = yaml.safe_load(ssh_key_policy.DOCUMENTATION)["options"]["policy"]["default"]
    role_default = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["ssh_keys_policy"]
    role_spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    assert documented == role_default == DEFAULT_POLICY
    assert role_spec["argument_specs"]["main"]["options"]["ssh_keys_policy"]["default"] == DEFAULT_POLICY

