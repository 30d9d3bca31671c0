#!/usr/bin/env bash
# The fast loop: lint, the changelog check and the unit tests, with no docker engine, lab or molecule.
# Usage: scripts/unit.sh [pytest arguments, e.g. tests/unit/plugins -x]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export PYTHONPATH="$PWD/src:$PWD/testing${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's packages, even where .venv is shared

stage() { printf '\n==> [%4ds] %s\n' "$SECONDS" "$*"; }
stage "lint: ruff";         ruff check .
stage "lint: yamllint";     yamllint --strict .
stage "lint: ansible-lint"; ansible-lint --offline -q
stage "changelog";          bash scripts/changelog-check.sh
stage "pytest: unit"
pytest -p no:cacheprovider -q -ra -m "not lab and not molecule and not ray and not receiver_e2e" "${@:-tests/unit}"
stage "done"
