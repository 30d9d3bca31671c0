"""Unit tests for plugins/module_utils/_systemd.py: Exec line quoting and systemd-escape."""

import shutil
import subprocess

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _systemd
from systemd_words import unquote_like_systemd

ESCAPE_CASES = [
    ("/mnt/gcs", "mnt-gcs"),
    ("/mnt/gcs/", "mnt-gcs"),
    ("//mnt//gcs", "mnt-gcs"),
    ("/mnt/./gcs", "mnt-gcs"),
    ("/", "-"),
    ("/opt/gcsfuse_mount", "opt-gcsfuse_mount"),
    ("/mnt/my-bucket", "mnt-my\\x2dbucket"),
    ("/mnt/a b", "mnt-a\\x20b"),
    ("/mnt/.hidden", "mnt-.hidden"),
    ("/.hidden", "\\x2ehidden"),
    ("/mnt/ü", "mnt-\\xc3\\xbc"),
    ("/mnt/back\\slash", "mnt-back\\x5cslash"),
    ("/data/v1.2:x", "data-v1.2:x"),
]


@pytest.mark.parametrize(("path", "expected"), ESCAPE_CASES)
def test_escape_path(path, expected):
    assert _systemd.systemd_escape_path(path) == expected


@pytest.mark.skipif(shutil.which("systemd-escape") is None, reason="needs systemd-escape")
@pytest.mark.parametrize(("path", "expected"), ESCAPE_CASES)
def test_escape_path_matches_systemd_escape(path, expected):
    real = subprocess.run(["systemd-escape", "--path", path], check=True, capture_output=True, text=True)
    assert real.stdout.strip() == _systemd.systemd_escape_path(path)


@pytest.mark.skipif(shutil.which("systemd-escape") is None, reason="needs systemd-escape")
@pytest.mark.parametrize("text", ["web-server", "a b/c", ".x", "ü:_.", "tab\there"])
def test_escape_matches_systemd_escape(text):
    real = subprocess.run(["systemd-escape", text], check=True, capture_output=True, text=True)
    assert real.stdout.strip() == _systemd.systemd_escape(text)


@pytest.mark.parametrize("path", ["", "/mnt/../etc", None])
def test_escape_path_refuses_bad_paths(path):
    with pytest.raises(ValueError):
        _systemd.systemd_escape_path(path)


@pytest.mark.parametrize(("word", "quoted"), [
    ("--foreground", "--foreground"),
    ("/usr/bin/gcsfuse", "/usr/bin/gcsfuse"),
    ("--uid=1000", "--uid=1000"),
    ("my-bucket", "my-bucket"),
    ("", '""'),
    ("a b", '"a b"'),
    ("100%", '"100%%"'),
    ("%h", '"%%h"'),
    ("$HOME", '"$$HOME"'),
    ("${X}", '"$${X}"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ("it's", '"it\'s"'),
    (";", '";"'),
    ("line\nbreak", '"line\\nbreak"'),
    ("tab\t", '"tab\\t"'),
    ("bell\x07", '"bell\\a"'),
    ("esc\x1b", '"esc\\x1b"'),
    ("ü", '"ü"'),
])
def test_quote(word, quoted):
    assert _systemd.systemd_quote(word) == quoted


@pytest.mark.parametrize("word", ["nul\x00", 5, None])
def test_quote_refuses_what_cannot_be_an_argument(word):
    with pytest.raises((TypeError, ValueError)):
        _systemd.systemd_quote(word)


def test_exec_line():
    line = _systemd.systemd_exec_line(["/usr/bin/gcsfuse", "--only-dir", "a b/$x", "bucket", "/mnt/gcs"])
    assert line == '/usr/bin/gcsfuse --only-dir "a b/$$x" bucket /mnt/gcs'


@pytest.mark.parametrize("argv", [[], ["gcsfuse", "x"], ["-/usr/bin/gcsfuse"], [None]])
def test_exec_line_needs_an_absolute_executable(argv):
    with pytest.raises(ValueError):
        _systemd.systemd_exec_line(argv)


@pytest.mark.parametrize("argv", [
    ["/bin/echo", "plain", "with space", "100%", "$HOME", 'q"uote', "back\\", "multi\nline", "", "ü", "\x1b[0m"],
    ["/usr/local/bin/gcsfuse-standin", "--only-dir", "data dir $X 100% ;", "my-bucket", "/mnt/gcs"],
])
def test_exec_line_round_trips(argv):
    assert unquote_like_systemd(_systemd.systemd_exec_line(argv)) == argv


@pytest.mark.parametrize(("path", "normalized"), [("/mnt/gcs/", "/mnt/gcs"), ("//mnt//gcs", "/mnt/gcs"),
                                                  ("/mnt/./gcs", "/mnt/gcs"), ("/", "/")])
def test_normalize_path(path, normalized):
    assert _systemd.normalize_path(path) == normalized
