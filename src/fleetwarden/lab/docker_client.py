"""A thin, argv-only wrapper around the docker CLI."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence


class LabError(Exception):
    """A failure the user can act on; the CLI prints it without a traceback."""


class Docker:
    """Runs the docker CLI. Every call is an argv list: no shell, no quoting."""

    def __init__(self, binary: str = "docker") -> None:
        self.binary = binary

    def run(self, *args: str, check: bool = True, input_text: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, *args]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, input=input_text,
                                    timeout=timeout, check=False)
        except FileNotFoundError as exc:
            raise LabError(f"the docker CLI ({self.binary}) is not installed") from exc
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"`docker {' '.join(args[:3])}` did not finish within {timeout:.0f} s") from exc
        if check and result.returncode != 0:
            raise LabError(f"`docker {' '.join(args[:3])}` failed: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def out(self, *args: str, timeout: float = 120) -> str:
        return self.run(*args, timeout=timeout).stdout.strip()

    def lines(self, *args: str) -> list[str]:
        return [line for line in self.out(*args).splitlines() if line.strip()]

    def ensure_engine(self) -> str:
        """Returns the engine's version, or raises LabError saying how to start one."""
        if shutil.which(self.binary) is None:
            raise LabError("the docker CLI is not installed; run scripts/install-engine.sh")
        result = self.run("version", "--format", "{{.Server.Version}}", check=False, timeout=20)
        if result.returncode != 0 or not result.stdout.strip():
            detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no answer"
            raise LabError(
                "no Docker engine answers on this machine "
                f"({detail}). Start one with scripts/install-engine.sh, then retry."
            )
        return result.stdout.strip()

    def exists(self, kind: str, name: str) -> bool:
        return self.run(kind, "inspect", name, check=False, timeout=30).returncode == 0

    def exec(self, container: str, argv: Sequence[str], timeout: float = 60,
             check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.run("exec", container, *argv, check=check, timeout=timeout)
