"""Unit tests for plugins/module_utils/_diagnosis.py: exit codes, GPU OOM patterns, redaction, classification."""

import base64
import json
import urllib.parse
from pathlib import Path

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _diagnosis as diag
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _recovery_plan as recovery_plan
from ansible_collections.fleetwarden.fleet.plugins.module_utils._node import parse_kernel_oom_events

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
OOM_CONTAINER = "5f5fbbfadc198f2d1012b7bf2dcbb5155039b7880c85ce788c085060186a5050"
DEATH = 1709648551.567890123  # FinishedAt of the recorded containers
STARTED = "2024-03-05T13:10:03.012345678Z"
FINISHED = "2024-03-05T14:22:31.567890123Z"
TORCH_OOM = (FIXTURES / "gpu-h100" / "torch-cuda-oom.log").read_text().splitlines()[4]


def inspect(name):
    return json.loads((FIXTURES / "diagnosis" / name).read_text())[0]


def observation(exit_code=None, running=False, **overrides):
    """A healthy host around a container; exit_code makes it an exited one."""
    obs = {
        "name": "ray-worker", "exists": True, "container_id": OOM_CONTAINER, "image": "fleet/ray-worker:2.9.3-cu121",
        "image_present": None, "daemon": {"healthy": True, "error": None},
        "state": {"Status": "running", "Running": True, "Restarting": False, "OOMKilled": False, "ExitCode": 0,
                  "Error": "", "StartedAt": STARTED, "FinishedAt": "0001-01-01T00:00:00Z"},
        "log_lines": [], "oom_events": [],
        "disks": [{"path": "/var/lib/docker", "used_pct": 40.0, "inodes_used_pct": 3.0, "full": False},
                  {"path": "/", "used_pct": 30.0, "inodes_used_pct": 5.0, "full": False}],
        "mounts": [], "ray_head": None, "memory_limit": 68719476736, "shm_size": 10737418240,
    }
    if exit_code is not None and not running:
        obs["state"] = dict(obs["state"], Status="exited", Running=False, ExitCode=exit_code, FinishedAt=FINISHED)
    obs.update(overrides)
    return obs


def exited(code, **state):
    return dict(observation(code)["state"], **state)


def oom_event(container_id=OOM_CONTAINER, time=DEATH - 1, this_container=None):
    return {"time": time, "pid": 48390, "process": "python3", "scope": "memcg", "container_id": container_id,
            "line": "Memory cgroup out of memory: Killed process 48390 (python3)",
            "this_container": container_id == OOM_CONTAINER if this_container is None else this_container}


FULL_DISK = [{"path": "/var/lib/docker", "used_pct": 97.2, "inodes_used_pct": 12.0, "full": True},
             {"path": "/", "used_pct": 30.0, "inodes_used_pct": 5.0, "full": False}]
HEAD_DOWN = {"address": "10.130.0.115:6379", "reachable": False, "error": "[Errno 111] Connection refused"}
HEAD_UP = {"address": "10.130.0.115:6379", "reachable": True, "error": None}
LOST_MOUNT = [{"path": "/mnt/gcsfuse", "checked": True, "healthy": False,
               "error": "Transport endpoint is not connected"}]


@pytest.mark.parametrize(("code", "signal", "meaning"), [
    (0, None, "exited normally with status 0"),
    (1, None, "general application error (status 1)"),
    (125, None, "docker could not create or start the container (status 125)"),
    (126, None, "the container command could not be invoked: not executable or permission denied (status 126)"),
    (127, None, "the container command was not found (status 127)"),
    (137, "SIGKILL", "killed by SIGKILL (128+9): the kernel OOM killer, docker kill, or a stop timeout"),
    (139, "SIGSEGV", "segmentation fault, SIGSEGV (128+11)"),
    (143, "SIGTERM", "terminated by SIGTERM (128+15): docker stop, systemctl stop, a shutdown or a preemption"),
    (255, None, "exit status 255: the program exited with -1 or an unspecified fatal error"),
    (134, "SIGABRT", "killed by SIGABRT (128+6)"),
    (158, None, "killed by signal 30 (128+30)"),
    (42, None, "application-specific exit status 42"),
    (None, None, "no exit status"),
])
def test_interpret_exit_code(code, signal, meaning):
    assert diag.interpret_exit_code(code) == {"code": code, "signal": signal, "meaning": meaning}


