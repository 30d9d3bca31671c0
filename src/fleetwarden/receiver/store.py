"""The audit store: SQLite in WAL mode, synchronous=FULL, so a 202 means the decision is on disk.

One connection, used from one thread (the server runs every call in a single-thread executor), so
the decision for an alert is made and recorded in one transaction, in arrival order.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from fleetwarden.receiver import audit
from fleetwarden.receiver.alerts import Alert, time_to_recover
from fleetwarden.receiver.config import Limits
from fleetwarden.receiver.limits import ALERTING_KINDS, Decision, View, decide

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
  id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL, host TEXT, alertname TEXT,
  fingerprint TEXT, starts_at TEXT, status TEXT, job_id TEXT, reason TEXT, remote TEXT,
  labels TEXT, ttr REAL);
CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts);
CREATE INDEX IF NOT EXISTS decisions_host ON decisions (host, ts);
CREATE TABLE IF NOT EXISTS runs (
  job_id TEXT PRIMARY KEY, host TEXT NOT NULL, alertname TEXT, fingerprint TEXT, starts_at TEXT,
  created REAL NOT NULL, started REAL, ended REAL, status TEXT NOT NULL, rc INTEGER, duration REAL,
  report_path TEXT, private_data_dir TEXT, explanation TEXT, dry INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS runs_host ON runs (host, created);
CREATE TABLE IF NOT EXISTS handled (
  fingerprint TEXT NOT NULL, starts_at TEXT NOT NULL, status TEXT NOT NULL, job_id TEXT,
  dry INTEGER NOT NULL DEFAULT 0, ts REAL NOT NULL DEFAULT 0, PRIMARY KEY (fingerprint, starts_at, status, dry));
CREATE INDEX IF NOT EXISTS handled_ts ON handled (ts);
CREATE TABLE IF NOT EXISTS alerting (host TEXT PRIMARY KEY, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (host TEXT PRIMARY KEY, since REAL NOT NULL, reason TEXT);
CREATE TABLE IF NOT EXISTS releases (host TEXT PRIMARY KEY, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS maintenance (
  host TEXT PRIMARY KEY, since REAL NOT NULL, until REAL NOT NULL, who TEXT NOT NULL, reason TEXT NOT NULL,
  silence_id TEXT);
CREATE TABLE IF NOT EXISTS breaker (
  id INTEGER PRIMARY KEY CHECK (id = 1), opened REAL, reason TEXT, reset_at REAL NOT NULL DEFAULT 0);
INSERT OR IGNORE INTO breaker (id, opened, reason, reset_at) VALUES (1, NULL, NULL, 0);
"""

ACTIVE = ("queued", "running")
# Run outcomes that say nothing about the host, so they start no cooldown.
NO_VERDICT = ("interrupted", "canceled")
# Runs that may not have reached the host: they count neither as attempts nor against the budget.
NOT_ATTEMPTS = ("interrupted", "canceled", "error")
# Stores written before runs and handled alerts had a dry-run flag get it here (PRAGMA user_version 0 -> 1).
_MIGRATIONS = {
    1: """
ALTER TABLE runs ADD COLUMN dry INTEGER NOT NULL DEFAULT 0;
CREATE TABLE handled_v1 (
  fingerprint TEXT NOT NULL, starts_at TEXT NOT NULL, status TEXT NOT NULL, job_id TEXT,
  dry INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (fingerprint, starts_at, status, dry));
INSERT INTO handled_v1 (fingerprint, starts_at, status, job_id) SELECT fingerprint, starts_at, status, job_id
  FROM handled;
DROP TABLE handled;
ALTER TABLE handled_v1 RENAME TO handled;
""",
    2: "ALTER TABLE handled ADD COLUMN ts REAL NOT NULL DEFAULT 0;",
}


@dataclass(frozen=True)
class Recorded:
    alert: Alert
    decision: Decision
    row_id: int
    ttr: float | None = None
    acted: bool = False  # a resolved alert whose episode had a run


def _marks(values: tuple) -> str:
    """SQL placeholders for an IN list: '?,?,?'."""
    return ",".join("?" * len(values))


