"""Every role installs its Debian packages through one shared task file, roles/baseline/tasks/packages.yml."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / "roles" / "baseline" / "tasks" / "packages.yml"
USERS = {"baseline", "fleet_metrics", "node_exporter", "prometheus", "worker_service"}


def _tasks(tasks):
    for task in tasks or []:
        yield task
        yield from _tasks(task.get("block"))


def test_only_the_shared_file_reads_and_installs_missing_packages():
    readers = [path.relative_to(REPO) for path in REPO.glob("roles/*/tasks/*.yml")
               if "fleetwarden.fleet.installed_packages" in path.read_text()]
    assert readers == [SHARED.relative_to(REPO)]


def test_each_role_that_needs_packages_imports_the_shared_file():
    for role in USERS:
        tasks = list(_tasks(yaml.safe_load((REPO / "roles" / role / "tasks" / "install.yml").read_text())))
        imports = [t for t in tasks if (t.get("ansible.builtin.import_role") or {}).get("tasks_from") == "packages"
                   or t.get("ansible.builtin.import_tasks") == "packages.yml"]
        assert len(imports) == 1, role
        assert imports[0]["vars"]["_packages_wanted"] and imports[0]["vars"]["_packages_of"] == role
