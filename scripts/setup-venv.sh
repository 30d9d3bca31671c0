#!/usr/bin/env bash
# Creates .venv, installs fleetwarden (editable) with its test extras, and puts the
# Ansible collections we use into the venv. Galaxy is out of reach, so they are
# unpacked from the "ansible" package on PyPI, which bundles every collection.
set -euo pipefail
cd "$(dirname "$0")/.."

ANSIBLE_BUNDLE_VERSION=12.3.0   # the "ansible" release that pairs with ansible-core 2.19
COLLECTIONS=(community.docker community.library_inventory_filtering_v1 ansible.posix ansible.utils community.general google.cloud)

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "==> installing fleetwarden and its test extras"
# The controller runs the versions the receiver's hosts get: the pins' one home is the recovery_receiver role.
mkdir -p .cache
sed -n '/^recovery_receiver_python_packages:/,/^[^ ]/s/^  - //p' roles/recovery_receiver/defaults/main.yml \
  | grep -v '^pip==' >.cache/receiver-pins.txt
.venv/bin/python -m pip install -q -e '.[test]' -c .cache/receiver-pins.txt
echo "==> installing the test and benchmark harness (testing/, development only)"
.venv/bin/python -m pip install -q --no-deps -e testing

site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
stamp="$site/ansible_collections/.fleetwarden-bundle-$ANSIBLE_BUNDLE_VERSION"
if [ ! -f "$stamp" ]; then
  echo "==> unpacking collections ${COLLECTIONS[*]} from ansible==$ANSIBLE_BUNDLE_VERSION"
  cache=.cache/wheels
  mkdir -p "$cache"
  .venv/bin/python -m pip download -q --no-deps "ansible==$ANSIBLE_BUNDLE_VERSION" -d "$cache"
  .venv/bin/python - "$cache/ansible-$ANSIBLE_BUNDLE_VERSION-py3-none-any.whl" "$site" "${COLLECTIONS[@]}" <<'PY'
import sys
import zipfile

wheel, site, *names = sys.argv[1:]
prefixes = tuple("ansible_collections/{}/{}/".format(*n.split(".")) for n in names)
with zipfile.ZipFile(wheel) as zf:
    members = [m for m in zf.namelist() if m.startswith(prefixes)]
    zf.extractall(site, members)
print(f"    {len(members)} files")
PY
  touch "$stamp"
fi
echo "==> venv ready: $(.venv/bin/ansible --version | head -1)"
