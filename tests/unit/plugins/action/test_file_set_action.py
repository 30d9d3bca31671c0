"""Unit tests for the file_set action plugin's argument handling (plugins/action/file_set.py)."""

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.fleetwarden.fleet.plugins.action.file_set import check_entries, expand_entries, text_for_diff


def test_a_list_of_sources_into_a_directory_becomes_one_entry_per_source():
    files = [{"src": ["/r/files/a.py", "/r/files/b.py"], "dest": "/usr/lib/x/", "mode": "0644", "owner": "root"},
             {"template": "u.service.j2", "dest": "/etc/systemd/system/u.service", "mode": "0644"}]
    assert expand_entries(files) == [
        {"src": "/r/files/a.py", "dest": "/usr/lib/x/a.py", "mode": "0644", "owner": "root"},
        {"src": "/r/files/b.py", "dest": "/usr/lib/x/b.py", "mode": "0644", "owner": "root"},
        files[1],
    ]


def test_a_list_of_sources_needs_a_directory_as_dest():
    with pytest.raises(AnsibleActionFail, match=r"files\[0\]: a list of src needs a dest ending in /"):
        expand_entries([{"src": ["/r/a.py"], "dest": "/usr/lib/x", "mode": "0644"}])


def test_good_entries_pass():
    assert check_entries([{"path": "/d", "mode": "0755", "owner": "root", "group": "root"}],
                         [{"src": "a", "dest": "/d/a", "mode": "0644"},
                          {"content": "x\n", "dest": "/d/b", "mode": "0600", "validate": "true %s"}]) == []


@pytest.mark.parametrize("directories, files, message", [
    ([{"path": "/d"}], [], "directories[0] needs path and mode"),
    ([{"path": "/d", "mode": "0755", "recurse": True}], [], "directories[0] has unknown keys ['recurse']"),
    ([], [{"dest": "/d/a", "mode": "0644"}], "files[0] needs exactly one of src, template, content (has none)"),
    ([], [{"src": "a", "content": "b", "dest": "/d/a", "mode": "0644"}], "needs exactly one of"),
    ([], [{"src": "a", "mode": "0644"}], "files[0] needs dest"),
    ([], [{"src": "a", "dest": "/d/a", "mode": 644}], "files[0].mode must be a quoted octal string"),
    ([], [{"src": "a", "dest": "/d/a", "mode": "0644", "force": True}], "files[0] has unknown keys ['force']"),
])
def test_bad_entries_are_named(directories, files, message):
    assert any(message in error for error in check_entries(directories, files)), check_entries(directories, files)


def test_diff_text_only_for_small_utf8_content():
    assert text_for_diff(b"a = 1\n") == "a = 1\n"
    assert text_for_diff(b"\xff\xfe") is None
    assert text_for_diff(b"x" * (64 * 1024 + 1)) is None
