"""Unit tests for the installed_packages module and its parser (plugins/module_utils/_dpkg.py)."""

from pathlib import Path

from ansible_collections.fleetwarden.fleet.plugins.module_utils import _dpkg
from ansible_collections.fleetwarden.fleet.plugins.modules import installed_packages

# dpkg-query's answer on a lab host as site.yml leaves it (recorded).
RECORDED = (Path(__file__).resolve().parents[3] / "fixtures" / "dpkg" / "lab-host-dpkg-query.txt").read_text()


def test_a_recorded_host_lists_every_installed_package_in_package_facts_shape():
    packages = _dpkg.installed_packages(RECORDED)
    assert len(packages) == len(RECORDED.splitlines())
    assert packages["apt"] == [{"name": "apt", "version": "2.6.2", "arch": "amd64", "source": "apt"}]
    assert {"docker.io", "prometheus-node-exporter", "python3"} <= packages.keys()


def test_only_installed_states_count():
    output = "".join(f"{status}\t{name}\t1.0\tamd64\n" for status, name in [
        ("ii ", "installed"), ("iW ", "triggers-awaited"), ("it ", "triggers-pending"), ("hi ", "held"),
        ("rc ", "config-files-only"), ("un ", "not-installed"), ("iU ", "unpacked"), ("iF ", "half-configured"),
        ("iHR", "half-installed-reinst-required"), ("pn ", "purged")])
    assert sorted(_dpkg.installed_packages(output)) == ["held", "installed", "triggers-awaited", "triggers-pending"]


def test_each_architecture_of_a_multiarch_package_is_an_entry_and_junk_lines_are_skipped():
    output = "ii \tlibc6\t2.36-9\tamd64\nii \tlibc6\t2.36-9\ti386\nnot a dpkg line\n\nii \t\t1\tall\n"
    assert [entry["arch"] for entry in _dpkg.installed_packages(output)["libc6"]] == ["amd64", "i386"]
    assert list(_dpkg.installed_packages(output)) == ["libc6"]


def test_the_module_returns_ansible_facts_packages_from_one_dpkg_query(run_main):
    calls = []

    def run_command(_self, argv, **kwargs):
        calls.append((argv, kwargs.get("environ_update")))
        return 0, "ii \tjq\t1.6-2.1\tamd64\n", ""

    result = run_main(installed_packages, {}, check_mode=True, run_command=run_command)
    assert calls == [(_dpkg.DPKG_QUERY_ARGV, {"LC_ALL": "C"})]
    assert result["changed"] is False
    assert result["ansible_facts"]["packages"] == {
        "jq": [{"name": "jq", "version": "1.6-2.1", "arch": "amd64", "source": "apt"}]}


def test_a_failing_dpkg_query_fails_the_module_with_its_error(run_main):
    result = run_main(installed_packages, {}, run_command=lambda _self, _argv, **_kw: (2, "", "database locked\n"))
    assert result["failed"] is True
    assert "database locked" in result["msg"]