# The f-strings add "?" placeholders only; values are bound.
_LAST_RUN_SQL = (
    "SELECT ended, status FROM runs WHERE host=? AND ended IS NOT NULL"  # noqa: S608 - "?" placeholders only, bound
    f" AND status NOT IN ({_marks(NO_VERDICT)}) AND dry=? ORDER BY ended DESC LIMIT 1"
)
_ATTEMPTS_SQL = (
    "SELECT count(*) FROM runs WHERE host=? AND alertname=? AND created>? AND dry=?"  # noqa: S608 - "?" only
    f" AND status NOT IN ({_marks(NOT_ATTEMPTS)})"
)
_HEALED_SQL = (
    "SELECT DISTINCT host FROM runs WHERE created>? AND dry=?"  # noqa: S608 - "?" placeholders only, bound
    f" AND status NOT IN ({_marks(NOT_ATTEMPTS)})"
)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def new_job_id(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + secrets.token_hex(4)


class Store:
    def __init__(self, path: Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self._migrate()
        self.db.executescript(SCHEMA)
        path.chmod(0o600)

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        fresh = self.db.execute("SELECT 1 FROM sqlite_master WHERE name='runs'").fetchone() is None
        latest = max(_MIGRATIONS)
        if fresh:
            self.db.execute(f"PRAGMA user_version={latest}")
            return
        for target in range(version + 1, latest + 1):
            self.db.executescript(f"BEGIN IMMEDIATE; {_MIGRATIONS[target]} PRAGMA user_version={target}; COMMIT;")

    def close(self) -> None:
        self.db.close()

    def _insert_decision(self, now: float, kind: str, reason: str, alert: Alert | None = None,
                         job_id: str | None = None, remote: str | None = None, host: str | None = None,
                         ttr: float | None = None) -> int:
        """One audit row; every value a client sent is escaped and cut (fleetwarden.receiver.audit)."""
        clip = audit.clip
        cursor = self.db.execute(
            "INSERT INTO decisions (ts, kind, host, alertname, fingerprint, starts_at, status, job_id, reason,"
            " remote, labels, ttr) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (now, kind, clip(host or (alert.host if alert else None)), clip(alert.alertname) if alert else None,
             clip(alert.fingerprint) if alert else None, clip(alert.starts_at) if alert else None,
             clip(alert.status) if alert else None, job_id, clip(reason, audit.REASON_CHARS), clip(remote),
             audit.labels_json(alert.labels) if alert else None, ttr))
        return cursor.lastrowid

    # --- reading what a decision needs -------------------------------------------------------
    def view(self, alert: Alert, now: float, limits: Limits, inventory: frozenset, dry_run: bool = False) -> View:
        """What decide() needs for this alert. It reads the cheap facts first and stops where decide() would:
        during a storm most alerts are replays or meet an open breaker, and cost three lookups.
        Dry run reads its own runs and handled alerts, live mode its own: neither takes the other's for done."""
        db = self.db
        host = alert.host or ""
        dry = int(dry_run)
        seen = db.execute("SELECT 1 FROM handled WHERE fingerprint=? AND starts_at=? AND status=? AND dry=?",
                          (alert.fingerprint, alert.starts_at, alert.status, dry)).fetchone() is not None
        breaker = db.execute("SELECT opened, reset_at FROM breaker WHERE id=1").fetchone()
        quarantined = db.execute("SELECT 1 FROM quarantine WHERE host=?", (host,)).fetchone() is not None
        known = host in inventory
        window = db.execute("SELECT until, who, reason FROM maintenance WHERE host=? AND until>?",
                            (host, now)).fetchone()
        maintenance = (f"{window['reason']} ({window['who']}, until {_iso(window['until'])})" if window else None)
        breaker_open = breaker["opened"] is not None
        if (alert.status != "firing" or not alert.remediate or not known or seen or quarantined or breaker_open
                or maintenance):
            return View(known_host=known, maintenance=maintenance, seen=seen, quarantined=quarantined,
                        breaker_open=breaker_open, running_job=None, last_end=None, last_ok=None, attempts=0,
                        alerting_hosts=frozenset(), healed_hosts=frozenset(), inventory_size=len(inventory))
        running = db.execute("SELECT job_id FROM runs WHERE host=? AND status IN (?,?) AND dry=? ORDER BY created"
                             " LIMIT 1", (host, *ACTIVE, dry)).fetchone()
        last = db.execute(_LAST_RUN_SQL, (host, *NO_VERDICT, dry)).fetchone()
        release = db.execute("SELECT ts FROM releases WHERE host=?", (host,)).fetchone()
        attempts_since = max(now - limits.attempts_window_s, release["ts"] if release else 0)
        attempts = db.execute(_ATTEMPTS_SQL, (host, alert.alertname, attempts_since, dry, *NOT_ATTEMPTS)).fetchone()[0]
        alerting_since = max(now - limits.breaker_window_s, breaker["reset_at"])
        alerting = frozenset(r[0] for r in db.execute("SELECT host FROM alerting WHERE ts>?", (alerting_since,)))
        healed = frozenset(r[0] for r in db.execute(_HEALED_SQL, (now - limits.budget_window_s, dry, *NOT_ATTEMPTS)))
        return View(
            known_host=known,
            maintenance=None,
            seen=seen,
            quarantined=quarantined,
            breaker_open=False,
            running_job=running["job_id"] if running else None,
            last_end=last["ended"] if last else None,
            last_ok=(last["status"] in ("successful", "dry_run")) if last else None,
            attempts=attempts,
            alerting_hosts=alerting,
            healed_hosts=healed,
            inventory_size=len(inventory),
        )

    # --- recording ---------------------------------------------------------------------------
    def record_notification(self, alerts: list[Alert], now: float, limits: Limits, inventory: frozenset,
                            dry_run: bool = False, remote: str | None = None) -> list[Recorded]:
        """Decide and record every alert of one notification in one transaction."""
        return self.record_batch([(alerts, remote)], now, limits, inventory, dry_run)[0]

    def record_batch(self, notifications: list[tuple[list[Alert], str | None]], now: float, limits: Limits,
                     inventory: frozenset, dry_run: bool = False) -> list[list[Recorded]]:
        """Several notifications, in arrival order, in one transaction: one fsync for all (group commit)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            answers = [[self._decide_and_record(alert, now, limits, inventory, dry_run, remote) for alert in alerts]
                       for alerts, remote in notifications]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return answers

    def _decide_and_record(self, alert: Alert, now: float, limits: Limits, inventory: frozenset, dry_run: bool,
                           remote: str | None) -> Recorded:
        db = self.db
        dry = int(dry_run)
        decision = decide(alert, self.view(alert, now, limits, inventory, dry_run), limits, now, dry_run)
        ttr, acted = None, False
        if decision.kind in ("started", "dry_run"):
            # A dry run records the run it would have started (done at once), so that cooldown, attempts and
            # budget apply to its later alerts as they would live; live mode never reads it.
            job_id = ("dry-" if dry_run else "") + new_job_id(now)
            decision = Decision(decision.kind, decision.reason, job_id=job_id)
            db.execute("INSERT INTO runs (job_id, host, alertname, fingerprint, starts_at, created, started, ended,"
                       " status, dry) VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (job_id, alert.host, alert.alertname, alert.fingerprint, alert.starts_at, now,
                        now if dry_run else None, now if dry_run else None, "dry_run" if dry_run else "queued", dry))
        if decision.kind in ("started", "joined", "dry_run", "resolved"):
            db.execute("INSERT OR IGNORE INTO handled (fingerprint, starts_at, status, job_id, dry, ts)"
                       " VALUES (?,?,?,?,?,?)", (alert.fingerprint, alert.starts_at, alert.status, decision.job_id, dry,
                                                 now))
        if decision.kind == "resolved":
            ttr = time_to_recover(alert)
            # The time to recover of an episode the receiver acted on (a run reached the host) is what the
            # histogram is for; the row keeps it either way.
            acted = db.execute(f"SELECT 1 FROM runs WHERE fingerprint=? AND starts_at=? AND dry=? AND status NOT IN"  # noqa: S608 - "?" only
                               f" ({_marks(NOT_ATTEMPTS)})",
                               (alert.fingerprint, alert.starts_at, dry, *NOT_ATTEMPTS)).fetchone() is not None
        if decision.kind in ALERTING_KINDS:  # the breaker counts hosts by their latest alerting decision
            db.execute("INSERT OR REPLACE INTO alerting VALUES (?,?)", (alert.host, now))
        # A dry run changes no state a person or live mode acts on: no quarantine, no open breaker (its later
        # alerts meet the same rule again and get the same decision).
        if decision.quarantines and not dry_run:
            db.execute("INSERT OR IGNORE INTO quarantine VALUES (?,?,?)", (alert.host, now, decision.reason))
        if decision.trips_breaker and not dry_run:
            db.execute("UPDATE breaker SET opened=?, reason=? WHERE id=1", (now, decision.reason))
        row_id = self._insert_decision(now, decision.kind, decision.reason, alert, decision.job_id, remote, ttr=ttr)
        return Recorded(alert, decision, row_id, ttr, acted)

    def record_rejection(self, kind: str, reason: str, now: float, remote: str | None) -> int:
        """A request refused before its alerts were read (unauthorized, too large, bad request)."""
        return self._insert_decision(now, kind, reason, remote=remote)

    def mark_running(self, job_id: str, now: float, private_data_dir: str) -> None:
        self.db.execute("UPDATE runs SET status='running', started=?, private_data_dir=? WHERE job_id=?",
                        (now, private_data_dir, job_id))

    def finish_run(self, job_id: str, now: float, status: str, rc: int | None, duration: float | None,
                   report_path: str | None, explanation: str | None = None) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE runs SET status=?, rc=?, duration=?, ended=?, report_path=?, explanation=? WHERE job_id=?",
                   (status, rc, duration, now, report_path, explanation, job_id))
        if status != "successful" and not (status in NO_VERDICT and self._retried(job_id)):
            # The alert is still firing; a later notification of it may try again, after the cooldown.
            db.execute("DELETE FROM handled WHERE job_id=? AND status='firing'", (job_id,))
        db.execute("COMMIT")

    def _retried(self, job_id: str) -> bool:
        """Whether the alert of this run (fingerprint and startsAt) already had a run that said nothing about the
        host (NO_VERDICT) before it: that run was retried once, so this one is not retried again and its alert
        stays handled (a person looks at why the receiver keeps stopping; a new episode of the alert runs)."""
        return self.db.execute(
            f"SELECT 1 FROM runs r JOIN runs o ON o.fingerprint=r.fingerprint AND o.starts_at=r.starts_at"  # noqa: S608 - "?" only
            f" AND o.dry=r.dry AND o.job_id<>r.job_id AND o.created<=r.created WHERE r.job_id=?"
            f" AND o.status IN ({_marks(NO_VERDICT)})", (job_id, *NO_VERDICT)).fetchone() is not None

    def in_flight(self) -> list[str]:
        """Runs recorded queued or running."""
        return [r["job_id"] for r in self.db.execute("SELECT job_id FROM runs WHERE status IN (?,?) ORDER BY created",
                                                     ACTIVE)]

    def interrupt_in_flight(self, now: float) -> list[str]:
        """At start: runs a previous process left queued or running are recorded as interrupted."""
        jobs = [r["job_id"] for r in self.db.execute(
            "SELECT job_id FROM runs WHERE status IN (?,?) ORDER BY created", ACTIVE)]
        for job_id in jobs:
            row = self.db.execute("SELECT host FROM runs WHERE job_id=?", (job_id,)).fetchone()
            self.finish_run(job_id, now, "interrupted", None, None, None, "the receiver stopped during the run")
            self._insert_decision(now, "interrupted", "the receiver stopped during the run", job_id=job_id,
                                  host=row["host"])
        return jobs

    def release(self, host: str, now: float, who: str, why: str | None = None, forget_attempts: bool = False) -> bool:
        """Take a quarantined host out of quarantine (its earlier attempts no longer count), recording who and
        why. A host that is not quarantined is left alone and nothing is recorded (False), unless
        forget_attempts: then only its earlier attempts no longer count."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            released = db.execute("DELETE FROM quarantine WHERE host=?", (host,)).rowcount > 0
            if not released and not forget_attempts:
                return False
            db.execute("INSERT OR REPLACE INTO releases VALUES (?,?)", (host, now))
            what = "released" if released else "earlier attempts forgotten"
            self._insert_decision(now, "released", f"{what} by {who}" + (f": {why}" if why else ""), host=host)
        finally:
            db.execute("COMMIT")
        return True

    def start_maintenance(self, hosts: list[str], now: float, until: float, who: str, reason: str) -> None:
        """Hosts in maintenance until `until`: their alerts are recorded and skipped. One row per host."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for host in hosts:
                db.execute("INSERT OR REPLACE INTO maintenance (host, since, until, who, reason) VALUES (?,?,?,?,?)",
                           (host, now, until, who, reason))
                self._insert_decision(now, "maintenance_start", f"by {who} until {_iso(until)}: {reason}", host=host)
        finally:
            db.execute("COMMIT")

    def set_silence(self, host: str, silence_id: str) -> None:
        self.db.execute("UPDATE maintenance SET silence_id=? WHERE host=?", (silence_id, host))

    def end_maintenance(self, hosts: list[str] | None, now: float, who: str, reason: str) -> list[dict]:
        """End maintenance for these hosts (None: every window that has expired by now); the windows ended."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if hosts is None:
                ended = [dict(r) for r in db.execute("SELECT * FROM maintenance WHERE until<=?", (now,))]
            else:
                ended = [dict(r) for r in db.execute(
                    f"SELECT * FROM maintenance WHERE host IN ({_marks(tuple(hosts))})", hosts)]  # noqa: S608 - "?" only
            for window in ended:
                db.execute("DELETE FROM maintenance WHERE host=?", (window["host"],))
                self._insert_decision(now, "maintenance_end", f"by {who}: {reason}", host=window["host"])
        finally:
            db.execute("COMMIT")
        return ended

    def maintenance(self, now: float) -> list[dict]:
        return [dict(r) for r in self.db.execute(
            "SELECT host, since, until, who, reason, silence_id FROM maintenance WHERE until>? ORDER BY host", (now,))]

    def reset_breaker(self, now: float) -> bool:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        was_open = db.execute("SELECT opened FROM breaker WHERE id=1").fetchone()["opened"] is not None
        db.execute("UPDATE breaker SET opened=NULL, reason=NULL, reset_at=? WHERE id=1", (now,))
        self._insert_decision(now, "reset", "breaker reset by an operator" if was_open else "breaker was closed")
        db.execute("COMMIT")
        return was_open

    def prune(self, now: float, keep_days: int, max_bytes: int | None = None) -> int:
        """Audit rows older than keep_days go, finished runs too; then the oldest rows until the audit holds at
        most max_bytes. Quarantine and breaker state stay. How many decision rows went."""
        db = self.db
        removed = db.execute("DELETE FROM decisions WHERE ts<?", (now - keep_days * 86400,)).rowcount
        # runs stay for the longest window a limit can have (7 days), so that pruning never forgets an attempt
        runs_keep_s = max(keep_days, 8) * 86400
        db.execute("DELETE FROM runs WHERE created<? AND status NOT IN (?,?)", (now - runs_keep_s, *ACTIVE))
        db.execute("DELETE FROM handled WHERE ts<?", (now - runs_keep_s,))  # replays come within minutes
        while max_bytes is not None and self.size() > max_bytes:
            # a tenth of the rows a round (at least 100): few rounds, and the newest history kept; the handled
            # alerts (resolved ones of any host included) go the same way once no decision row is left
            table, key = ("decisions", "id") if db.execute("SELECT 1 FROM decisions LIMIT 1").fetchone() else (
                "handled", "ts")
            count = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - a table of ours
            if count == 0:
                break
            cut = db.execute(f"SELECT {key} FROM {table} ORDER BY {key} LIMIT 1 OFFSET ?",  # noqa: S608 - ours
                             (min(count - 1, max(100, count // 10)),)).fetchone()[0]
            gone = db.execute(f"DELETE FROM {table} WHERE {key}<=?", (cut,)).rowcount  # noqa: S608 - ours
            removed += gone if table == "decisions" else 0
        return removed

    def size(self) -> int:
        """Bytes the store's pages hold (free pages, reused by later rows, not counted)."""
        page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        return (pages - self.db.execute("PRAGMA freelist_count").fetchone()[0]) * page_size

    # --- reading for operators -----------------------------------------------------------------
    def state(self, now: float | None = None) -> dict:
        breaker = self.db.execute("SELECT opened, reason FROM breaker WHERE id=1").fetchone()
        return {
            "maintenance": self.maintenance(time.time() if now is None else now),
            "breaker_open": breaker["opened"] is not None,
            "breaker_reason": breaker["reason"],
            "quarantined": [dict(r) for r in self.db.execute("SELECT host, since, reason FROM quarantine")],
            "runs_in_progress": self.db.execute(
                "SELECT count(*) FROM runs WHERE status='running'").fetchone()[0],
        }

    def rows(self, host: str | None = None, since: float | None = None, limit: int | None = None) -> list[dict]:
        """Decision rows with their run's outcome, oldest first."""
        query = ("SELECT d.id, d.ts, d.kind, d.host, d.alertname, d.fingerprint, d.starts_at, d.status, d.job_id,"
                 " d.reason, d.remote, d.ttr, r.status AS run_status, r.rc, r.duration, r.report_path,"
                 " r.private_data_dir FROM decisions d LEFT JOIN runs r ON r.job_id = d.job_id"
                 " AND d.kind IN ('started', 'interrupted') WHERE 1=1")
        params: list = []
        if host is not None:
            query += " AND d.host=?"
            params.append(host)
        if since is not None:
            query += " AND d.ts>=?"
            params.append(since)
        query += " ORDER BY d.id DESC"
        if limit:
            query += " LIMIT ?"
            params.append(limit)
        return [dict(r) for r in self.db.execute(query, params)][::-1]

    def run(self, job_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM runs WHERE job_id=?", (job_id,)).fetchone()
        return dict(row) if row else None