@pytest.mark.parametrize(("line", "framework"), [
    (TORCH_OOM, "pytorch"),  # the real H100 capture
    ("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity; "
     "75.12 GiB already allocated; 1.06 GiB free; 76.80 GiB reserved in total by PyTorch)", "pytorch"),
    ("torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB", "pytorch"),
    ("jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate "
     "17179869184 bytes.", "jax"),
    ("RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Ran out of memory in memory space hbm. "
     "Used 17.52G of 15.48G hbm. Exceeded hbm capacity by 2.04G.", "jax"),
    ("tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor with "
     "shape[8192,8192] and type float on /job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc",
     "tensorflow"),
    ("RuntimeError: CUDA error: out of memory", "cuda"),
    ("RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`", "cuda"),
    ("cudaErrorMemoryAllocation: out of memory", "cuda"),
])
def test_find_gpu_oom_recognises_framework_messages(line, framework):
    assert diag.find_gpu_oom(["step 12", line]) == [{"kind": "gpu_oom", "framework": framework, "line": line}]


@pytest.mark.parametrize("line", [
    "grpc._channel._InactiveRpcError: status = StatusCode.RESOURCE_EXHAUSTED, details = "
    "\"Received message larger than max (4194304 vs. 4194304)\"",
    "RESOURCE_EXHAUSTED: Received message larger than max",
    "MemoryError",
    "Killed",
    "step 1190 loss 2.3097 lr 3.0e-04 tokens/s 41187",
    "(raylet) [2024-03-05 14:22:30] memory_monitor.cc:190: Memory usage 0.96 > 0.95, killing a worker",
])
def test_find_gpu_oom_ignores_other_lines(line):
    assert diag.find_gpu_oom([line]) == []


@pytest.mark.parametrize(("line", "found"), [
    ("OSError: [Errno 28] No space left on device: '/tmp/ckpt/step_1200'", True),
    ("write /var/lib/docker/tmp/GetImageBlob: no space left on device", True),  # Go prints it lowercase
    ("ENOSPC: no space left on device, write", True),
    ("saving checkpoint", False),
])
def test_find_enospc(line, found):
    assert bool(diag.find_enospc([line])) is found


