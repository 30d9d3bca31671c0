"""Unit tests for the recovery_report action plugin's writer (plugins/action/recovery_report.py)."""

import stat

import pytest
from ansible_collections.fleetwarden.fleet.plugins.action.recovery_report import write_report_files


def test_it_writes_each_file_with_its_modes_and_replaces_an_old_one(tmp_path):
    run = tmp_path / "reports" / "20260101T000000Z"
    (run.parent).mkdir()
    files = [{"dest": str(run / "h.json"), "content": '{"a": 1}\n'}, {"dest": str(run / "h.txt"), "content": "x\n"}]
    assert write_report_files(files) == [f["dest"] for f in files]
    assert (run / "h.json").read_text() == '{"a": 1}\n' and (run / "h.txt").read_text() == "x\n"
    assert stat.S_IMODE((run / "h.json").stat().st_mode) == 0o640
    assert stat.S_IMODE(run.stat().st_mode) & 0o007 == 0
    write_report_files([{"dest": str(run / "h.txt"), "content": "y\n"}])
    assert (run / "h.txt").read_text() == "y\n"
    assert sorted(p.name for p in run.iterdir()) == ["h.json", "h.txt"]  # no temporary file left


@pytest.mark.parametrize("files, message", [
    ([], "non-empty list"),
    ([{"dest": "relative.json", "content": ""}], "files[1].dest must be an absolute path"),
    ([{"dest": "/tmp/x.json", "content": 3}], "files[1].content must be a string"),
    ([{"dest": "/tmp/x.json"}], "files[1] must have exactly the keys dest and content"),
])
def test_bad_files_are_refused_naming_the_field_before_any_write(tmp_path, files, message):
    good = {"dest": str(tmp_path / "first.json"), "content": "{}"}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        write_report_files([good, *files] if files else files)
    assert not (tmp_path / "first.json").exists()
