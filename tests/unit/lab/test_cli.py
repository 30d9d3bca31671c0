"""The CLI's errors: clear messages, exit 2, no traceback, nothing changed."""

import subprocess
import sys

import pytest

from fleetwarden.cli import main


def test_hosts_zero_is_rejected_before_anything_else(capsys):
    assert main(["lab", "up", "--hosts", "0"]) == 2
    err = capsys.readouterr().err
    assert "--hosts must be between 1 and 16, got 0" in err
    assert "Traceback" not in err


def test_hosts_not_a_number_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["lab", "up", "--hosts", "three"])
    assert exc.value.code == 2
    assert "must be a whole number, got 'three'" in capsys.readouterr().err


def test_unknown_accelerator_is_rejected(capsys):
    assert main(["lab", "up", "--accelerators", "gpu,fpga"]) == 2
    assert "unknown kind 'fpga'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["lab", "up"], ["lab", "status"], ["lab", "down"]])
def test_no_engine_gives_one_clear_line(command, tmp_path, monkeypatch):
    # A real docker CLI pointed at a socket nobody listens on: the engine does not answer.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such-docker.sock")
    result = subprocess.run([sys.executable, "-m", "fleetwarden.cli", "--project-dir", str(tmp_path), *command],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "no Docker engine answers on this machine" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".lab").exists(), "nothing may be written when the engine is down"
