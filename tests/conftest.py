"""Test-wide setup: make the checkout importable as the fleetwarden.fleet collection."""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS_DIR = REPO_ROOT / "collections"

# plugins/ imports itself as ansible_collections.fleetwarden.fleet.plugins.*;
# collections/ holds the link that makes that name resolve to this checkout.
if str(COLLECTIONS_DIR) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_DIR))

# Tools of the venv (ansible, ansible-inventory, molecule) are found on PATH by the
# libraries that shell out to them (testinfra, molecule), whichever way pytest was started.
_VENV_BIN = str(Path(sys.executable).parent)
if _VENV_BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _VENV_BIN + os.pathsep + os.environ.get("PATH", "")
