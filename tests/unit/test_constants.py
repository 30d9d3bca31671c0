"""One home for each constant: where YAML and Python both need one, these tests hold the copies to their home.

- ports: the roles' defaults (prometheus_port, prometheus_alertmanager_port, recovery_receiver_port);
- groups: plugins/module_utils/_fleet_groups.py;
- the restart window, the settle window, the worker tool's path and the unit names:
  plugins/module_utils/_worker_state.py;
- dockerd's settings the doctor compares: roles/docker_engine/meta/argument_specs.yml (config_checks.spec_defaults).
"""

import re
from pathlib import Path

import yaml
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _fleet_groups as groups
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _worker_state as worker_state

from fleetwarden.doctor import config_checks, findings, pipeline
from fleetwarden.receiver import config as receiver_config

REPO = Path(__file__).resolve().parents[2]


def role_yaml(role, path):
    return yaml.safe_load((REPO / "roles" / role / path).read_text())


def spec_default(role, name):
    """The default an entry point of the role's argument spec gives ``name``."""
    specs = role_yaml(role, "meta/argument_specs.yml")["argument_specs"].values()
    [default] = {spec["options"][name]["default"] for spec in specs if name in spec.get("options", {})}
    return default


def test_each_port_has_one_home_in_its_roles_defaults():
    ports = {"prometheus_port": ("prometheus", 9090), "prometheus_alertmanager_port": ("prometheus", 9093),
             "recovery_receiver_port": ("recovery_receiver", 9097)}
    for name, (role, port) in ports.items():
        assert role_yaml(role, "defaults/main.yml")[name] == spec_default(role, name) == port, name
    assert receiver_config.DEFAULT_PORT == ports["recovery_receiver_port"][1]
    assert f":{ports['prometheus_port'][1]}/" in findings.RECOMMENDATIONS["check-pipeline"][2]
    from fleetwarden.lab.inventory import MONITORING_PORTS

    assert MONITORING_PORTS == {"prometheus": ports["prometheus_port"][1],
                                "alertmanager": ports["prometheus_alertmanager_port"][1]}


def test_the_groups_the_playbooks_and_tools_name_are_the_homes():
    plays = yaml.safe_load((REPO / "site.yml").read_text())
    named = {play["hosts"] for play in plays} - {"all"}
    assert named == {groups.HEAD_GROUP, groups.WORKERS_GROUP, groups.MONITORING_GROUP, groups.CONTROLLER_GROUP}
    assert {group for _id, group, *_rest in pipeline.ENDPOINTS} == {groups.MONITORING_GROUP, groups.CONTROLLER_GROUP}
    assert role_yaml("worker_service", "defaults/main.yml")["worker_service_tpu_group"] == groups.TPU_GROUP
    assert spec_default("worker_service", "worker_service_tpu_group") == groups.TPU_GROUP
    assert role_yaml("docker_engine", "defaults/main.yml")["docker_engine_nvidia_group"] == groups.GPU_GROUP
    assert role_yaml("ray_cluster", "defaults/main.yml")["ray_cluster_head_group"] == groups.HEAD_GROUP


def test_the_windows_have_one_home():
    settle = role_yaml("recovery", "defaults/main.yml")["recovery_settle_s"]
    assert settle == spec_default("recovery", "recovery_settle_s") == worker_state.SETTLE_WINDOW_S
    unit = (REPO / "plugins" / "module_utils" / "_worker_unit.py").read_text()
    assert "3600" not in unit and "RESTART_WINDOW_S" in unit


def test_the_worker_tools_path_and_unit_names_have_one_home():
    tool = worker_state.PATHS["tool"]
    assert role_yaml("worker_service", "vars/main.yml")["_worker_service_paths"]["tool"] == tool
    assert tool in (REPO / "roles" / "ray_cluster" / "vars" / "main.yml").read_text()
    assert tool in (REPO / "roles" / "recovery" / "tasks" / "verify.yml").read_text()
    built = re.compile(r"fleetwarden-worker-(\{|%s|\" *\+|' *\+)")
    for path in [*REPO.glob("plugins/**/*.py"), *REPO.glob("roles/*/files/**/*.py"),
                 *REPO.glob("src/fleetwarden/doctor/*.py")]:
        if path.name != "_worker_state.py":
            assert not built.search(path.read_text()), f"{path} builds a worker unit name itself"


def test_the_doctor_compares_dockerd_with_the_docker_engine_roles_defaults():
    defaults = config_checks.spec_defaults(REPO)
    for name in ("docker_engine_live_restore", "docker_engine_log_driver", "docker_engine_log_max_size",
                 "docker_engine_log_max_file"):
        assert defaults[name] == role_yaml("docker_engine", "defaults/main.yml")[name], name
    source = (REPO / "src" / "fleetwarden" / "doctor" / "host_checks.py").read_text()
    assert "500m" not in source and 'get("docker_engine_' not in source
