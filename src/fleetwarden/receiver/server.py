"""The HTTP side: POST /v1/alertmanager, GET /healthz, GET /metrics (aiohttp).

A request is answered once its alerts are decided and recorded (one SQLite transaction in the store's
own thread); runs happen afterwards, each in a process of its own (worker.py), never inside the request.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from aiohttp import ClientSession, ClientTimeout, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from fleetwarden.receiver import audit, jobs
from fleetwarden.receiver.alerts import BadNotification, parse_notification
from fleetwarden.receiver.config import Settings, read_token
from fleetwarden.receiver.guard import ConnectionGuard, GuardedRunner
from fleetwarden.receiver.limits import KINDS
from fleetwarden.receiver.run_process import run_job_in_process
from fleetwarden.receiver.store import Store

log = logging.getLogger("fleetwarden.receiver")
WEBHOOK_PATH = "/v1/alertmanager"
# Rows for refused requests (no token, bad token) are capped per minute, so a flood cannot fill the disk;
# the metric still counts every one.
REJECTION_ROWS_PER_MINUTE = 60
# How often old or surplus audit rows are pruned (audit_keep_days, audit_max_mib) while the receiver runs; a
# flood prunes sooner, after this many rows.
PRUNE_INTERVAL_S = 60
PRUNE_EVERY_ROWS = 5000


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        prefix = "fleetwarden_receiver_"
        self.requests = Counter(prefix + "requests", "HTTP requests by status code", ["code"], registry=self.registry)
        self.decisions = Counter(prefix + "decisions", "Recorded decisions by kind", ["kind"], registry=self.registry)
        self.runs = Counter(prefix + "runs", "Finished runs by result", ["result"], registry=self.registry)
        self.run_duration = Histogram(prefix + "run_duration_seconds", "Duration of recovery runs",
                                      buckets=(5, 10, 20, 30, 60, 120, 300, 600, 900, 1800), registry=self.registry)
        self.time_to_recover = Histogram(prefix + "time_to_recover_seconds",
                                         "From an alert's start to its resolution",
                                         buckets=(15, 30, 60, 120, 300, 600, 1800, 3600), registry=self.registry)
        self.in_progress = Gauge(prefix + "runs_in_progress", "Runs in progress", registry=self.registry)
        self.breaker_open = Gauge(prefix + "breaker_open", "1 while the circuit breaker is open",
                                  registry=self.registry)
        self.quarantined = Gauge(prefix + "hosts_quarantined", "Hosts in quarantine", registry=self.registry)
        self.audit_bytes = Gauge(prefix + "audit_bytes", "Bytes the audit store holds", registry=self.registry)
        self.connections_refused = Counter(prefix + "connections_refused", "Connections refused past the caps",
                                           registry=self.registry)
        for kind in KINDS:
            self.decisions.labels(kind)

    def set_state(self, state: dict) -> None:
        self.breaker_open.set(1 if state["breaker_open"] else 0)
        self.quarantined.set(len(state["quarantined"]))


class Receiver:
    def __init__(self, settings: Settings, inventory: frozenset, run_job=run_job_in_process, clock=time.time):
        self.settings = settings
        self.inventory = frozenset(inventory)
        self.token = read_token(settings.token_file).encode()
        self.run_job = run_job
        self.clock = clock
        self.metrics = Metrics()
        self.cancel = threading.Event()
        self.store: Store | None = None
        self._store_thread = ThreadPoolExecutor(1, thread_name_prefix="receiver-store")
        self._run_threads = ThreadPoolExecutor(settings.limits.max_concurrent_runs, thread_name_prefix="receiver-run")
        self._slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task] = set()
        self._active: set[str] = set()
        self._rejections: list[float] = []
        self._notify_now: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._rows_since_prune = 0
        self._pending: list = []
        self._writer: asyncio.Task | None = None
        self.write_error: str | None = None  # the last write's failure, until a write succeeds
        self.runner_guard: ConnectionGuard | None = None
        self._refusal_logged = 0.0

    async def db(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._store_thread, function, *args)

    # --- life cycle -----------------------------------------------------------------------------
    def runner(self) -> GuardedRunner:
        """The app with its connections bounded (guard.py)."""
        self.runner_guard = ConnectionGuard(self.settings.max_connections, self.settings.max_connections_per_peer,
                                            self._refused_connection)
        return GuardedRunner(self.app(), self.runner_guard, access_log=None,
                             keepalive_timeout=self.settings.header_timeout_s)

    def _refused_connection(self, kind: str, reason: str, status: int, remote: str | None) -> None:
        self.metrics.requests.labels(str(status)).inc()
        if kind == "too_many_connections":  # counted, not recorded: a flood must not become a flood of rows
            self.metrics.connections_refused.inc()
            now = self.clock()
            if now - self._refusal_logged >= 60:  # one line a minute, however many
                self._refusal_logged = now
                log.warning("refused a connection from %s: %s (%d refused so far; further refusals are counted in "
                            "fleetwarden_receiver_connections_refused_total)", remote, reason,
                            self.runner_guard.refused)
            return
        self._spawn(self.record_refusal(kind, reason, remote))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count_requests], client_max_size=self.settings.max_body_bytes)
        app.router.add_post(WEBHOOK_PATH, self.alertmanager)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_page)
        app.on_startup.append(self._startup)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _startup(self, app) -> None:
        self.settings.runs_dir.mkdir(parents=True, exist_ok=True)
        self.store = await self.db(Store, self.settings.db_path)
        # A run the previous process left (it was killed, or lost power) may still be running: its processes are
        # killed before anything is recorded or served, so a host never has two runs.
        for job_id in await self.db(self.store.in_flight):
            await asyncio.get_running_loop().run_in_executor(None, jobs.end_run, job_id)
        now = self.clock()
        interrupted = await self.db(self.store.interrupt_in_flight, now)
        for job_id in interrupted:
            log.warning("run %s was in flight when the receiver stopped: recorded as interrupted", job_id)
            self.metrics.runs.labels("interrupted").inc()
        await self._prune()
        self.metrics.set_state(await self.db(self.store.state))
        self._slots = asyncio.Semaphore(self.settings.limits.max_concurrent_runs)
        self._stopping = asyncio.Event()
        self._notify_now = asyncio.Event()
        if self.settings.notify_url:
            self._spawn(self._notify_loop())
        self._spawn(self._prune_loop())

    async def _shutdown(self, app) -> None:
        self.cancel.set()  # runs in progress stop at the runner's next check (about 1 s)
        if self._stopping:
            self._stopping.set()
        if self._notify_now:
            self._notify_now.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=60)
        self._run_threads.shutdown(wait=False, cancel_futures=True)
        if self.store:
            await self.db(self.store.close)
        self._store_thread.shutdown(wait=True)

    async def _prune(self) -> None:
        self._rows_since_prune = 0
        try:
            removed = await self.db(self.store.prune, self.clock(), self.settings.audit_keep_days,
                                    self.settings.audit_max_mib * 1024 * 1024)
            # a maintenance window ends by itself (its Alertmanager silence too, at the same time): recorded here
            for window in await self.db(self.store.end_maintenance, None, self.clock(), "the receiver",
                                        "the window is over"):
                log.info("maintenance of %s is over", window["host"])
            self.metrics.audit_bytes.set(await self.db(self.store.size))
        except sqlite3.Error:
            log.exception("could not prune the audit store")
            return
        if removed:
            log.info("pruned %d audit rows (older than %d days, or past %d MiB)", removed,
                     self.settings.audit_keep_days, self.settings.audit_max_mib)

    async def _prune_loop(self) -> None:
        while not self.cancel.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), PRUNE_INTERVAL_S)
            except TimeoutError:
                await self._prune()

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- requests -------------------------------------------------------------------------------
    @web.middleware
    async def _count_requests(self, request, handler):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self.metrics.requests.labels(str(exc.status)).inc()
            raise
        except Exception as exc:  # a defect must not answer 500: the request is refused, recorded and logged
            log.exception("could not handle a request to %s", audit.clip(request.path))
            response = await self._reject(request, 400, "bad_request",
                                          f"the request could not be handled ({type(exc).__name__})")
        self.metrics.requests.labels(str(response.status)).inc()
        return response

    def _authorized(self, request) -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # Header bytes that are not UTF-8 arrive as surrogate escapes: encode them back, never raise.
        given_bytes = given.strip().encode("utf-8", "surrogateescape")
        return scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, self.token)

    async def _reject(self, request, status: int, kind: str, reason: str) -> web.Response:
        reason = audit.clip(reason, audit.REASON_CHARS)
        await self.record_refusal(kind, reason, request.remote)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return web.json_response({"error": reason, "decision": kind}, status=status, headers=headers)

    async def record_refusal(self, kind: str, reason: str, remote: str | None) -> None:
        """A refused request's row (at most REJECTION_ROWS_PER_MINUTE) and its count (always)."""
        now = self.clock()
        self._rejections = [t for t in self._rejections if now - t < 60]
        self.metrics.decisions.labels(kind).inc()
        if len(self._rejections) < REJECTION_ROWS_PER_MINUTE and self.store is not None:
            self._rejections.append(now)
            try:
                await self.db(self.store.record_rejection, kind, reason, now, remote)
                self.write_error = None
            except sqlite3.Error as exc:
                self.write_error = str(exc)
                log.exception("could not record a %s request", kind)

    async def _read_body(self, request) -> bytes | None:
        """The body, or None when it is larger than max_body_bytes."""
        limit = self.settings.max_body_bytes
        chunks, size = [], 0
        while True:
            chunk = await request.content.read(65536)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)

    async def alertmanager(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            reason = "no bearer token" if "Authorization" not in request.headers else "wrong bearer token"
            return await self._reject(request, 401, "unauthorized", reason)
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return await self._reject(request, 413, "too_large", f"body larger than {limit} bytes")
        try:
            body = await asyncio.wait_for(self._read_body(request), self.settings.read_timeout_s)
        except TimeoutError:
            return await self._reject(request, 408, "bad_request", "body not received in time")
        if body is None:
            return await self._reject(request, 413, "too_large", f"body larger than {limit} bytes")
        try:
            alerts = parse_notification(body, self.settings.host_label)
        except BadNotification as exc:
            return await self._reject(request, 400, "bad_request", str(exc))
        try:
            recorded = await self._record(alerts, request.remote)
        except sqlite3.Error:
            log.exception("could not record a notification; answering 503 so that Alertmanager retries")
            return web.json_response({"error": "the audit record could not be written"}, status=503)
        except Exception as exc:  # a value the checks above let through: refused, never a dead writer
            log.exception("could not record a notification")
            return await self._reject(request, 400, "bad_request",
                                      f"the notification could not be recorded ({type(exc).__name__})")
        answer = []
        for item in recorded:
            decision = item.decision
            self.metrics.decisions.labels(decision.kind).inc()
            if item.ttr is not None and item.acted:
                self.metrics.time_to_recover.observe(item.ttr)
            if decision.kind == "started":
                self._spawn(self._run(decision.job_id, item.alert.host))
            if (decision.trips_breaker or decision.quarantines) and self._notify_now:
                self._notify_now.set()
            answer.append({"fingerprint": item.alert.fingerprint, "host": item.alert.host,
                           "decision": decision.kind, "reason": decision.reason, "job_id": decision.job_id,
                           "row": item.row_id})
        if any(i.decision.trips_breaker or i.decision.quarantines for i in recorded):
            self.metrics.set_state(await self.db(self.store.state))
        return web.json_response({"decisions": answer}, status=202)

    async def _record(self, alerts, remote):
        """Queue a notification for the writer; it commits whatever queued meanwhile in one transaction."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((alerts, remote, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_pending())
        return await future

    async def _write_pending(self) -> None:
        """Commit what queued, batch by batch. Whatever goes wrong, every waiter gets an answer and the
        writer lives on: a batch that fails is written again one notification at a time, so one bad
        notification fails alone."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                outcomes = await self._write_batch(batch)
                if isinstance(outcomes, Exception):
                    outcomes = [outcomes] if len(batch) == 1 else [await self._write_one(item) for item in batch]
            except BaseException:  # cancelled at shutdown: every waiter still gets an answer
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(RuntimeError("the receiver is shutting down"))
                raise
            for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # its request went away
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def _write_one(self, item):
        outcome = await self._write_batch([item])
        return outcome if isinstance(outcome, Exception) else outcome[0]

    async def _write_batch(self, batch: list):
        """The batch's answers (one list per notification), or the exception that stopped it."""
        try:
            answers = await self.db(self.store.record_batch, [(a, r) for a, r, _ in batch], self.clock(),
                                    self.settings.limits, self.inventory, self.settings.dry_run)
        except Exception as exc:
            self.write_error = str(exc) if isinstance(exc, sqlite3.Error) else self.write_error
            return exc
        self.write_error = None
        self._rows_since_prune += sum(len(answer) for answer in answers)
        if self._rows_since_prune >= PRUNE_EVERY_ROWS:
            await self._prune()
        return answers

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            state = await self.db(self.store.state)
        except sqlite3.Error as exc:
            return web.json_response({"status": "audit store unavailable", "error": str(exc)}, status=503)
        if self.write_error is not None:
            return web.json_response({"status": "audit store not writable", "error": self.write_error}, status=503)
        return web.json_response({"status": "ok", "breaker_open": state["breaker_open"],
                                  "hosts_quarantined": len(state["quarantined"]),
                                  "hosts_in_maintenance": [w["host"] for w in state["maintenance"]],
                                  "runs_in_progress": state["runs_in_progress"], "dry_run": self.settings.dry_run})

    async def metrics_page(self, request: web.Request) -> web.Response:
        try:
            self.metrics.set_state(await self.db(self.store.state))
            self.metrics.audit_bytes.set(await self.db(self.store.size))
        except sqlite3.Error:
            log.exception("could not read the state for /metrics")
        response = web.Response(body=generate_latest(self.metrics.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    # --- runs -----------------------------------------------------------------------------------
    async def _run(self, job_id: str, host: str) -> None:
        loop = asyncio.get_running_loop()
        async with self._slots:
            if self.cancel.is_set():
                await self.db(self.store.finish_run, job_id, self.clock(), "canceled", None, None, None,
                              "canceled before it started: the receiver is shutting down")
                return
            private_data_dir = str(self.settings.runs_dir / job_id)
            await self.db(self.store.mark_running, job_id, self.clock(), private_data_dir)
            self._active.add(job_id)
            self.metrics.in_progress.inc()
            try:
                result = await loop.run_in_executor(self._run_threads, self.run_job, self.settings, job_id, host,
                                                    self.cancel)
            except Exception as exc:
                log.exception("run %s failed to run", job_id)
                result = jobs.RunResult("error", None, 0.0, None, f"{type(exc).__name__}: {exc}")
            finally:
                self.metrics.in_progress.dec()
                self._active.discard(job_id)
            await self.db(self.store.finish_run, job_id, self.clock(), result.status, result.rc, result.duration,
                          result.report_path, result.explanation)
        log.info("run %s for %s: %s (rc %s, %.1f s)", job_id, host, result.status, result.rc, result.duration)
        self.metrics.runs.labels(result.status).inc()
        self.metrics.run_duration.observe(result.duration)
        await loop.run_in_executor(None, jobs.rotate_runs, self.settings.runs_dir, self.settings.keep_runs,
                                   self.settings.keep_days, set(self._active))

    # --- alerts for a person ----------------------------------------------------------------------
    async def _notify_loop(self) -> None:
        async with ClientSession(timeout=ClientTimeout(total=10)) as session:
            while not self.cancel.is_set():
                try:
                    await self._notify(session, await self.db(self.store.state))
                except Exception:  # Alertmanager away: the metrics still say it, and the next round retries
                    log.exception("could not send the receiver's own alerts to %s", self.settings.notify_url)
                try:
                    await asyncio.wait_for(self._notify_now.wait(), self.settings.notify_interval_s)
                except TimeoutError:
                    pass
                self._notify_now.clear()

    async def _notify(self, session: ClientSession, state: dict) -> None:
        alerts = person_alerts(state, self.clock(), self.settings.notify_interval_s)
        if alerts:
            url = self.settings.notify_url.rstrip("/") + "/api/v2/alerts"
            async with session.post(url, json=alerts) as response:
                response.raise_for_status()


def person_alerts(state: dict, now: float, interval_s: int) -> list[dict]:
    """Alertmanager v2 alerts for what needs a person; they end unless re-sent, so a reset clears them."""
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3 * interval_s))
    common = {"severity": "page", "component": "recovery_receiver"}
    alerts = []
    if state["breaker_open"]:
        alerts.append({"labels": {"alertname": "FleetwardenReceiverBreakerOpen", **common},
                       "annotations": {"summary": "automatic recovery stopped: circuit breaker open",
                                       "description": f"{state['breaker_reason']}; "
                                                      "`fleetwarden receiver reset` resumes it"},
                       "endsAt": ends})
    for entry in state["quarantined"]:
        alerts.append({"labels": {"alertname": "FleetwardenHostQuarantined", "fleet_host": entry["host"], **common},
                       "annotations": {"summary": f"{entry['host']} quarantined: automatic recovery stopped for it",
                                       "description": f"{entry['reason']}; `fleetwarden receiver release "
                                                      f"{entry['host']}` resumes it"},
                       "endsAt": ends})
    return alerts


async def serve(settings: Settings, inventory: frozenset, ready=None) -> None:
    """Run until SIGTERM or SIGINT; then cancel runs in progress and record them."""
    receiver = Receiver(settings, inventory)
    runner = receiver.runner()
    await runner.setup()
    site = web.TCPSite(runner, settings.listen_address, settings.port)
    await site.start()
    log.info("receiver listening on %s:%d%s%s", settings.listen_address, settings.port, WEBHOOK_PATH,
             " (dry run)" if settings.dry_run else "")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if ready:
        ready()
    await stop.wait()
    log.info("stopping: canceling runs in progress")
    await runner.cleanup()
