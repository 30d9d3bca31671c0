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
# ansible-test sanity computes on one core: in the background beside the lab tests when the whole suite runs.
slow_checks() {
  stage "ansible-test sanity on the built collection"; bash scripts/sanity.sh
}
stage "lab images (host, Ray worker)"; fleetwarden lab image
# The Ray and worker integration tests run on the 3-host lab. A lab this script brings
# up, it takes down again; one that was already running is left as it was.
if [ "$(fleetwarden lab status --json)" = "[]" ]; then
  trap 'stage "lab down"; fleetwarden lab down' EXIT
fi
stage "lab up (3 hosts)";         fleetwarden lab up --hosts 3
export FLEETWARDEN_REQUIRE_LAB=1  # a missing lab fails the Ray tests instead of skipping them
if [ "$#" -gt 0 ]; then
  slow_checks
  stage "pytest: $*"
  pytest -p no:cacheprovider -ra --durations=25 "$@"
  stage "done"; exit 0
fi
# Two jobs side by side. In the foreground, the lab integration tests: they spend most of their time waiting
# (settle windows, alerts, crash loops). In the background, ansible-test sanity, the molecule scenarios (their own
# containers, not the lab) and then the unit tests: mostly computing. Together they take far less than one after
# the other, and never more than two at once on a 2-core machine. The background's output follows the lab tests'.
background_log="$(mktemp)"
background() {
  local rc=0
  slow_checks || rc=$?
  stage "pytest: molecule scenarios"; pytest -p no:cacheprovider -ra --durations=15 \
    --basetemp="$(mktemp -d)/pytest" tests/molecule || rc=$?
  stage "pytest: unit tests"; pytest -p no:cacheprovider -ra --durations=15 tests/unit || rc=$?
  return "$rc"
}
stage "sanity, molecule scenarios, unit tests: in the background (log: $background_log)"
background >"$background_log" 2>&1 &
background_pid=$!
stage "pytest: lab integration"
lab_rc=0; pytest -p no:cacheprovider -ra --durations=0 --durations-min=5 tests/integration || lab_rc=$?
stage "sanity, molecule scenarios and unit tests (waiting for them)"
background_rc=0; wait "$background_pid" || background_rc=$?
cat "$background_log"
stage "done: lab integration rc=$lab_rc, background (sanity, molecule, unit) rc=$background_rc"
[ "$lab_rc" -eq 0 ] && [ "$background_rc" -eq 0 ]
