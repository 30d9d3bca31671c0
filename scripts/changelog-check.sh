#!/usr/bin/env bash
# A change that users can see needs a changelog fragment. The last release is the last commit that changed
# changelogs/changelog.yaml (`antsibull-changelog release` writes it and removes the fragments), so this
# works on any clone with its history, tags or not. Changes under plugins/, roles/, playbooks/, src/,
# meta/, schemas/ or site.yml since then need at least one file in changelogs/fragments/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

antsibull-changelog lint
release="$(git log -1 --format=%H -- changelogs/changelog.yaml)"
if [ -z "$release" ]; then
  echo "changelog-check: changelogs/changelog.yaml has no commit (a shallow clone?): fetch the history" >&2
  exit 1
fi
# Committed changes since the release, and uncommitted ones in the work tree.
changed="$( { git diff --name-only "$release" HEAD; git status --porcelain | cut -c4-; } \
  | grep -E '^(plugins|roles|playbooks|src|meta|schemas)/|^site\.yml$' | grep -v '/molecule/' | sort -u || true)"
fragments="$(find changelogs/fragments -name '*.yml' -o -name '*.yaml' | wc -l)"
if [ -n "$changed" ] && [ "$fragments" -eq 0 ]; then
  echo "changelog-check: these files changed since the last release ($release) and changelogs/fragments/ is empty:" >&2
  printf '%s\n' "$changed" | sed 's/^/  /' >&2
  echo "Add changelogs/fragments/<topic>.yml (docs/development.md, Releases)." >&2
  exit 1
fi
echo "changelog-check: $(echo -n "$changed" | grep -c . || true) user-visible files changed since the last release, $fragments fragment(s)"
