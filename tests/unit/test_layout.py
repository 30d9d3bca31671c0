"""Where code lives: benchmarks share the lab's helpers from the package (fleetwarden.lab), never from tests/."""

import ast
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
              "sys.path.insert(0, str(ROOT / 'tests' / 'integration'))\nfrom fleetwarden.lab import ray_lab\n")
    assert sorted(reaches_into_tests(source)) == [
        "line 1: from tests.integration import ...", "line 2: import tests.unit.conftest",
        "line 3: the path component 'integration'", "line 3: the path component 'tests'"]


@pytest.mark.parametrize("script", BENCHMARKS, ids=[path.name for path in BENCHMARKS])
def test_benchmarks_do_not_import_tests(script):
    assert not reaches_into_tests(script.read_text()), f"{script.name} reaches into tests/"
