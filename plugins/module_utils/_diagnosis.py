# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure classifiers behind container_diagnosis: why a worker container died, and what to do.

classify() turns an observation (docker inspect State, log lines, kernel OOM events, disk, daemon,
mount and Ray head checks) into an ordered list of findings; the first is the cause. diagnose()
adds the remediation id that playbooks/recover.yml applies, the repeat verdict for OOMs and a
recommendation. Runs on managed hosts: Python 3.9+ standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import re

from ansible_collections.fleetwarden.fleet.plugins.module_utils import _container_fs as container_fs
from ansible_collections.fleetwarden.fleet.plugins.module_utils._node import parse_timestamp
from ansible_collections.fleetwarden.fleet.plugins.module_utils._recovery_plan import REMEDIATION_OF_CAUSE
from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_state import (
    EXIT_MEANINGS,
    interpret_exit_code,
    unit_names,
)

CAUSES = (
    "running", "normal_exit", "oom_killed", "gpu_oom", "segfault", "sigterm", "sigkill",
    "disk_full", "daemon_down", "mount_lost", "head_unreachable",
    "image_missing", "config_error", "unknown",
)

# Order in which findings win: host faults first (nothing recovers while they last), then what the
# container's own state proves, then what the exit status alone suggests.
PRECEDENCE = (
    "daemon_down", "image_missing", "disk_full", "mount_lost", "oom_killed", "gpu_oom", "segfault",
    "config_error", "head_unreachable", "sigkill", "sigterm", "normal_exit", "unknown",
)

OOM_CAUSES = ("oom_killed", "gpu_oom")

# Accelerator out-of-memory messages as the frameworks print them. TPU HBM exhaustion (JAX/XLA)
# counts as gpu_oom: the remedy is the same.
GPU_OOM_PATTERNS = (
    ("pytorch", re.compile(r"(?:torch\.(?:cuda\.)?OutOfMemoryError|RuntimeError): CUDA out of memory")),
    ("pytorch", re.compile(r"CUDA out of memory\. Tried to allocate")),
    ("jax", re.compile(r"RESOURCE_EXHAUSTED: (?:Out of memory|.*Ran out of memory in memory space)", re.I)),
    ("jax", re.compile(r"XlaRuntimeError: RESOURCE_EXHAUSTED")),
    ("tensorflow", re.compile(r"ResourceExhaustedError.*OOM when allocating tensor|OOM when allocating tensor")),
    ("cuda", re.compile(r"CUDA error: out of memory|cudaErrorMemoryAllocation|CUDA_ERROR_OUT_OF_MEMORY")),
    ("cuda", re.compile(r"CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED|NCCL.*Cuda failure 'out of memory'")),
)
_ENOSPC = re.compile(r"No space left on device|\[Errno 28\]|ENOSPC", re.I)
_DOCKER_LOG_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) ?(.*)$")

REDACTED = "<redacted>"
_SENSITIVE_KEY = re.compile(
    r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|PRIVATE|CERT|COOKIE|SESSION|SIGNATURE|SALT|DSN", re.I)
# Values that are secrets whatever their key is called.
_SECRET_VALUES = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWT
    re.compile(r"\b(?:hf|ghp|gho|ghs|github_pat|glpat|xox[bpas]|sk|rpa)[-_][A-Za-z0-9_-]{16,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\bya29\.[A-Za-z0-9_-]{20,}"),  # Google OAuth access token
    re.compile(r"(?<=Bearer )[A-Za-z0-9._~+/-]{8,}=*"),
)
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)", re.I)
_KEY_VALUE = re.compile(r"\b([A-Za-z_][A-Za-z0-9_.-]*)(=|: ?)(\S+)")


def strip_docker_timestamp(line):
    """(epoch or None, text) for a `docker logs --timestamps` line."""
    match = _DOCKER_LOG_TIMESTAMP.match(line)
    if not match:
        return None, line
    return parse_timestamp(match.group(1)), match.group(2)


