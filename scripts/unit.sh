#!/usr/bin/env bash
# The fast loop: lint, the changelog check and the unit tests, with no docker engine, lab or molecule.
# ansible-lint (the slowest lint, mostly one core) runs beside the unit tests; its output follows theirs.
# The receiver's fuzz test runs FLEETWARDEN_RECEIVER_FUZZ_S seconds: 20 here unless set, 120 in make test.
# Usage: scripts/unit.sh [pytest arguments, e.g. tests/unit/plugins -x]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export PYTHONPATH="$PWD/src:$PWD/testing${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's packages, even where .venv is shared
export FLEETWARDEN_RECEIVER_FUZZ_S="${FLEETWARDEN_RECEIVER_FUZZ_S:-20}"

stage() { printf '\n==> [%4ds] %s\n' "$SECONDS" "$*"; }
stage "lint: ruff";         ruff check .
stage "lint: yamllint";     yamllint --strict .
stage "changelog";          bash scripts/changelog-check.sh
lint_log="$(mktemp)"
stage "lint: ansible-lint, in the background (log: $lint_log)"
ansible-lint --offline -q >"$lint_log" 2>&1 &
lint_pid=$!
stage "pytest: unit (fuzz ${FLEETWARDEN_RECEIVER_FUZZ_S} s)"
unit_rc=0
pytest -p no:cacheprovider -q -ra -m "not lab and not molecule and not ray and not receiver_e2e" "${@:-tests/unit}" \
  || unit_rc=$?
stage "lint: ansible-lint (waiting for it)"
lint_rc=0; wait "$lint_pid" || lint_rc=$?
cat "$lint_log"
stage "done: unit rc=$unit_rc, ansible-lint rc=$lint_rc"
[ "$unit_rc" -eq 0 ] && [ "$lint_rc" -eq 0 ]
