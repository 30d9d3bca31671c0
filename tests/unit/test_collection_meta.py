"""The collection as Ansible's own tools see it: ansible-doc renders every plugin, the collections that roles
and playbooks use are declared in galaxy.yml, and meta/runtime.yml's range holds the ansible-core we test with."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import ansible
import pytest
import yaml
from ansible.module_utils.compat.version import LooseVersion
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
OURS = f"{GALAXY['namespace']}.{GALAXY['name']}"
ANSIBLE_DOC = str(Path(sys.executable).with_name("ansible-doc"))
# Plugin types with their own documentation (action plugins share their module's).
DOCUMENTED_TYPES = {"filter": "filter", "lookup": "lookup", "strategy": "strategy", "inventory": "inventory",
                    "modules": "module"}


def _plugin_names(folder):
    names = set()
    for path in (REPO / "plugins" / folder).iterdir():
        if path.name.startswith("_") or path.suffix not in (".py", ".yml"):
            continue
        if folder == "filter" and path.suffix == ".py":
            continue  # a filter file holds several filters, each documented in its own NAME.yml
        names.add(path.stem)
    return sorted(names)


def _ansible_doc(*args):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"), ANSIBLE_DEPRECATION_WARNINGS="0")
    return subprocess.run([ANSIBLE_DOC, *args], capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


@pytest.mark.parametrize("folder", sorted(DOCUMENTED_TYPES))
def test_ansible_doc_renders_every_plugin(folder):
    plugin_type = DOCUMENTED_TYPES[folder]
    names = _plugin_names(folder)
    assert names
    listing = _ansible_doc("-t", plugin_type, "-l", OURS)
    assert listing.returncode == 0, listing.stderr
    assert "UNDOCUMENTED" not in listing.stdout
    rendered = _ansible_doc("-t", plugin_type, "--json", *(f"{OURS}.{name}" for name in names))
    assert rendered.returncode == 0, rendered.stderr
    docs = json.loads(rendered.stdout)
    assert sorted(docs) == [f"{OURS}.{name}" for name in names]
    for name, doc in docs.items():
        assert doc["doc"]["short_description"], name
        assert doc["doc"]["description"], name


def test_every_filter_function_has_a_documentation_file():
    sys.path.insert(0, str(REPO / "collections"))
    import importlib

    filters = set()
    for path in (REPO / "plugins" / "filter").glob("*.py"):
        module = importlib.import_module(f"ansible_collections.fleetwarden.fleet.plugins.filter.{path.stem}")
        filters |= set(module.FilterModule().filters())
    assert filters == set(_plugin_names("filter"))


TASK_KEY = re.compile(r"([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\.[a-z_][a-z0-9_]*")
# A filter, test or lookup named by its FQCN inside a Jinja expression.
IN_JINJA = re.compile(r"(?:\|\s*|\bis\s+(?:not\s+)?|(?:lookup|query)\(\s*['\"])"
                      r"([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\.[a-z_][a-z0-9_]*")


def _walk(node, found, path):
    if isinstance(node, dict):
        for key, value in node.items():
            match = TASK_KEY.fullmatch(str(key))
            if match:
                found.setdefault(match.group(1), path)
            _walk(value, found, path)
    elif isinstance(node, list):
        for item in node:
            _walk(item, found, path)
    elif isinstance(node, str):
        for match in IN_JINJA.finditer(node):
            found.setdefault(match.group(1), path)


def _used_collections():
    found = {}
    for path in [*REPO.glob("roles/*/tasks/**/*.yml"), *REPO.glob("roles/*/handlers/*.yml"),
                 *REPO.glob("roles/*/vars/*.yml"), *REPO.glob("roles/*/defaults/*.yml"),
                 *REPO.glob("playbooks/*.yml"), REPO / "site.yml"]:
        _walk(yaml.safe_load(path.read_text()), found, str(path.relative_to(REPO)))
    for path in REPO.glob("roles/*/templates/**/*.j2"):
        _walk(path.read_text(), found, str(path.relative_to(REPO)))
    return found


def test_every_collection_roles_and_playbooks_use_is_ours_builtin_or_declared():
    used = _used_collections()
    assert OURS in used and "ansible.builtin" in used  # the scan finds what it looks for
    allowed = {OURS, "ansible.builtin", *GALAXY["dependencies"]}
    assert {name: path for name, path in used.items() if name not in allowed} == {}


def test_declared_dependencies_match_the_collections_the_venv_provides():
    setup = (REPO / "scripts" / "setup-venv.sh").read_text()
    unpacked = re.search(r"COLLECTIONS=\(([^)]*)\)", setup).group(1).split()
    site = Path(ansible.__file__).resolve().parents[1] / "ansible_collections"
    for name, spec in GALAXY["dependencies"].items():
        assert name in unpacked, name
        manifest = json.loads((site / name.replace(".", "/") / "MANIFEST.json").read_text())
        assert manifest["collection_info"]["version"] in SpecifierSet(spec.replace(" ", "")), (name, spec)


def test_requires_ansible_holds_the_tested_ansible_core():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    version = LooseVersion(ansible.__version__).vstring
    assert re.sub(r"[a-z].*$", "", version) in SpecifierSet(runtime["requires_ansible"])


def test_galaxy_version_is_semantic():
    assert re.fullmatch(r"\d+\.\d+\.\d+", GALAXY["version"])