def merge_docker_logs(stdout, stderr, limit):
    """Interleave the container's stdout and stderr (as `docker logs --timestamps` splits them) by time.

    Keeps the last `limit` lines; lines without a timestamp keep their place after the previous one.
    """
    entries = []
    for stream, text in enumerate((stdout or "", stderr or "")):
        last = 0.0
        for position, line in enumerate(text.splitlines()):
            epoch, _unused = strip_docker_timestamp(line)
            last = epoch if epoch is not None else last
            entries.append((last, stream, position, line))
    entries.sort(key=lambda entry: entry[:3])
    lines = [entry[3] for entry in entries]
    return lines[-limit:] if limit else []


def find_gpu_oom(lines):
    """[{framework, line}] for lines that report accelerator out-of-memory."""
    matches = []
    for line in lines:
        for framework, pattern in GPU_OOM_PATTERNS:
            if pattern.search(line):
                matches.append({"kind": "gpu_oom", "framework": framework, "line": line})
                break
    return matches


def find_enospc(lines):
    return [{"kind": "enospc", "framework": None, "line": line} for line in lines if _ENOSPC.search(line)]


def is_sensitive_key(key):
    return bool(_SENSITIVE_KEY.search(key or ""))


def redact_text(text):
    """Mask secrets inside free text: known token shapes, URL passwords, KEY=value with a secret-ish KEY."""
    for pattern in _SECRET_VALUES:
        text = pattern.sub(REDACTED, text)
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    return _KEY_VALUE.sub(
        lambda m: m.group(1) + m.group(2) + REDACTED if is_sensitive_key(m.group(1)) else m.group(0), text)


# Env values that are never secret and help a person read the evidence; every other value is redacted.
PUBLIC_ENV_KEYS = ("PATH", "HOME", "HOSTNAME", "LANG", "LANGUAGE", "LC_ALL", "TERM", "TZ", "container",
                   "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "FLEETWARDEN_WORKER",
                   "FLEETWARDEN_SETUP_COUNT", "FLEETWARDEN_SETUP_CONTINUE_ON_ERROR")
_SETUP_KEY = re.compile(r"^FLEETWARDEN_SETUP_[0-9]+$")
# Shorter values are not searched for in free text (too many false hits); their env entry is still redacted.
MIN_SECRET_LENGTH = 6


def redact_env(env, include_sensitive=False):
    """Config.Env (["KEY=value", ...]) as a dict; every value but PUBLIC_ENV_KEYS' is masked unless
    include_sensitive (the setup commands, base64-encoded in FLEETWARDEN_SETUP_<n>, included)."""
    result = {}
    for item in env or []:
        key, _sep, value = item.partition("=")
        if not include_sensitive and key not in PUBLIC_ENV_KEYS and value:
            value = REDACTED
        result[key] = value
    return result


