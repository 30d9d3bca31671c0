"""Unit tests for the tree_digest lookup's digest (plugins/lookup/tree_digest.py)."""

import pytest
from ansible_collections.fleetwarden.fleet.plugins.lookup.tree_digest import tree_digest


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "src" / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "a.py").write_text("a = 1\n")
    (tmp_path / "src" / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    return tmp_path


def test_the_digest_changes_with_any_edit_rename_or_new_file_and_only_then(tree):
    before = tree_digest(str(tree), ["src", "pyproject.toml"])
    assert tree_digest(str(tree), ["pyproject.toml", "src"]) == before
    (tree / "src" / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"\1")
    assert tree_digest(str(tree), ["src", "pyproject.toml"]) == before, "caches are not sources"
    (tree / "src" / "pkg" / "a.py").write_text("a = 2\n")
    edited = tree_digest(str(tree), ["src", "pyproject.toml"])
    assert edited != before
    (tree / "src" / "pkg" / "a.py").rename(tree / "src" / "pkg" / "b.py")
    assert tree_digest(str(tree), ["src", "pyproject.toml"]) not in (before, edited)
    (tree / "src" / "pkg" / "b.py").rename(tree / "src" / "pkg" / "a.py")
    (tree / "src" / "pkg" / "c.py").write_text("")
    assert tree_digest(str(tree), ["src", "pyproject.toml"]) != edited


def test_a_missing_path_is_an_error(tree):
    with pytest.raises(FileNotFoundError):
        tree_digest(str(tree), ["src", "setup.cfg"])