@pytest.mark.parametrize(("text", "expected"), [
    ("HF_TOKEN=hf_QmVyeVNlY3JldFRva2VuRm9yVGVzdHM", "HF_TOKEN=<redacted>"),
    ("Using HF_TOKEN=hf_QmVyeVNlY3JldFRva2VuRm9yVGVzdHM from the environment",
     "Using HF_TOKEN=<redacted> from the environment"),
    ("token is hf_QmVyeVNlY3JldFRva2VuRm9yVGVzdHM", "token is <redacted>"),
    ("postgresql://ray:s3cr3t-pass@10.130.0.9:5432/metrics", "postgresql://ray:<redacted>@10.130.0.9:5432/metrics"),
    ("password: hunter2", "password: <redacted>"),
    ("aws key AKIAIOSFODNN7EXAMPLE", "aws key <redacted>"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
     "jwt <redacted>"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----", "<redacted>"),
    ("step 1190 loss 2.3097 lr 3.0e-04", "step 1190 loss 2.3097 lr 3.0e-04"),
    ("PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True", "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"),
    (TORCH_OOM, TORCH_OOM),
])
def test_redact_text(text, expected):
    assert diag.redact_text(text) == expected


def test_redact_env_masks_every_value_but_the_public_ones():
    env = diag.redact_env(inspect("inspect-oom-killed.json")["Config"]["Env"])
    assert env["HF_TOKEN"] == diag.REDACTED
    assert env["WANDB_API_KEY"] == diag.REDACTED
    assert env["METRICS_DSN"] == diag.REDACTED
    # Any value may be a secret: a key name says nothing.
    assert env["RAY_ADDRESS"] == diag.REDACTED
    assert env["MARIN_PREFIX"] == diag.REDACTED
    assert env["PATH"].startswith("/")
    assert len(env) == 11


def test_redact_env_masks_values_under_innocent_keys_and_setup_commands():
    setup = base64.b64encode(b"echo hf_QmVyeVNlY3JldFRva2VuRm9yVGVzdHM > /tmp/t").decode()
    env = diag.redact_env(["DB=postgresql://u:pw@db:5432/x", "NOTE=plain words", "EMPTY=",
                           "FLEETWARDEN_SETUP_0=" + setup, "FLEETWARDEN_SETUP_COUNT=1"])
    assert env == {"DB": "<redacted>", "NOTE": "<redacted>", "EMPTY": "", "FLEETWARDEN_SETUP_0": "<redacted>",
                   "FLEETWARDEN_SETUP_COUNT": "1"}


SECRET_SETUP = "curl -H 'X-Api: s3cretValue42' https://internal/bootstrap | sh"  # noqa: S105 - fake, must be redacted


@pytest.mark.parametrize("encode", [
    lambda s: s,
    lambda s: base64.b64encode(s.encode()).decode(),
    lambda s: base64.b64encode(b"x" + s.encode()).decode(),  # inside a longer stream, another alignment
    lambda s: base64.b64encode(b"xy" + s.encode() + b"tail").decode(),
    lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    lambda s: s.encode().hex(),
    lambda s: urllib.parse.quote(s, safe=""),
], ids=["plain", "base64", "base64-offset-1", "base64-offset-2", "urlsafe", "hex", "percent"])
def test_secrets_of_the_env_are_redacted_from_text_in_any_encoding(encode):
    env = ["HF_TOKEN=plainTokenValue77", "RAY_ADDRESS=10.1.2.3:6379",
           "FLEETWARDEN_SETUP_0=" + base64.b64encode(SECRET_SETUP.encode()).decode(), "PATH=/usr/bin"]
    secrets = diag.env_secrets(env)
    assert SECRET_SETUP in secrets and "plainTokenValue77" in secrets and "/usr/bin" not in secrets
    for secret in ("plainTokenValue77", SECRET_SETUP):
        line = "worker said: " + encode(secret) + " and more"
        redacted = diag.redact_secrets(line, secrets)
        assert encode(secret) not in redacted and diag.REDACTED in redacted
        assert redacted.startswith("worker said: ")


def test_redact_env_include_sensitive_returns_values():
    raw = inspect("inspect-oom-killed.json")["Config"]["Env"]
    env = diag.redact_env(raw, include_sensitive=True)
    assert env == dict(item.split("=", 1) for item in raw)
    assert env["HF_TOKEN"].startswith("hf_")


def test_parse_docker_info_healthy():
    info = diag.parse_docker_info(0, (FIXTURES / "diagnosis" / "docker-info.json").read_text(), "")
    assert info == {"healthy": True, "version": "20.10.25", "root_dir": "/var/lib/docker", "error": None}


@pytest.mark.parametrize(("rc", "stdout", "stderr", "error"), [
    (1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n",
     "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"),
    # CLIs that print the client half of the JSON, with ServerErrors, and exit 0
    (0, '{"ID":"","ServerVersion":"","ServerErrors":["Cannot connect to the Docker daemon at '
        'unix:///var/run/docker.sock. Is the docker daemon running?"],"ClientInfo":{"Debug":false}}', "",
     "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"),
    (0, "\n", "", "docker info exited 0 without a server version"),
    (124, "", "docker info did not answer within 20 s", "docker info did not answer within 20 s"),
])
def test_parse_docker_info_unhealthy(rc, stdout, stderr, error):
    info = diag.parse_docker_info(rc, stdout, stderr)
    assert info["healthy"] is False
    assert info["error"] == error
    assert diag.daemon_error_kind(info["error"]) == "down"


def test_permission_denied_is_not_a_daemon_fault():
    error = ("Got permission denied while trying to connect to the Docker daemon socket at "
             "unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.24/info\": dial unix "
             "/var/run/docker.sock: connect: permission denied")
    assert diag.daemon_error_kind(diag.parse_docker_info(1, "", error)["error"]) == "permission"


def test_merge_docker_logs_interleaves_streams_by_time_and_keeps_the_tail():
    stdout = "2024-03-05T14:22:30.000000001Z out one\n2024-03-05T14:22:32.000000000Z out two\n"
    stderr = "2024-03-05T14:22:31.000000000Z err one\ncontinuation without a timestamp\n"
    assert diag.merge_docker_logs(stdout, stderr, 10) == [
        "2024-03-05T14:22:30.000000001Z out one", "2024-03-05T14:22:31.000000000Z err one",
        "continuation without a timestamp", "2024-03-05T14:22:32.000000000Z out two"]
    assert diag.merge_docker_logs(stdout, stderr, 2) == [
        "continuation without a timestamp", "2024-03-05T14:22:32.000000000Z out two"]
    assert diag.merge_docker_logs(stdout, stderr, 0) == []


@pytest.mark.parametrize(("line", "text"), [
    ("2024-03-05T14:22:31.400000004Z torch.OutOfMemoryError: x", "torch.OutOfMemoryError: x"),
    ("2024-03-05T13:10:06.456834567Z ", ""),
    ("no timestamp here", "no timestamp here"),
])
def test_strip_docker_timestamp(line, text):
    assert diag.strip_docker_timestamp(line)[1] == text


@pytest.mark.parametrize(("address", "expected"), [
    ("10.130.0.115:6379", ("10.130.0.115", 6379)),
    ("ray-head.internal:10001", ("ray-head.internal", 10001)),
    ("ray-head", ("ray-head", 6379)),
    ("[fd00::5]:6379", ("fd00::5", 6379)),
    ("[fd00::5]", ("fd00::5", 6379)),
])
def test_parse_host_port(address, expected):
    assert diag.parse_host_port(address) == expected


@pytest.mark.parametrize("address", ["", ":6379", "head:port"])
def test_parse_host_port_rejects(address):
    with pytest.raises(ValueError):
        diag.parse_host_port(address)


CLASSIFY_CASES = [
    # (id, observation, cause, remediation)
    ("running", observation(), "running", "none"),
    ("oom_flag", observation(137, state=exited(137, OOMKilled=True)), "oom_killed", "recreate_worker"),
    ("oom_kernel_this_container", observation(137, oom_events=[oom_event()]), "oom_killed", "recreate_worker"),
    ("oom_kernel_unattributed", observation(137, oom_events=[oom_event(container_id=None)]), "oom_killed",
     "recreate_worker"),
    ("oom_kernel_other_container", observation(137, oom_events=[oom_event(container_id="ab" * 32)]), "sigkill",
     "recreate_worker"),
    ("sigkill", observation(137), "sigkill", "recreate_worker"),
    ("gpu_oom", observation(1, log_lines=["Traceback (most recent call last):", TORCH_OOM]), "gpu_oom",
     "recreate_worker"),
    ("gpu_oom_but_exit_0", observation(0, log_lines=[TORCH_OOM]), "normal_exit", "recreate_worker"),
    ("segfault", observation(139), "segfault", "recreate_worker"),
    ("sigterm", observation(143), "sigterm", "recreate_worker"),
    ("normal_exit", observation(0), "normal_exit", "recreate_worker"),
    ("exit_125", observation(125), "config_error", "report_only"),
    ("exit_126", observation(126), "config_error", "report_only"),
    ("exit_127_created", observation(127, state=exited(
        127, Status="created", StartedAt="0001-01-01T00:00:00Z", FinishedAt="0001-01-01T00:00:00Z",
        Error='OCI runtime create failed: exec: "ray": executable file not found in $PATH: unknown')),
     "config_error", "report_only"),
    ("exit_255", observation(255), "unknown", "recreate_worker"),
    ("exit_1", observation(1), "unknown", "recreate_worker"),
    ("created_never_started", observation(0, state=exited(0, Status="created", StartedAt="0001-01-01T00:00:00Z")),
     "unknown", "recreate_worker"),
    ("disk_full_beats_exit", observation(1, disks=FULL_DISK), "disk_full", "prune_and_recreate"),
    ("disk_full_running", observation(disks=FULL_DISK), "disk_full", "prune_and_recreate"),
    ("daemon_down", observation(exists=False, state={}, daemon={"healthy": False, "error": "Cannot connect"}),
     "daemon_down", "start_docker"),
    ("image_missing", observation(exists=False, state={}, image_present=False), "image_missing", "recreate_worker"),
    ("container_missing", observation(exists=False, state={}, image_present=True), "unknown", "recreate_worker"),
    ("mount_lost_running", observation(mounts=LOST_MOUNT), "mount_lost", "remount_and_restart"),
    ("mount_lost_beats_oom", observation(137, state=exited(137, OOMKilled=True), mounts=LOST_MOUNT),
     "mount_lost", "remount_and_restart"),
    ("mount_unchecked_is_ignored", observation(143, mounts=[dict(LOST_MOUNT[0], checked=False, healthy=None)]),
     "sigterm", "recreate_worker"),
    ("head_down_running", observation(ray_head=HEAD_DOWN), "head_unreachable", "wait_for_head_and_rejoin"),
    ("head_down_after_exit_1", observation(1, ray_head=HEAD_DOWN), "head_unreachable", "wait_for_head_and_rejoin"),
    ("head_down_after_sigkill", observation(137, ray_head=HEAD_DOWN), "head_unreachable",
     "wait_for_head_and_rejoin"),
    ("oom_beats_head_down", observation(137, state=exited(137, OOMKilled=True), ray_head=HEAD_DOWN), "oom_killed",
     "recreate_worker"),
    ("head_up_running", observation(ray_head=HEAD_UP), "running", "none"),
    ("daemon_beats_disk", observation(exists=False, state={}, daemon={"healthy": False, "error": "x"},
                                      disks=FULL_DISK), "daemon_down", "start_docker"),
]


@pytest.mark.parametrize(("obs", "cause", "remediation"), [case[1:] for case in CLASSIFY_CASES],
                         ids=[case[0] for case in CLASSIFY_CASES])
def test_diagnose_cause_and_remediation(obs, cause, remediation):
    result = diag.diagnose(obs, at=DEATH)
    assert (result["cause"], result["remediation"]) == (cause, remediation)
    if cause != "running":
        assert result["findings"][0]["cause"] == cause
    assert result["recommendation"]


def test_findings_list_every_match_in_precedence_order():
    obs = observation(137, state=exited(137, OOMKilled=True), ray_head=HEAD_DOWN, disks=FULL_DISK)
    assert [finding["cause"] for finding in diag.classify(obs)] == ["disk_full", "oom_killed", "head_unreachable"]
    obs = observation(1, log_lines=[TORCH_OOM], ray_head=HEAD_DOWN, mounts=LOST_MOUNT)
    assert [finding["cause"] for finding in diag.classify(obs)] == ["mount_lost", "gpu_oom", "head_unreachable"]


def test_gpu_oom_finding_quotes_the_log_line():
    (finding,) = [f for f in diag.classify(observation(1, log_lines=[TORCH_OOM])) if f["cause"] == "gpu_oom"]
    assert "pytorch" in finding["reason"]
    assert "Tried to allocate 200.00 GiB" in finding["reason"]


def test_enospc_on_a_container_filesystem_points_at_shm():
    obs = observation(1, log_lines=["OSError: [Errno 28] No space left on device: '/dev/shm/plasma'"])
    result = diag.diagnose(obs, at=DEATH)
    assert result["cause"] == "unknown"
    assert "/dev/shm (ShmSize 10737418240 bytes)" in result["findings"][0]["reason"]


def test_enospc_with_a_full_bounded_tmpfs_is_disk_full():
    # A worker declared with --tmpfs /scratch:size=16m died writing to it: docker's root and / are fine.
    line = "OSError: [Errno 28] No space left on device"
    bounded = [{"path": "/scratch", "kind": "tmpfs", "size_bytes": 16 << 20}]
    result = diag.diagnose(observation(1, log_lines=[line], bounded_filesystems=bounded), at=DEATH)
    assert result["cause"] == "disk_full" and result["remediation"] == "prune_and_recreate"
    assert "/scratch (tmpfs, 16 MiB)" in result["findings"][0]["reason"]
    # Without the ENOSPC line a bounded tmpfs is no finding.
    assert diag.diagnose(observation(1, bounded_filesystems=bounded), at=DEATH)["cause"] == "unknown"


def test_container_evidence_lists_the_bounded_filesystems():
    container = {"State": {"Running": False, "ExitCode": 1}, "HostConfig": {"Tmpfs": {"/scratch": "size=16m"}}}
    assert diag.container_evidence(container)["bounded_filesystems"] == [
        {"path": "/scratch", "kind": "tmpfs", "size_bytes": 16 << 20}]


def test_config_error_quotes_docker_error():
    obs = observation(127, state=exited(127, Error='exec: "ray": executable file not found in $PATH'))
    (finding,) = diag.classify(obs)
    assert finding["reason"] == ('exit status 127: the container command was not found (status 127); docker says: '
                                 'exec: "ray": executable file not found in $PATH')


def test_every_cause_has_a_known_remediation_and_a_recommendation():
    assert set(diag.REMEDIATION_OF_CAUSE) == set(diag.CAUSES)
    assert set(diag.REMEDIATION_OF_CAUSE.values()) <= set(recovery_plan.REMEDIATION_IDS)
    assert set(diag.PRECEDENCE) == set(diag.CAUSES) - {"running"}
    for cause in diag.CAUSES:
        text = diag.recommend(cause, [{"cause": cause, "reason": "because"}], observation(), {"repeated": False})
        assert text and "{" not in text


@pytest.mark.parametrize(("history", "kernel_kills", "count", "repeated"), [
    ([], 0, 1, False),
    ([{"cause": "oom_killed", "at": DEATH - 600}], 0, 2, False),
    ([{"cause": "oom_killed", "at": DEATH - 600}, {"cause": "gpu_oom", "at": "2024-03-05T14:00:00Z"}], 0, 3, True),
    ([{"cause": "oom_killed", "at": DEATH - 4000}, {"cause": "oom_killed", "at": DEATH - 3700}], 0, 1, False),
    ([{"cause": "sigterm", "at": DEATH - 60}, {"cause": "segfault", "at": DEATH - 30}], 0, 3, True),  # any cause
    ([{"cause": "running", "at": DEATH - 60}], 0, 1, False),
    ([{"cause": "oom_killed", "at": DEATH + 600}], 0, 1, False),  # after this death: not counted
    ([{"cause": "oom_killed", "at": DEATH, "container_id": OOM_CONTAINER}], 0, 1, False),  # this very death
    ([{"cause": "oom_killed"}], 0, 1, False),  # no time: not counted
    ([], 3, 3, True),  # three kernel OOM kills inside this container in the window
])
def test_assess_repeat(history, kernel_kills, count, repeated):
    repeat = diag.assess_repeat("oom_killed", DEATH, history, 3600, 3, OOM_CONTAINER, kernel_kills)
    assert repeat == {"count": count, "window_s": 3600, "threshold": 3, "repeated": repeated}


def test_assess_repeat_counts_deaths_of_any_cause():
    # A crash loop that is not an OOM is flagged too: alert -> recover -> alert must not loop for ever.
    history = [{"cause": "sigkill", "at": DEATH - 120}, {"cause": "unknown", "at": DEATH - 60}]
    assert diag.assess_repeat("segfault", DEATH, history, 3600, 3)["repeated"] is True
    result = diag.diagnose(observation(139, state=exited(139)), history=history, at=DEATH)
    assert result["remediation"] == "report_only"
    assert result["recommendation"].startswith("3 deaths within 3600 s (threshold 3), this one segfault")


def test_a_running_worker_has_no_repeat():
    history = [{"cause": "oom_killed", "at": DEATH - 60}] * 5
    assert diag.assess_repeat("running", DEATH, history, 3600, 3)["count"] == 0


def test_repeated_oom_turns_remediation_into_report_only():
    history = [{"cause": "oom_killed", "at": DEATH - 1200}, {"cause": "oom_killed", "at": DEATH - 600}]
    result = diag.diagnose(observation(137, state=exited(137, OOMKilled=True)), history=history, at=DEATH)
    assert result["cause"] == "oom_killed"
    assert result["remediation"] == "report_only"
    assert result["repeat"]["repeated"] is True
    assert result["recommendation"].startswith("3 deaths within 3600 s (threshold 3), this one oom_killed")


def test_select_oom_events_marks_near_and_counts_kills():
    events = parse_kernel_oom_events((FIXTURES / "diagnosis" / "kernel-oom-memcg.journal").read_text())
    near, kills = diag.select_oom_events(events, OOM_CONTAINER, DEATH, 300, 3600)
    assert [event["pid"] for event in near] == [48390]
    assert kills == 2  # ray::IDLE at 13:58:12 and python3 at 14:22:30
    assert [event["this_container"] for event in events] == [True, False, True]
    near, kills = diag.select_oom_events(events, OOM_CONTAINER, DEATH, 3600, 600)
    assert [event["pid"] for event in near] == [51877, 2231, 48390]
    assert kills == 1


def test_container_evidence_from_recorded_inspect():
    evidence = diag.container_evidence(inspect("inspect-oom-killed.json"))
    assert evidence["state"] == {
        "Status": "exited", "Running": False, "Paused": False, "Restarting": False, "OOMKilled": True,
        "Dead": False, "Pid": 0, "ExitCode": 137, "Error": "", "StartedAt": STARTED, "FinishedAt": FINISHED}
    assert evidence["exit"]["signal"] == "SIGKILL"
    assert (evidence["restart_count"], evidence["memory_limit_bytes"], evidence["shm_size_bytes"]) == (
        0, 68719476736, 10737418240)
    assert evidence["image"] == "fleet/ray-worker:2.9.3-cu121"
    assert evidence["env"]["HF_TOKEN"] == diag.REDACTED


def test_container_evidence_of_running_and_missing_containers():
    running = diag.container_evidence(inspect("inspect-running.json"))
    assert running["exit"] is None and running["state"]["Pid"] == 48102
    missing = diag.container_evidence(None)
    assert missing["state"] is None and missing["env"] == {}


def test_the_unit_a_diagnosis_request_names_is_the_one_worker_service_writes():
    """_diagnosis keeps the unit's name pattern itself: importing _worker_unit would ship four more module_utils
    to every host with the worker tool. This holds the two together."""
    from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_unit import unit_names

    for name in ("ray-worker", "drill", "w_1"):
        assert diag.diagnosis_request({"name": name, "image": "x"})["unit"] == unit_names(name)["worker"]
