"""Fixtures the unit tests share.

run_main runs an Ansible module's main() and returns its result: exit_json and fail_json raise
instead of printing and exiting, so a test reads the result the module handed to Ansible
(fail_json adds failed=True, as Ansible does). Anything else the module would do on the host,
such as run_command or get_bin_path, a test replaces by passing a fake.

run_diagnosis_case runs container_diagnosis on one recorded case of
tests/fixtures/diagnosis/module-cases.yml; the module's tests and the report schema tests,
which build reports from its results, both read them.
"""

from pathlib import Path
from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.fleetwarden.fleet.plugins.modules import container_diagnosis

DIAGNOSIS_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "diagnosis"
HEALTHY_DISK = [1000000, 600000, 550000, 1000000, 950000]  # 4 KiB blocks: 42% used


class ModuleExit(Exception):
    """exit_json or fail_json was called; ``result`` is what the module returned."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


def _exit_json(self, **result):
    raise ModuleExit(result)


def _fail_json(self, **result):
    raise ModuleExit(dict(result, failed=True))


@pytest.fixture
def run_main():
    """``run_main(module, params, check_mode=False, diff=False, **fakes)`` runs ``module.main()``.

    ``fakes`` replace AnsibleModule methods for that run (``run_command=...``); they take ``self``.
    ``_ansible_*`` keys in ``params`` win over ``check_mode`` and ``diff``. Returns the module's result.
    """

    def run(module, params, check_mode=False, diff=False, **fakes):
        args = {"_ansible_check_mode": check_mode, "_ansible_diff": diff, **params}
        with patch_module_args(args), mock.patch.multiple(
                basic.AnsibleModule, exit_json=_exit_json, fail_json=_fail_json, **fakes):
            with pytest.raises(ModuleExit) as raised:
                module.main()
        return raised.value.result

    return run


def _recorded_text(call, key):
    if key + "_file" in call:
        return (DIAGNOSIS_FIXTURES / call[key + "_file"]).read_text()
    return call.get(key, "")


def _fake_statvfs(table):
    def statvfs(path):
        blocks, bfree, bavail, files, ffree = table.get(path, HEALTHY_DISK)
        return container_diagnosis.os.statvfs_result((4096, 4096, blocks, bfree, bavail, files, ffree, ffree, 0, 255))
    return statvfs


@pytest.fixture
def run_diagnosis_case(run_main):
    """``run_diagnosis_case(case, check_mode=False)`` returns (result, argv of every run_command call).

    The case's ``host`` describes the host the module sees; its ``calls`` are the run_command calls
    the module must make, in order, with their answers.
    """

    def run(case, check_mode=False):
        host = case.get("host") or {}
        calls = list(case.get("calls") or [])
        made = []
        missing = set(host.get("missing_bins") or [])
        files = dict((path, (DIAGNOSIS_FIXTURES / name).read_text() if (DIAGNOSIS_FIXTURES / name).is_file() else name)
                     for path, name in (host.get("files") or {}).items())

        def run_command(self, argv, **kwargs):
            made.append(list(argv))
            assert calls, f"unexpected run_command call: {argv}"
            call = calls.pop(0)
            assert list(argv) == call["command"]
            return call.get("rc", 0), _recorded_text(call, "out"), _recorded_text(call, "err")

        def get_bin_path(self, name, required=False, opt_dirs=None):
            if name in missing:
                if required:
                    self.fail_json(msg="Failed to find required executable " + name)
                return None
            return "/usr/bin/" + name

        def probe_tcp(host_name, port, timeout):
            return (host.get("tcp_errors") or {}).get(f"{host_name}:{port}")

        def probe_path(path, timeout):
            return (host.get("stat_errors") or {}).get(path.replace("/proc/48102/root", ""))

        with mock.patch.multiple(
                container_diagnosis, now=lambda: host.get("now", 1709990000),
                read_text=lambda path: files.get(path, ""), statvfs=_fake_statvfs(host.get("statvfs") or {}),
                probe_path=probe_path, probe_tcp=probe_tcp):
            result = run_main(container_diagnosis, case["params"], check_mode=check_mode, run_command=run_command,
                              get_bin_path=get_bin_path)
        if not result.get("failed"):
            assert not calls, f"expected run_command calls not made: {calls}"
        return result, made

    return run
