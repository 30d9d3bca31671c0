"""Unit tests for the file_set module: main() on files in tmp_path (both of the action plugin's calls)."""

import hashlib
import stat

import pytest
from ansible_collections.fleetwarden.fleet.plugins.modules import file_set


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324 - the module's content checksum


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def tree(tmp_path):
    """A directory to converge and a transferred file (what the action plugin sends) with its content."""
    sent = tmp_path / "sent"
    sent.write_bytes(b"new\n")
    return tmp_path / "lib" / "tool", sent


def test_a_new_file_needs_content_then_is_written_with_its_mode(tree, run_main):
    directory, sent = tree
    dest = directory / "a.py"
    entry = {"dest": str(dest), "checksum": sha1(b"new\n"), "mode": "0640"}
    first = run_main(file_set, {"directories": [{"path": str(directory), "mode": "0750"}], "files": [entry]})
    assert first["changed"] is True and first["changed_paths"] == [str(directory)]
    assert first["content_needed"] == [str(dest)] and not dest.exists()
    assert mode(directory) == 0o750
    second = run_main(file_set, {"files": [entry | {"src": str(sent)}]})
    assert second["changed_paths"] == [str(dest)] and dest.read_bytes() == b"new\n" and mode(dest) == 0o640
    assert not sent.exists(), "the transferred file is moved into place"


def test_a_converged_set_changes_nothing_in_one_call(tree, run_main):
    directory, _sent = tree
    directory.mkdir(parents=True, mode=0o755)
    directory.chmod(0o755)
    (directory / "a.py").write_bytes(b"same\n")
    (directory / "a.py").chmod(0o644)
    result = run_main(file_set, {"directories": [{"path": str(directory), "mode": "0755"}],
                                 "files": [{"dest": str(directory / "a.py"), "checksum": sha1(b"same\n"),
                                            "mode": "0644"}]})
    assert result["changed"] is False and result["changed_paths"] == [] and result["content_needed"] == []


def test_drift_in_mode_is_fixed_without_sending_content(tree, run_main):
    directory, _sent = tree
    directory.mkdir(parents=True)
    (directory / "a.py").write_bytes(b"same\n")
    (directory / "a.py").chmod(0o600)
    result = run_main(file_set, {"files": [{"dest": str(directory / "a.py"), "checksum": sha1(b"same\n"),
                                            "mode": "0644"}]})
    assert result["changed_paths"] == [str(directory / "a.py")] and result["content_needed"] == []
    assert mode(directory / "a.py") == 0o644


def test_drift_in_content_is_named_with_the_old_text_for_the_diff(tree, run_main):
    directory, _sent = tree
    directory.mkdir(parents=True)
    (directory / "a.py").write_bytes(b"edited by hand\n")
    result = run_main(file_set, {"files": [{"dest": str(directory / "a.py"), "checksum": sha1(b"new\n"),
                                            "mode": "0644"}]}, diff=True)
    assert result["content_needed"] == [str(directory / "a.py")]
    assert result["before"] == {str(directory / "a.py"): "edited by hand\n"}
    assert (directory / "a.py").read_bytes() == b"edited by hand\n", "nothing is written without the content"


def test_check_mode_reports_and_writes_nothing(tree, run_main):
    directory, _sent = tree
    dest = directory / "a.py"
    result = run_main(file_set, {"directories": [{"path": str(directory), "mode": "0755"}],
                                 "files": [{"dest": str(dest), "checksum": sha1(b"new\n"), "mode": "0644"}]},
                      check_mode=True)
    assert result["changed"] is True and set(result["changed_paths"]) == {str(directory), str(dest)}
    assert not directory.exists()


def test_content_that_does_not_match_its_checksum_is_refused(tree, run_main):
    directory, sent = tree
    directory.mkdir(parents=True)
    result = run_main(file_set, {"files": [{"dest": str(directory / "a.py"), "checksum": sha1(b"other\n"),
                                            "mode": "0644", "src": str(sent)}]})
    assert result["failed"] is True and "does not match its checksum" in result["msg"]
    assert not (directory / "a.py").exists()


@pytest.mark.parametrize("params, field", [
    ({"files": [{"dest": "relative/a.py", "checksum": "0" * 40, "mode": "0644"}]}, "files[0].dest"),
    ({"files": [{"dest": "/x/a.py", "checksum": "0" * 40, "mode": "644x"}]}, "files[0].mode"),
    ({"files": [{"dest": "/x/a.py", "checksum": "abc", "mode": "0644"}]}, "files[0].checksum"),
    ({"directories": [{"path": "/x", "mode": "0999"}]}, "directories[1].mode"),
])
def test_bad_entries_are_refused_naming_the_field_before_any_change(tree, run_main, params, field):
    directory, _sent = tree
    params = {"directories": [{"path": str(directory), "mode": "0755"}, *params.get("directories", [])],
              "files": params.get("files", [])}
    result = run_main(file_set, params)
    assert result["failed"] is True and field in result["msg"]
    assert not directory.exists()


def test_new_content_that_fails_validation_leaves_the_old_file(tree, run_main):
    directory, sent = tree
    directory.mkdir(parents=True)
    (directory / "rules.yml").write_bytes(b"old\n")
    commands = []

    def run_command(self, command, **_kwargs):
        commands.append(command)
        return 1, "", "bad rule"

    entry = {"dest": str(directory / "rules.yml"), "checksum": sha1(b"new\n"), "mode": "0644",
             "validate": "promtool check rules %s", "src": str(sent)}
    result = run_main(file_set, {"files": [entry]}, run_command=run_command)
    assert result["failed"] is True and "validation failed" in result["msg"] and "bad rule" in result["msg"]
    assert commands == [f"promtool check rules {sent}"]
    assert (directory / "rules.yml").read_bytes() == b"old\n"
