"""The cloud stand-in's tests reuse the inventory tests' plugin loader (inventory_testlib)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "inventory"))
