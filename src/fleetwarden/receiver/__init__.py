"""The recovery receiver: Alertmanager webhook in, audited and rate-limited recover.yml runs out.

Modules: `config` (settings and their defaults), `alerts` (parse a webhook body), `limits` (the decision
engine, pure functions), `store` (SQLite WAL audit store), `jobs` (ansible-runner runs), `server` (aiohttp),
`commands` (the `fleetwarden receiver` CLI).
"""