def env_secrets(env):
    """The secret strings of a container's Config.Env: every value but PUBLIC_ENV_KEYS', and each setup
    command decoded from its base64 FLEETWARDEN_SETUP_<n> variable."""
    secrets = set()
    for item in env or []:
        key, _sep, value = item.partition("=")
        if key in PUBLIC_ENV_KEYS or not value:
            continue
        secrets.add(value)
        if _SETUP_KEY.match(key):
            try:
                secrets.add(base64.b64decode(value, validate=True).decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                pass
    return sorted(s for s in secrets if len(s) >= MIN_SECRET_LENGTH)


def secret_encodings(secret):
    """The forms a secret takes in text: itself, base64 (standard and URL-safe, at each of the three byte
    alignments inside a longer encoded stream, so only the characters the secret alone decides), hex, and
    percent-encoding."""
    raw = secret.encode("utf-8")
    forms = {secret, raw.hex(), raw.hex().upper(), _percent(raw)}
    for pad in (0, 1, 2):
        data = b"\0" * pad + raw
        whole = len(data) // 3 * 4
        skip = {0: 0, 1: 2, 2: 3}[pad]
        for encoded in (base64.b64encode(data), base64.urlsafe_b64encode(data)):
            core = encoded.decode("ascii")[skip:whole]
            if len(core) >= 8:
                forms.add(core)
        if pad == 0:
            forms.add(base64.b64encode(raw).decode("ascii"))
    return sorted((f for f in forms if len(f) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def _percent(raw):
    return "".join(chr(b) if chr(b).isalnum() or chr(b) in "-._~" else "%%%02X" % b for b in raw)


def redact_secrets(text, secrets):
    """Replace every known secret in text, in each of its encodings (secret_encodings), then redact_text."""
    if not isinstance(text, str):
        return text
    for secret in secrets or ():
        for form in secret_encodings(secret):
            if form in text:
                text = text.replace(form, REDACTED)
    return redact_text(text)


def parse_docker_info(rc, stdout, stderr):
    """Daemon health from `docker info --format '{{json .}}'`: {healthy, version, root_dir, error}.

    Old CLIs print the JSON with ServerErrors and exit 0 when the daemon is down; newer ones exit 1.
    """
    info = {}
    try:
        info = json.loads(stdout) if stdout and stdout.strip() else {}
    except ValueError:
        info = {}
    errors = list(info.get("ServerErrors") or [])
    if rc != 0 and (stderr or "").strip():
        errors.append(stderr.strip())
    version = info.get("ServerVersion") or None
    healthy = rc == 0 and bool(version) and not errors
    if not healthy and not errors:
        errors.append("docker info exited {0} without a server version".format(rc))
    return {
        "healthy": healthy,
        "version": version,
        "root_dir": info.get("DockerRootDir") or None,
        "error": "; ".join(errors) or None,
    }


def daemon_error_kind(error):
    """'permission' when the socket refused us (not a daemon fault), else 'down'."""
    if error and "permission denied" in error.lower():
        return "permission"
    return "down"


def parse_host_port(address, default_port=6379):
    """'10.0.0.5:6379' -> ('10.0.0.5', 6379); '[fd00::5]:6379' -> ('fd00::5', 6379); 'head' -> ('head', 6379).

    Raises ValueError on a port that is not a number.
    """
    address = (address or "").strip()
    if address.startswith("["):
        host, _sep, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif address.count(":") == 1:
        host, _sep, port = address.partition(":")
    else:
        host, port = address, ""
    if not host:
        raise ValueError("no host in {0!r}".format(address))
    return host, int(port) if port else default_port


def parse_history_time(value):
    if isinstance(value, (int, float)):
        return float(value)
    return parse_timestamp(str(value)) if value else None


def _state(observation):
    return observation.get("state") or {}


def _running(observation):
    return is_running(_state(observation))


def _oom_evidence(observation):
    """Kernel OOM kills near the death that belong to this container, or that name no container."""
    events = observation.get("oom_events") or []
    mine = [event for event in events if event.get("this_container")]
    if mine:
        return mine
    return [event for event in events if not event.get("container_id")]


STATE_FIELDS = ("Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode", "Error",
                "StartedAt", "FinishedAt")


def is_running(state):
    return bool(state.get("Running")) and not state.get("Restarting")


def container_evidence(container, include_sensitive=False):
    """The docker inspect fields a diagnosis shows: state, exit, restart count, limits, image, env."""
    container = container or {}
    state = container.get("State") or {}
    host_config = container.get("HostConfig") or {}
    config = container.get("Config") or {}
    return {
        "state": dict((key, state.get(key)) for key in STATE_FIELDS) if container else None,
        "exit": interpret_exit_code(state.get("ExitCode")) if container and not is_running(state) else None,
        "restart_count": container.get("RestartCount"),
        "memory_limit_bytes": host_config.get("Memory"),
        "memory_swap_bytes": host_config.get("MemorySwap"),
        "shm_size_bytes": host_config.get("ShmSize"),
        "bounded_filesystems": container_fs.bounded_filesystems(container),
        "image": config.get("Image"),
        "env": redact_env(config.get("Env"), include_sensitive),
    }


def select_oom_events(events, container_id, at, oom_window_s, repeat_window_s):
    """Mark each kernel OOM event this_container; return (events near the death, kills in the repeat window).

    Near: within oom_window_s before `at` (up to 60 s after, for clock skew); events of this container
    without a wall-clock time count as near. Kills: this container's kills within repeat_window_s.
    """
    near = []
    kills = 0
    for event in events:
        event["this_container"] = bool(container_id) and event.get("container_id") == container_id
        when = event.get("time")
        if (when is None and event["this_container"]) or (
                when is not None and at - oom_window_s <= when <= at + 60):
            near.append(event)
        if event["this_container"] and (when is None or when >= at - repeat_window_s):
            kills += 1
    return near, kills


def classify(observation):
    """Ordered findings [{cause, reason}] for an observation; the first finding is the cause.

    The observation holds: daemon {healthy, error}; exists; image; image_present (bool or None);
    state (docker inspect State); log_lines (text without timestamps); oom_events (kernel OOM kills
    near the death, each with this_container); disks [{path, used_pct, inodes_used_pct, full}];
    mounts [{path, healthy, error}]; ray_head {address, reachable, error} or None; shm_size;
    bounded_filesystems (_container_fs.bounded_filesystems of the container: its tmpfs mounts with a size).
    """
    findings = []

    def add(cause, reason):
        findings.append({"cause": cause, "reason": reason})

    daemon = observation.get("daemon") or {}
    if not daemon.get("healthy", True):
        add("daemon_down", "the Docker daemon does not answer: {0}".format(daemon.get("error")))
    name = observation.get("name")
    if daemon.get("healthy", True) and not observation.get("exists"):
        if observation.get("image_present") is False:
            add("image_missing", "container {0} does not exist and image {1} is not on the host".format(
                name, observation.get("image")))
        else:
            add("unknown", "container {0} does not exist".format(name))
    for disk in observation.get("disks") or []:
        if disk.get("full"):
            add("disk_full", "{0} is {1}% full (inodes {2}%)".format(
                disk["path"], disk.get("used_pct"), disk.get("inodes_used_pct")))
    for mount in observation.get("mounts") or []:
        if mount.get("checked", True) and not mount.get("healthy"):
            add("mount_lost", "mount {0}: {1}".format(mount["path"], mount.get("error")))
    head = observation.get("ray_head")
    head_down = head is not None and not head.get("reachable")

    if observation.get("exists") and not _running(observation):
        _classify_death(observation, add)
    if head_down:
        add("head_unreachable", "Ray head {0} is unreachable: {1}".format(head["address"], head.get("error")))

    order = dict((cause, rank) for rank, cause in enumerate(PRECEDENCE))
    findings.sort(key=lambda finding: order[finding["cause"]])
    return findings


def _oom_findings(observation, state, add):
    """The kernel's or docker's OOM kill, and an accelerator out-of-memory the log reports."""
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        add("oom_killed", "docker inspect State.OOMKilled is true (exit status {0})".format(code))
    elif code == 137 and _oom_evidence(observation):
        event = _oom_evidence(observation)[0]
        add("oom_killed", "kernel OOM killer killed {0} (pid {1}) {2}: {3}".format(
            event["process"], event["pid"],
            "in this container" if event.get("this_container") else "(cgroup unknown)", event["line"]))
    gpu_oom = find_gpu_oom(observation.get("log_lines") or [])
    if gpu_oom and code != 0:
        add("gpu_oom", "{0} reported accelerator out-of-memory: {1}".format(
            gpu_oom[-1]["framework"], gpu_oom[-1]["line"].strip()))


def _exit_status_findings(state, add, added):
    """What the exit status (and docker's error) alone says."""
    code = state.get("ExitCode")
    if code == 139:
        add("segfault", "exit status 139: " + EXIT_MEANINGS[139])
    if code in (125, 126, 127) or state.get("Error"):
        add("config_error", "exit status {0}: {1}{2}".format(
            code, interpret_exit_code(code)["meaning"],
            "; docker says: " + state["Error"] if state.get("Error") else ""))
    if code == 137 and "oom_killed" not in added:
        add("sigkill", "exit status 137 and no OOM kill recorded for this container")
    if code == 143:
        add("sigterm", "exit status 143: " + EXIT_MEANINGS[143])
    if code == 0 and parse_timestamp(state.get("StartedAt")) is not None:
        add("normal_exit", "the main process exited with status 0")


def _enospc_findings(observation, add):
    """No space left on device in the log: a bounded container filesystem, or one the checks do not see."""
    enospc = find_enospc(observation.get("log_lines") or [])
    if not enospc or any(disk.get("full") for disk in observation.get("disks") or []):
        return
    if observation.get("bounded_filesystems"):
        add("disk_full", container_fs.full_filesystem_reason(enospc[-1]["line"], observation["bounded_filesystems"]))
    else:
        add("unknown", "the log says '{0}' but docker's root and / are below the threshold: a container "
                       "filesystem such as /dev/shm (ShmSize {1} bytes) or a volume filled up".format(
                           enospc[-1]["line"].strip(), observation.get("shm_size")))


def _classify_death(observation, add_finding):
    added = []

    def add(cause, reason):
        added.append(cause)
        add_finding(cause, reason)

    state = _state(observation)
    _oom_findings(observation, state, add)
    _exit_status_findings(state, add, added)
    _enospc_findings(observation, add)
    if not added:
        add("unknown", interpret_exit_code(state.get("ExitCode"))["meaning"])


def assess_repeat(cause, at, history, window_s, threshold, container_id=None, kernel_kills=0):
    """Count this worker's deaths, of any cause, within window_s before `at`.

    history holds earlier `record`s ({cause, at, container_id}) kept by the caller (one per death that
    recover.yml saw); the current death counts once, and a record of this same death (same container and
    time) is not counted twice. kernel_kills (kernel OOM kills inside this container in the window) is a
    floor for the count of an OOM death, for containers whose processes were OOM-killed before the one that
    ended it. A worker that is running has no death to count.
    """
    repeat = {"count": 0, "window_s": window_s, "threshold": threshold, "repeated": False}
    if cause in ("running",) or cause not in CAUSES:
        return repeat
    count = 1
    for record in history or []:
        when = parse_history_time(record.get("at"))
        if record.get("cause") in (None, "running") or when is None or at is None:
            continue
        if record.get("container_id") == container_id and container_id and abs(when - at) < 1:
            continue  # this very death, recorded by an earlier run
        if at - window_s <= when <= at:
            count += 1
    if cause in OOM_CAUSES:
        count = max(count, kernel_kills or 0)
    repeat["count"] = count
    repeat["repeated"] = count >= threshold
    return repeat


def _memory_limit(observation):
    limit = observation.get("memory_limit") or 0
    return "{0:.1f} GiB".format(limit / 1024.0 ** 3) if limit else "no limit"


def recommend(cause, findings, observation, repeat):
    """A sentence or two for the operator: what happened and what will or should be done."""
    reason = findings[0]["reason"] if findings else ""
    texts = {
        "running": "The container is running and no host fault was found; nothing to do.",
        "normal_exit": "The worker's main process ended on its own with status 0. A Ray worker must block "
                       "(ray start --block, not a timed sleep); recreate it through its unit and check its command.",
        "oom_killed": "The kernel OOM killer ended the container (memory limit {0}). Recreate it; if it repeats, "
                      "lower host memory use (batch size, dataloader workers, Ray object store) or raise the "
                      "limit.".format(_memory_limit(observation)),
        "gpu_oom": "The job ran out of accelerator memory ({0}). Recreate it; if it repeats, reduce the batch "
                   "size, use mixed precision or gradient checkpointing, and check gpu_facts for other "
                   "processes holding GPU memory.".format(reason),
        "segfault": "The process crashed with SIGSEGV, usually in native code (CUDA, a driver/library mismatch, "
                    "a custom op). Recreate it; if it repeats, compare driver and CUDA versions.",
        "sigterm": "The container was stopped with SIGTERM (docker stop, systemctl stop, shutdown or "
                   "preemption). Recreate it through its unit if it should be running.",
        "sigkill": "The container got SIGKILL but no OOM kill was recorded: docker kill, a stop timeout or an "
                   "operator. Recreate it through its unit.",
        "disk_full": "{0}. Prune stopped containers, dangling images and build cache (never volumes), then "
                     "recreate the worker.".format(reason),
        "daemon_down": "{0}. Start dockerd, wait until it answers, then check the worker again.".format(reason),
        "mount_lost": "{0}. Remount it, then restart the worker.".format(reason),
        "head_unreachable": "{0}. Wait for the head (bounded), then rejoin the worker.".format(reason),
        "image_missing": "{0}. Recreating through the unit pulls the image; where the registry is unreachable, "
                         "load the image first.".format(reason),
        "config_error": "{0}. Recreating fails the same way: fix the worker's image, command or device "
                        "options, then recreate.".format(reason),
        "unknown": "No known cause matched ({0}). Read the log lines in the evidence, then recreate the worker "
                   "through its unit.".format(reason),
    }
    text = texts[cause]
    if repeat.get("repeated"):
        text = ("{0} deaths within {1} s (threshold {2}), this one {3}: recreating again would loop; the "
                "worker needs a person. ".format(repeat["count"], repeat["window_s"], repeat["threshold"], cause)
                + text)
    return text


def diagnose(observation, history=None, repeat_window_s=3600, repeat_threshold=3, at=None, kernel_kills=0):
    """classify() plus remediation, repeat verdict and recommendation."""
    findings = classify(observation)
    if findings:
        cause = findings[0]["cause"]
    elif observation.get("exists") and _running(observation):
        cause = "running"
    else:
        cause = "unknown"
    repeat = assess_repeat(cause, at, history, repeat_window_s, repeat_threshold,
                           observation.get("container_id"), kernel_kills)
    remediation = "report_only" if repeat["repeated"] else REMEDIATION_OF_CAUSE[cause]
    return {
        "cause": cause,
        "findings": findings,
        "remediation": remediation,
        "repeat": repeat,
        "recommendation": recommend(cause, findings, observation, repeat),
    }


# --- which workers to diagnose, and with what: one home for container_diagnosis (declarations_dir) and the
# recovery role's filter (recovery_diagnosis_requests, for recovery_workers) -------------------------------------
def worker_mount_points(mounts):
    """Mount points of a worker's gcsfuse_mounts: entries are dicts with ``mountpoint``, or paths."""
    points = []
    for mount in mounts or []:
        point = mount.get("mountpoint") if isinstance(mount, dict) else mount
        if not isinstance(point, str) or not point.startswith("/"):
            raise ValueError("worker_mount_points: %r has no absolute mountpoint" % (mount,))
        points.append(point)
    return points


def diagnosis_request(worker, ray_head_address=None):
    """container_diagnosis's per-worker options for a worker declaration: name, unit, image, mount points, and
    the Ray head to check (the worker's own, else ``ray_head_address``; none for a Ray head, whose own container
    says why it died)."""
    if not isinstance(worker, dict) or not worker.get("name"):
        raise ValueError("every worker needs a name, got %r" % (worker,))
    request = {"name": worker["name"], "unit": unit_names(worker["name"])["worker"],
               "image": worker.get("image"), "mounts": worker_mount_points(worker.get("gcsfuse_mounts"))}
    is_head = (worker.get("metadata") or {}).get("ray_role") == "head"
    head = worker.get("ray_head_address") or ray_head_address
    if head and not is_head:
        request["ray_head_address"] = head
    return request
