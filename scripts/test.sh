#!/usr/bin/env bash
# The whole test suite: lint, the changelog check, ansible-test sanity on the built collection, unit tests,
# the lab integration tests (real hosts over SSH), and every role's molecule scenario. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

stage() { printf '\n==> [%4ds] %s\n' "$SECONDS" "$*"; }

stage "docker engine";            bash scripts/install-engine.sh
stage "venv and collections";     bash scripts/setup-venv.sh
stage "lint: ruff";               ruff check .
stage "lint: yamllint";           yamllint --strict .
stage "lint: ansible-lint";       ansible-lint --offline -q
stage "changelog fragments";      bash scripts/changelog-check.sh
stage "ansible-test sanity on the built collection"; bash scripts/sanity.sh
stage "lab images (host, Ray worker)"; fleetwarden lab image
# The Ray and worker integration tests run on the 3-host lab. A lab this script brings
# up, it takes down again; one that was already running is left as it was.
if [ "$(fleetwarden lab status --json)" = "[]" ]; then
  trap 'stage "lab down"; fleetwarden lab down' EXIT
fi
stage "lab up (3 hosts)";         fleetwarden lab up --hosts 3
export FLEETWARDEN_REQUIRE_LAB=1  # a missing lab fails the Ray tests instead of skipping them
if [ "$#" -gt 0 ]; then
  stage "pytest: $*"
  pytest -p no:cacheprovider -ra --durations=25 "$@"
  stage "done"; exit 0
fi
# The molecule scenarios (their own containers, not the lab) run in a second pytest beside the lab tests: the
# lab tests spend most of their time waiting (settle windows, alerts, crash loops), the scenarios mostly
# computing, so together they take far less than one after the other. Their output follows the lab tests'.
molecule_log="$(mktemp)"
stage "pytest: molecule scenarios, in the background (log: $molecule_log)"
pytest -p no:cacheprovider -ra --durations=15 --basetemp="$(mktemp -d)/pytest" tests/molecule >"$molecule_log" 2>&1 &
molecule_pid=$!
stage "pytest: unit and lab integration"
lab_rc=0; pytest -p no:cacheprovider -ra --durations=25 --ignore=tests/molecule tests || lab_rc=$?
stage "pytest: molecule scenarios (waiting for them)"
molecule_rc=0; wait "$molecule_pid" || molecule_rc=$?
cat "$molecule_log"
stage "done: unit and lab integration rc=$lab_rc, molecule rc=$molecule_rc"
[ "$lab_rc" -eq 0 ] && [ "$molecule_rc" -eq 0 ]
