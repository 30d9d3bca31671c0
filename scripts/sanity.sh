#!/usr/bin/env bash
# ansible-test sanity on the collection as users get it: built with `ansible-galaxy collection build`,
# installed with `ansible-galaxy collection install` into an empty collections path, and tested there.
# Each sanity test runs in its own virtual environment (--venv) with the requirements ansible-test pins,
# installed from the package index. Usage: scripts/sanity.sh [ansible-test sanity options, e.g. --test pep8]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
python_version="${SANITY_PYTHON:-3.11}"   # every Python ansible-core supports that this machine has

# The shellcheck test is skipped, not failed, without the program: install it (Debian's package).
if ! command -v shellcheck >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

ansible-galaxy collection build --force --output-path "$work/dist" . >/dev/null
tarball="$(echo "$work"/dist/fleetwarden-fleet-*.tar.gz)"
echo "==> built $(basename "$tarball"): $(du -k "$tarball" | cut -f1) KiB"
# Installed from outside the checkout, whose ansible.cfg would show the checkout as installed already.
# --no-deps: the dependencies come from the venv (scripts/setup-venv.sh), Galaxy is out of reach.
(cd "$work" && ANSIBLE_COLLECTIONS_PATH="$work/collections" \
  ansible-galaxy collection install --no-deps -p "$work/collections" "$tarball" >/dev/null)

# ansible-test creates each test's venv without pip and bootstraps pip with a get-pip script it downloads
# from Ansible's CI file store, which is out of reach. Its cache takes a stand-in instead: pip's own
# wheel from the package index, run as pip.
pip_version="$(python - "$python_version" <<'PY'
import sys
from types import SimpleNamespace
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(SimpleNamespace(version=sys.argv[1]))["pip"])
PY
)"
cache="$HOME/.ansible/test/cache"
bootstrap="$cache/get_pip_${pip_version//./_}.py"
wheel="$cache/pip-$pip_version-py3-none-any.whl"
if [ ! -f "$wheel" ]; then
  mkdir -p "$cache"
  python -m pip download -q --no-deps "pip==$pip_version" -d "$cache"
fi
cat >"$bootstrap" <<PY
# Written by fleetwarden's scripts/sanity.sh: runs the pip wheel beside it as get-pip.py would run pip.
import sys
sys.path.insert(0, "$wheel")
from pip._internal.cli.main import main
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", *args]))
PY

cd "$work/collections/ansible_collections/fleetwarden/fleet"
echo "==> ansible-test sanity --python $python_version in $PWD"
ansible-test sanity --venv --python "$python_version" --color no "$@"
