"""The docs match the tree: every role is in docs/roles.md, every relative link resolves, nothing points outside."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(path.parent.name for path in REPO.glob("roles/*/tasks"))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
OUTSIDE = re.compile(r"\.\./shared/|/work/shared")
# Files allowed to point outside the repository: none.
KNOWN_OUTSIDE: set[str] = set()


def _repo_files(*patterns):
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [REPO / name for name in listed if (REPO / name).is_file()]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_a_row_in_roles_md(role):
    roles_md = (REPO / "docs" / "roles.md").read_text()
    assert re.search(rf"^\| `{role}` \|", roles_md, re.MULTILINE), f"docs/roles.md has no row for roles/{role}"


def test_every_role_with_a_readme_is_linked_from_roles_md():
    roles_md = (REPO / "docs" / "roles.md").read_text()
    for role in ROLES:
        if (REPO / "roles" / role / "README.md").is_file():
            assert f"](../roles/{role}/README.md)" in roles_md, f"docs/roles.md does not link roles/{role}/README.md"


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_a_readme_and_a_molecule_scenario(role):
    """docs/roles.md and docs/development.md say so; tests/molecule/test_scenarios.py runs what it finds."""
    missing = [name for name in ("README.md", "molecule/default/molecule.yml", "molecule/default/converge.yml",
                                 "molecule/default/verify.yml") if not (REPO / "roles" / role / name).is_file()]
    assert missing == [], f"roles/{role} lacks {missing}"


def test_relative_links_in_the_docs_resolve():
    broken = [f"{path.relative_to(REPO)}: {target}"
              for path in _repo_files("*.md")
              for target in LINK.findall(path.read_text())
              if not re.match(r"[a-z]+:", target) and not (path.parent / target).exists()]
    assert broken == []


def test_nothing_points_outside_the_repository():
    pointing = {str(path.relative_to(REPO)) for path in _repo_files("*.md", "*.py", "*.yml", "*.j2", "*.sh", "*.cfg")
                if path != Path(__file__) and OUTSIDE.search(path.read_text(errors="replace"))}
    assert pointing <= KNOWN_OUTSIDE, sorted(pointing - KNOWN_OUTSIDE)
