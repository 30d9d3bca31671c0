"""The ssh_keys role never shows a private key: run its whole molecule scenario (create, converge,
idempotence, verify, destroy) at verbosity 3 with keys this test knows, and grep everything it printed.

This runs the ssh_keys scenario in full, so the generic runner (test_scenarios.py) need not run it again.
"""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "ssh_keys"
REPORTS = REPO / "reports" / "molecule"
WINDOW = 24

pytestmark = pytest.mark.molecule


def secret_pieces(private_key: str, public_lines: list[str]) -> list[str]:
    """Every 24-character window of the private key's base64 body, except windows that also occur in a
    public key: the OpenSSH private format embeds the public key, and showing a public key is no leak."""
    body = "".join(line.strip() for line in private_key.splitlines() if not line.startswith("-----"))
    windows = {body[start:start + WINDOW] for start in range(0, len(body) - WINDOW + 1)}
    return sorted(piece for piece in windows if not any(piece in line for line in public_lines))


def test_secret_pieces_skip_the_embedded_public_key(tmp_path):
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text()
    pieces = secret_pieces(key.read_text(), [public])
    assert pieces, "the seed of the key must leave windows to look for"
    assert all(piece not in public for piece in pieces)


def test_ssh_keys_scenario_prints_no_private_key(tmp_path):
    keys = tmp_path / "keys"
    env = {**os.environ, "FW_SSH_KEYS_TEST_DIR": str(keys), "MOLECULE_INSTANCE": "fw-mol-ssh_keys-leak",
           "ANSIBLE_VERBOSITY": "3", "ANSIBLE_FORCE_COLOR": "false", "NO_COLOR": "1", "PY_COLORS": "0"}
    result = subprocess.run(["molecule", "test", "-s", "default"], cwd=ROLE, env=env, capture_output=True,
                            text=True, check=False, timeout=900)
    output = result.stdout + result.stderr
    REPORTS.mkdir(parents=True, exist_ok=True)
    log = REPORTS / "ssh_keys-no-secret-leak.log"
    log.write_text(output)
    tail = "\n".join(output.splitlines()[-60:])
    assert result.returncode == 0, f"molecule test failed for ssh_keys (full log: {log}):\n{tail}"

    publics = [path.read_text() for path in keys.glob("*.pub")]
    # The deployed cluster key, and the one the mismatch test passes as a private key.
    pieces = secret_pieces((keys / "ray_cluster").read_text(), publics)
    assert len(pieces) > 10
    leaked = [piece for piece in pieces if piece in output]
    assert not leaked, f"private key material appears in the molecule output ({log}): {leaked[:3]}"
    # The output is verbose enough to matter: the module's results (public facts) are in it.
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", str(keys / "ray_cluster.pub")], check=True,
                                 capture_output=True, text=True).stdout.split()[1]
    assert fingerprint in output
