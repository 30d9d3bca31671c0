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
stage "lab images (host, Ray worker)"; fleetwarden lab image
# The Ray and worker integration tests run on the 3-host lab. A lab this script brings
# up, it takes down again; one that was already running is left as it was.
if [ "$(fleetwarden lab status --json)" = "[]" ]; then
  trap 'stage "lab down"; fleetwarden lab down' EXIT
fi
stage "lab up (3 hosts)";         fleetwarden lab up --hosts 3
export FLEETWARDEN_REQUIRE_LAB=1  # a missing lab fails the Ray tests instead of skipping them
stage "pytest: unit, lab integration, molecule"
# The receiver's end-to-end tests (marker receiver_e2e) are not in this run yet: see their module's docstring.
pytest -p no:cacheprovider -ra --durations=25 -m "not receiver_e2e" tests "$@"
stage "done"
