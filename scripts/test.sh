#!/usr/bin/env bash
# The whole test suite: lint, unit tests, the lab integration tests (real hosts over SSH),
# and every role's molecule scenario. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

stage() { printf '\n==> [%4ds] %s\n' "$SECONDS" "$*"; }

stage "docker engine";            bash scripts/install-engine.sh
stage "venv and collections";     bash scripts/setup-venv.sh
stage "lint: ruff";               ruff check .
stage "lint: yamllint";           yamllint --strict .
stage "lint: ansible-lint";       ansible-lint --offline -q
stage "lab image";                fleetwarden lab image
stage "pytest: unit, lab integration, molecule"
pytest -p no:cacheprovider -ra --durations=20 tests "$@"
stage "done"
