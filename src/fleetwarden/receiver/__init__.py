"""The recovery receiver: Alertmanager webhook in, audited and rate-limited recover.yml runs out.

Modules: `config` (settings and their defaults), `alerts` (parse a webhook body), `limits` (the decision
engine, pure functions), `audit` (what a row may hold), `store` (SQLite WAL audit store), `jobs` (ansible-runner
runs), `worker` (a run in a process of its own), `guard` (connections), `server` (aiohttp), `silences`
(Alertmanager silences for maintenance), `commands` (the `fleetwarden receiver` CLI).
"""
