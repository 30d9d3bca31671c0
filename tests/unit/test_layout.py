"""Where code lives: the product package holds the product; tests and benchmarks share their lab harness from the
development-only package `fleetwarden_testing` (testing/), and benchmarks never import tests/."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = sorted((REPO / "benchmarks").glob("*.py"))


def reaches_into_tests(source: str) -> list[str]:
    """Each import of a module under tests/, and each sys.path entry that points into tests/."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tests":
            found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] == "tests"]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ("tests", "integration"):
            found.append(f"line {node.lineno}: the path component {node.value!r}")
    return found



def test_the_check_finds_each_way_of_reaching_into_tests():
    source = ("from tests.integration import ray_lab\nimport tests.unit.conftest\n"
              "sys.path.insert(0, str(ROOT / 'tests' / 'integration'))\nfrom fleetwarden_testing import ray_lab\n")
    assert sorted(reaches_into_tests(source)) == [
        "line 1: from tests.integration import ...", "line 2: import tests.unit.conftest",
        "line 3: the path component 'integration'", "line 3: the path component 'tests'"]


@pytest.mark.parametrize("script", BENCHMARKS, ids=[path.name for path in BENCHMARKS])
def test_benchmarks_do_not_import_tests(script):
    assert not reaches_into_tests(script.read_text()), f"{script.name} reaches into tests/"


HARNESS = sorted(p.stem for p in (REPO / "testing" / "fleetwarden_testing").glob("*.py") if p.stem != "__init__")


def test_the_harness_package_is_not_empty():
    assert {"alert_e2e", "ray_lab", "site_lab", "monitoring_lab", "replay"} <= set(HARNESS)


@pytest.mark.parametrize("module", sorted((REPO / "src" / "fleetwarden").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(REPO / "src")))
def test_the_product_does_not_import_the_harness(module):
    nodes = list(ast.walk(ast.parse(module.read_text())))
    imported = {alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in nodes if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] == "fleetwarden_testing"}


def test_the_wheel_holds_the_product_and_no_harness(tmp_path):
    """Builds the product's wheel from the checkout (as `pip wheel` does for a user) and reads its file list."""
    argv = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path)]
    subprocess.run([*argv, str(REPO)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("fleetwarden-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "fleetwarden/cli.py" in names and "fleetwarden/receiver/server.py" in names
    assert not [n for n in names if n.startswith("fleetwarden_testing/")]
    assert not [n for n in names if Path(n).stem in HARNESS or "/playbooks/" in n], names


# File names that recur on purpose, each with the one meaning it has wherever it is.
SAME_MEANING = {
    "__init__.py": "a package",
    "cli.py": "a command line: the fleetwarden CLI, the cloud stand-in's, the hosts' worker tool's",
    "server.py": "an HTTP server: the receiver's, the cloud stand-in's",
    "store.py": "a service's persistent state: the receiver's audit, the cloud stand-in's",
}


def test_no_two_modules_share_a_file_name_with_different_meanings():
    """plugins/action/X.py and plugins/modules/X.py are one plugin (Ansible pairs them by name); any other file name
    that recurs under plugins/, roles/, src/ and testing/ must be one of SAME_MEANING."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "plugins", "roles", "src",
                            "testing"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    by_name: dict[str, set[str]] = {}
    for name in files:
        path = Path(name)
        if path.suffix == ".py" and (REPO / path).is_file():
            by_name.setdefault(path.name, set()).add(str(path.parent))
    repeated = {}
    for name, dirs in by_name.items():
        if name in SAME_MEANING or len(dirs) < 2:
            continue
        if dirs == {"plugins/action", "plugins/modules"}:
            continue
        repeated[name] = sorted(dirs)
    assert not repeated, f"file names with more than one meaning: {repeated}"
