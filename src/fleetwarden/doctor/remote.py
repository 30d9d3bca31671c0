"""One module call per host without a play: the AnsiballZ payload built once, sent over each host's own connection.

A play (TaskQueueManager) forks a worker per host, templates every variable, discovers the interpreter with an
extra round trip and builds the payload in each worker: about 4 s a host on a loaded controller, where the module
itself takes a quarter of a second. Here the payload is built once in this process (ansible's own builder, so the
module and its module_utils travel exactly as a play would send them), cached on disk by the content it was built
from, and piped to the host's python over the inventory's connection plugin (for `ssh`: user, port, key,
HostKeyAlias/known_hosts, ssh_args with ControlPersist and the same ControlPath as ansible-playbook), one thread
per host. The module stays the one place that gathers on the host; the host needs nothing it did not need before.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import threading
import time
from pathlib import Path

# Bound on the module's run on the host (coreutils `timeout`), a little under the caller's own deadline.
REMOTE_GRACE_S = 2
# Hosts asked at once (ansible's forks were min(50, hosts) in the play this replaced).
MAX_PARALLEL = 50


def parse_module_output(rc: int, stdout: bytes | str, stderr: bytes | str) -> tuple[dict | None, str | None]:
    """(the module's result, None) or (None, why it failed) from a module run's exit status and output.

    Like ansible, tolerate noise (a login banner, a motd) around the one JSON object the module prints.
    """
    out = stdout.decode("utf-8", "replace") if isinstance(stdout, bytes) else stdout
    err = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    doc = _json_object(out)
    if doc is None:
        detail = (err.strip() or out.strip() or "no output")[-500:]
        if rc == 124:
            return None, f"the module did not finish in time (timeout): {detail}"[:500]
        return None, f"the module printed no result (rc {rc}): {detail}"[:500]
    if doc.get("failed") or rc not in (0, None):
        return None, str(doc.get("msg") or doc.get("exception") or f"rc {rc}")[:500]
    doc.pop("invocation", None)
    return doc, None


def _json_object(text: str) -> dict | None:
    """The first line-started JSON object in text, ignoring lines before it and after its end."""
    lines = text.splitlines()
    for start, line in enumerate(lines):
        if not line.lstrip().startswith("{"):
            continue
        for end in range(len(lines), start, -1):
            try:
                doc = json.loads("\n".join(lines[start:end]))
            except ValueError:
                continue
            return doc if isinstance(doc, dict) else None
    return None


def remote_command(interpreter: str, seconds: int) -> str:
    """The shell line run on the host: the payload arrives on stdin; coreutils timeout bounds the module's run."""
    return f"timeout {int(seconds)} {shlex.quote(interpreter)}"


def interpreter_for(host_vars: dict) -> str:
    """The host's ansible_python_interpreter when set (and not a discovery keyword), else python3 from its PATH."""
    value = host_vars.get("ansible_python_interpreter")
    if isinstance(value, str) and value and not value.startswith("auto"):
        return value
    return "python3"


def cache_key(sources: list[Path], ansible_version: str, module_args: dict, compression: str) -> str:
    """A digest of everything the payload is built from: the module, its module_utils, ansible and the args."""
    digest = hashlib.sha256()
    for part in (ansible_version, compression, json.dumps(module_args, sort_keys=True)):
        digest.update(part.encode() + b"\0")
    for path in sorted(sources):
        digest.update(str(path.name).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


class Payload:
    """The AnsiballZ payload of one module with fixed arguments, built by ansible's module builder once."""

    def __init__(self, module: str, module_args: dict, cache_dir: Path | None = None):
        from ansible import constants as C
        from ansible import release
        from ansible.plugins.loader import module_loader

        found = module_loader.find_plugin_with_context(module)
        if not found.resolved:
            raise RuntimeError(f"cannot find the module {module}")
        self.module = found.resolved_fqcn
        self.path = Path(found.plugin_resolved_path)
        compression = C.DEFAULT_MODULE_COMPRESSION
        utils = self.path.parents[1] / "module_utils"
        key = cache_key([self.path, *utils.glob("*.py")], release.__version__, module_args, compression)
        # One file per set of arguments (status and doctor differ), the newest build of each.
        args_id = hashlib.sha256(json.dumps(module_args, sort_keys=True).encode()).hexdigest()[:12]
        cached = (cache_dir / f"{self.module}-{args_id}-{key}.py") if cache_dir else None
        if cached and cached.exists():
            try:
                self.data = cached.read_bytes()
                return
            except OSError:
                pass
        self.data = self._build(module_args, compression)
        if cached:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(self.data)
                os.replace(tmp, cached)
                for old in cached.parent.glob(f"{self.module}-{args_id}-*.py"):
                    if old != cached:
                        old.unlink(missing_ok=True)
            except OSError:
                pass

    def _build(self, module_args: dict, compression: str) -> bytes:
        from ansible.executor.module_common import modify_module
        from ansible.parsing.dataloader import DataLoader
        from ansible.template import Templar

        # The interpreter named here only writes the payload's shebang: the payload is piped to the host's.
        built = modify_module(module_name=self.module, module_path=str(self.path), module_args=module_args,
                              templar=Templar(loader=DataLoader()),
                              task_vars={"ansible_python_interpreter": "/usr/bin/python3"},
                              module_compression=compression)
        return built.b_module_data


def connection_for(host_vars: dict, templar):
    """The host's connection plugin (ansible_connection, ssh by default) with the inventory's options set."""
    from ansible import constants as C
    from ansible.playbook.play_context import PlayContext
    from ansible.plugins.loader import connection_loader

    name = host_vars.get("ansible_connection") or C.DEFAULT_TRANSPORT
    if name in ("smart", None):
        name = "ssh"
    context = PlayContext()
    context.remote_addr = host_vars.get("ansible_host") or host_vars.get("inventory_hostname")
    connection = connection_loader.get(name, context)
    if connection is None:
        raise RuntimeError(f"no connection plugin {name!r}")
    connection.set_options(var_options=connection._resolve_option_variables(host_vars, templar))
    return connection


def run_on_host(connection, payload: bytes, interpreter: str, seconds: int) -> tuple:
    """(result, failed, unreachable): one module run over a connection plugin (ssh keeps its ControlPersist master)."""
    from ansible.errors import AnsibleConnectionFailure, AnsibleError

    try:
        rc, out, err = connection.exec_command(remote_command(interpreter, seconds), in_data=payload, sudoable=False)
    except AnsibleConnectionFailure as exc:
        return None, None, str(exc).splitlines()[0][:500] if str(exc) else "unreachable"
    except AnsibleError as exc:
        return None, str(exc)[:500], None
    if rc == 255 and not (out or b"").strip():
        # ssh's own failure (the plugin raises for most; a reset after connecting lands here)
        return None, None, (err.decode("utf-8", "replace") if isinstance(err, bytes) else err).strip()[-500:]
    result, failed = parse_module_output(rc, out, err)
    return result, failed, None


def run_all(jobs: dict[str, callable], deadline_s: float, done=None, max_parallel: int = MAX_PARALLEL) -> dict:
    """Runs jobs (name -> no-argument callable returning (result, failed, unreachable)) in daemon threads, at most
    max_parallel at once (as ansible's forks).

    A job still running at the deadline is reported as failed; its thread is left to end on its own (the remote
    side is bounded by `timeout`, the local ssh by its ConnectTimeout and ServerAliveInterval).
    """
    answers: dict[str, tuple] = {}
    lock = threading.Condition()

    closed = []
    slots = threading.BoundedSemaphore(max(1, max_parallel))

    def work(name, job):
        try:
            with slots:
                answer = job()
        except Exception as exc:  # one host's surprise is that host's failure, not the round's
            answer = (None, f"{type(exc).__name__}: {exc}"[:500], None)
        with lock:
            if closed:  # past the deadline: the round has already reported this host
                return
            answers[name] = answer
            if done:
                done(name)
            lock.notify_all()

    for name, job in jobs.items():
        threading.Thread(target=work, args=(name, job), daemon=True, name=f"fleet_status {name}").start()
    ends = time.monotonic() + deadline_s
    with lock:
        while len(answers) < len(jobs):
            left = ends - time.monotonic()
            if left <= 0:
                break
            lock.wait(left)
        closed.append(True)
        out = dict(answers)
    for name in jobs:
        out.setdefault(name, (None, f"no answer within {deadline_s:g} s", None))
    return out
