"""scripts/changelog-check.sh, run in a scratch git repository: a user-visible change since the last release
(the last commit of changelogs/changelog.yaml) needs a fragment, and fragments must lint."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", GIT_AUTHOR_NAME="t",
           GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=ENV)


def _check(repo):
    return subprocess.run(["bash", "scripts/changelog-check.sh"], cwd=repo, capture_output=True, text=True, env=ENV,
                          timeout=120)


@pytest.fixture
def released(tmp_path):
    """A repository right after a release: changelog.yaml written, no fragments."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "changelog-check.sh", tmp_path / "scripts")
    (tmp_path / "changelogs" / "fragments").mkdir(parents=True)
    for name in ("config.yaml", "changelog.yaml"):
        shutil.copy(REPO / "changelogs" / name, tmp_path / "changelogs")
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "thing.py").write_text("A = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "release")
    return tmp_path


def test_nothing_changed_since_the_release_passes(released):
    assert _check(released).returncode == 0


def test_a_plugin_change_without_a_fragment_fails_naming_the_file(released):
    (released / "plugins" / "thing.py").write_text("A = 2\n")
    _git(released, "commit", "-qam", "change")
    result = _check(released)
    assert result.returncode == 1
    assert "plugins/thing.py" in result.stderr


def test_a_docs_only_change_needs_no_fragment(released):
    (released / "README.md").write_text("words\n")
    _git(released, "add", "-A")
    _git(released, "commit", "-qm", "docs")
    assert _check(released).returncode == 0


def test_a_fragment_makes_it_pass_and_a_bad_one_fails(released):
    (released / "plugins" / "thing.py").write_text("A = 2\n")
    fragment = released / "changelogs" / "fragments" / "thing.yml"
    fragment.write_text("bugfixes:\n  - thing - A is 2.\n")
    assert _check(released).returncode == 0
    fragment.write_text("no_such_section:\n  - thing - A is 2.\n")
    assert _check(released).returncode != 0
