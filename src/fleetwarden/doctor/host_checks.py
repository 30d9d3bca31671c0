"""Doctor checks of one host from its gathering round: SSH, workers, Ray, dockerd, disk, memory, GPUs.

Pure functions: an observation (a plain dict: name, groups, vars, result, unreachable, failed, ssh_port_open,
ssh_banner) in, a list of Check out. Unit-tested with recorded module results.
"""

from __future__ import annotations

from ansible_collections.fleetwarden.fleet.plugins.module_utils._ssh_keys import (
    SshKeyError,
    evaluate_policy,
    parse_public_key,
)

from .findings import Check, threshold

LIVE_STATES = ("active", "reloading")


def classify_unreachable(message: str) -> tuple[str, str]:
    """(reason, recommendation) for ansible's unreachable message."""
    text = (message or "").lower()
    if "host key verification failed" in text or "remote host identification has changed" in text:
        return "HostKeyVerificationFailed", "fix-host-key"
    if "permission denied" in text or "authentication" in text:
        return "AuthenticationFailed", "fix-ssh-access"
    if "connection refused" in text:
        return "SSHConnectionRefused", "start-sshd"
    if "timed out" in text or "timeout" in text:
        return "SSHTimeout", "start-sshd"
    return "Unreachable", "start-sshd"


def ssh_checks(obs: dict) -> list[Check]:
    host = obs["name"]
    evidence = {"ssh_port": obs.get("ssh_port"), "ssh_banner": obs.get("ssh_banner")}
    if obs.get("unreachable"):
        reason, rec = classify_unreachable(obs["unreachable"])
        return [Check("ssh.reachable", "ssh", "FAIL", f"unreachable over SSH in BatchMode ({reason})", host=host,
                      evidence=dict(evidence, error=obs["unreachable"], reason=reason), recommendation=rec)]
    if obs.get("ssh_port_open") is False:
        # The module answered through a multiplexed connection, but sshd accepts no new one.
        return [Check("ssh.reachable", "ssh", "FAIL", "sshd accepts no new connection (an open multiplexed "
                      "session still answered)", host=host, evidence=dict(evidence, reason="SSHConnectionRefused"),
                      recommendation="start-sshd")]
    return [Check("ssh.reachable", "ssh", "OK", "reachable in BatchMode with a pinned host key", host=host,
                  evidence=evidence)]


def declared_keys(entries: list, policy: dict | None) -> tuple[dict, list[str]]:
    """{user: {"exclusive": bool, "fingerprints": {fp: comment}}}, problems with the declaration itself."""
    users, problems = {}, []
    for entry in entries or []:
        user = entry.get("user")
        slot = users.setdefault(user, {"exclusive": bool(entry.get("exclusive", False)), "fingerprints": {}})
        for line in entry.get("public_keys") or []:
            try:
                parsed = parse_public_key(line)
            except SshKeyError as exc:
                problems.append(f"{user}: a declared key cannot be read: {exc}")
                continue
            if policy:
                allowed, why = evaluate_policy(parsed, policy)
                if not allowed:
                    problems.append(f"{user}: declared key {parsed['fingerprint']} breaks the policy: {why}")
            slot["fingerprints"][parsed["fingerprint"]] = parsed["comment"]
    return users, problems


def _user_keys(want: dict, have: dict) -> tuple[dict, str]:
    """(evidence, status) of one user's authorized_keys against the declared keys."""
    have_fps = {k["fingerprint"]: k.get("comment", "") for k in have.get("keys", []) if "fingerprint" in k}
    missing = sorted(set(want["fingerprints"]) - set(have_fps))
    extra = sorted(set(have_fps) - set(want["fingerprints"]))
    unreadable = [k["line"] for k in have.get("keys", []) if "error" in k]
    evidence = {"missing": missing, "undeclared": extra, "unreadable_lines": unreadable,
                "exclusive": want["exclusive"], "file_error": have.get("error")}
    if missing or (extra and want["exclusive"]) or have.get("error") == "no such user":
        return evidence, "FAIL"
    return evidence, "WARN" if extra or unreadable else "OK"


def authorized_keys_check(obs: dict) -> Check:
    host, host_vars = obs["name"], obs.get("vars") or {}
    found = ((obs.get("result") or {}).get("host") or {}).get("authorized_keys") or {}
    declared, problems = declared_keys(host_vars.get("ssh_keys_authorized"), host_vars.get("ssh_keys_policy"))
    if not declared:
        return Check("ssh.authorized_keys", "ssh", "SKIP", "the fleet declares no ssh_keys_authorized", host=host)
    evidence, status = {}, "OK"
    for user, want in sorted(declared.items()):
        evidence[user], user_status = _user_keys(want, found.get(user) or {"keys": [], "error": "not read"})
        if user_status == "FAIL" or (user_status == "WARN" and status == "OK"):
            status = user_status
    if problems:
        status = "FAIL"
        evidence["declaration_problems"] = problems
    summary = {"OK": "authorized_keys match the declared ssh_keys policy",
               "WARN": "authorized_keys hold keys the policy does not declare (not exclusive)",
               "FAIL": "authorized_keys differ from the declared ssh_keys policy"}[status]
    return Check("ssh.authorized_keys", "ssh", status, summary, host=host, evidence=evidence,
                 recommendation="apply-ssh-keys" if status == "FAIL" else None)


def _unit_check(host: str, w: dict) -> Check:
    name, unit, container = w["name"], w["unit"], w["container"]
    ev = {"unit": unit, "container": {k: container.get(k) for k in ("status", "exit", "oom_killed", "uptime_s")}}
    if unit["active"] in LIVE_STATES and container["running"]:
        return Check("worker.unit", "workers", "OK", "running", host, name, ev)
    if unit["active"] == "failed" and unit.get("restarts_exhausted"):
        return Check("worker.unit", "workers", "FAIL", "unit failed: its restarts are exhausted "
                     f"({unit['restarts']} restarts, start limit {unit.get('start_limit_burst')})",
                     host, name, ev, "recover-worker")
    if unit["active"] in ("failed", "inactive", "unknown") or unit["load"] != "loaded":
        return Check("worker.unit", "workers", "FAIL", f"unit {unit['active']} ({unit['result']})",
                     host, name, ev, "recover-worker")
    if unit["active"] == "activating":
        return Check("worker.unit", "workers", "WARN", f"unit activating ({unit['sub']})", host, name, ev,
                     "watch-restart-loop")
    return Check("worker.unit", "workers", "FAIL", "unit active but its container is not running",
                 host, name, ev, "recover-worker")


def _restart_checks(host: str, w: dict, host_vars: dict) -> list[Check]:
    budget, restarts = w.get("restart_budget"), w.get("restarts_last_hour")
    if not budget or restarts is None:
        return []
    rev = {"restarts_last_hour": restarts, "budget": budget}
    if restarts >= budget:
        return [Check("worker.restarts", "workers", "FAIL", f"{restarts} restarts in the last hour: "
                      f"the budget of {budget} is spent", host, w["name"], rev, "recover-worker")]
    if restarts >= budget * threshold(host_vars, "restart_warn_fraction"):
        return [Check("worker.restarts", "workers", "WARN", f"restart loop: {restarts} of {budget} "
                      "restarts in the last hour", host, w["name"], rev, "watch-restart-loop")]
    return []


def _heartbeat_checks(host: str, w: dict) -> list[Check]:
    max_age, age = w["probe"].get("heartbeat_max_age_s"), w.get("heartbeat_age_s")
    if not max_age or not w["container"]["running"]:
        return []
    hev = {"age_s": age, "max_age_s": max_age, "probe_last_failure": w["probe"].get("last_failure")}
    if age is None or age < 0:
        return [Check("worker.heartbeat", "workers", "FAIL", "heartbeat file missing", host, w["name"], hev,
                      "recover-worker")]
    if age > max_age:
        return [Check("worker.heartbeat", "workers", "FAIL", f"stale heartbeat: {age:.0f} s old "
                      f"(max {max_age} s)", host, w["name"], hev, "recover-worker")]
    return [Check("worker.heartbeat", "workers", "OK", f"heartbeat {age:.0f} s old", host, w["name"], hev)]


def _deployment_checks(host: str, w: dict) -> list[Check]:
    """The worker's image is on the host and its declared mounts are mounted."""
    checks = []
    if w.get("image_present") is False:
        checks.append(Check("worker.image", "workers", "FAIL", f"image {w['image']} is missing on the host",
                            host, w["name"], {"image": w["image"]}, "deploy-workers"))
    lost = [m["mountpoint"] for m in w.get("mounts") or [] if not m["mounted"]]
    if lost:
        checks.append(Check("worker.mounts", "workers", "FAIL", "declared mounts are not mounted", host, w["name"],
                            {"mountpoints": lost}, "deploy-workers"))
    return checks


def worker_checks(obs: dict, alive_ips: set[str] | None, head_error: str | None) -> list[Check]:
    """Per worker: unit, restarts, heartbeat, image, mounts, and whether the Ray head lists it ALIVE."""
    host = obs["name"]
    result = obs.get("result") or {}
    addresses = set(((result.get("host") or {}).get("addresses")) or [])
    checks = []
    for w in result.get("workers") or []:
        checks.append(_unit_check(host, w))
        checks += _restart_checks(host, w, obs.get("vars") or {})
        checks += _heartbeat_checks(host, w)
        checks += _deployment_checks(host, w)
        if w.get("role") in ("head", "worker"):
            checks.append(_ray_check(host, w["name"], addresses, alive_ips, head_error))
    return checks


def _ray_check(host, name, addresses, alive_ips, head_error) -> Check:
    if alive_ips is None:
        return Check("worker.ray", "workers", "SKIP", "no Ray head answered" + (f": {head_error}" if head_error
                     else ""), host, name, {"head_error": head_error})
    joined = sorted(addresses & alive_ips)
    if joined:
        return Check("worker.ray", "workers", "OK", f"ALIVE in the Ray head as {joined[0]}", host, name,
                     {"node_ip": joined[0]})
    return Check("worker.ray", "workers", "FAIL", "not ALIVE in the Ray head", host, name,
                 {"host_addresses": sorted(addresses), "alive_node_ips": sorted(alive_ips)}, "rejoin-ray")


def docker_checks(obs: dict, defaults: dict) -> list[Check]:
    """dockerd answers, with the settings declared: the host's vars, else ``defaults`` (the roles' argument specs,
    config_checks.spec_defaults)."""
    host, host_vars = obs["name"], dict(defaults, **(obs.get("vars") or {}))
    docker = ((obs.get("result") or {}).get("host") or {}).get("docker") or {}
    if not docker.get("answers"):
        return [Check("host.dockerd", "hosts", "FAIL", "dockerd does not answer", host,
                      evidence={"error": docker.get("error")}, recommendation="start-docker")]
    checks = [Check("host.dockerd", "hosts", "OK", f"dockerd {docker.get('version')} answers", host,
                    evidence={"version": docker.get("version"), "root_dir": docker.get("root_dir")})]
    drift = {}
    want_live = host_vars["docker_engine_live_restore"]
    if bool(docker.get("live_restore")) != bool(want_live):
        drift["live_restore"] = {"declared": bool(want_live), "running": docker.get("live_restore")}
    want_driver = host_vars["docker_engine_log_driver"]
    if docker.get("log_driver") != want_driver:
        drift["log_driver"] = {"declared": want_driver, "running": docker.get("log_driver")}
    opts = ((docker.get("daemon_json") or {}).get("log-opts")) or {}
    for key, var in (("max-size", "docker_engine_log_max_size"), ("max-file", "docker_engine_log_max_file")):
        want = str(host_vars[var])
        if want_driver == "json-file" and str(opts.get(key)) != want:
            drift["log-opts." + key] = {"declared": want, "in_daemon_json": opts.get(key)}
    if drift:
        status = "FAIL" if "live_restore" in drift else "WARN"
        checks.append(Check("host.docker_settings", "hosts", status, "dockerd settings drifted from the declared: "
                            + ", ".join(sorted(drift)), host, evidence=drift, recommendation="apply-docker-settings"))
    else:
        checks.append(Check("host.docker_settings", "hosts", "OK", "live-restore and log options as declared", host))
    return checks


def disk_checks(host: str, host_vars: dict, facts: dict) -> list[Check]:
    checks = []
    warn, fail = threshold(host_vars, "disk_warn_pct"), threshold(host_vars, "disk_fail_pct")
    for disk in facts.get("disks") or []:
        if "error" in disk:
            checks.append(Check("host.disk", "hosts", "WARN", f"{disk['path']}: {disk['error']}", host, evidence=disk))
            continue
        used = max(disk["used_pct"], disk["inodes_used_pct"])
        ev = {k: disk[k] for k in ("path", "used_pct", "inodes_used_pct", "available_bytes")}
        ev.update(warn_pct=warn, fail_pct=fail)
        what = "docker's root" if disk["path"] != "/" else "/"
        if used >= fail:
            checks.append(Check("host.disk", "hosts", "FAIL", f"{what} {disk['path']} almost full: {used:.1f}% used",
                                host, evidence=ev, recommendation="free-disk"))
        elif used >= warn:
            checks.append(Check("host.disk", "hosts", "WARN", f"{what} {disk['path']} filling: {used:.1f}% used",
                                host, evidence=ev, recommendation="watch-disk"))
        else:
            checks.append(Check("host.disk", "hosts", "OK", f"{disk['path']} {used:.1f}% used", host, evidence=ev))
    return checks


def memory_checks(host: str, host_vars: dict, facts: dict) -> list[Check]:
    """Memory in use, and the kernel's OOM kills since boot."""
    checks = []
    used = (facts.get("memory") or {}).get("used_pct")
    if used is not None:
        mwarn, mfail = threshold(host_vars, "memory_warn_pct"), threshold(host_vars, "memory_fail_pct")
        status = "FAIL" if used >= mfail else "WARN" if used >= mwarn else "OK"
        checks.append(Check("host.memory", "hosts", status, f"memory {used:.1f}% used", host,
                            evidence={"used_pct": used, "warn_pct": mwarn, "fail_pct": mfail},
                            recommendation=None if status == "OK" else "relieve-memory"))
    kills = facts.get("oom_kill_count")
    if kills is None:
        checks.append(Check("host.oom", "hosts", "SKIP", "the kernel has no oom_kill counter", host))
    else:
        checks.append(Check("host.oom", "hosts", "WARN" if kills else "OK", f"{kills} OOM kills since boot", host,
                            evidence={"oom_kill_count": kills, "uptime_s": facts.get("uptime_s")},
                            recommendation="relieve-memory" if kills else None))
    return checks


def gpu_check(host: str, facts: dict) -> Check:
    gpus = facts.get("gpus")
    if gpus is None:
        return Check("host.gpu", "hosts", "SKIP", "no nvidia-smi on this host", host)
    bad = [g for g in gpus if g.get("error") or g.get("health") == "unhealthy"]
    slow = [g for g in gpus if g.get("health") == "degraded"]
    status = "FAIL" if bad else "WARN" if slow else "OK"
    why = [f"GPU {g.get('index') if g.get('index') is not None else g.get('pci_bus_id')}: {r}"
           for g in bad + slow for r in g.get("reasons") or []] + [f"nvidia-smi: {g['error']}"
                                                                  for g in bad if g.get("error")]
    return Check("host.gpu", "hosts", status, f"{len(gpus)} GPUs, {len(bad)} unhealthy, {len(slow)} "
                 "degraded (ECC, retired pages, XID)" + ("; " + "; ".join(why[:4]) if why else ""),
                 host, evidence={"gpus": gpus}, recommendation="drain-gpu" if bad else None)


def versions_check(host: str, facts: dict) -> Check:
    versions = facts.get("versions") or {}
    python = tuple(int(p) for p in (versions.get("python") or "0.0").split(".")[:2])
    summary = "python3 {}, systemd {}, docker {}".format(*(versions.get(k) for k in ("python", "systemd", "docker")))
    return Check("config.host_versions", "configuration", "OK" if python >= (3, 9) else "FAIL", summary,
                 host, evidence=versions, recommendation=None if python >= (3, 9) else "deploy-workers")


def resource_checks(obs: dict) -> list[Check]:
    """Disk, memory and OOM kills, GPUs, and the versions of what runs the workers."""
    host, host_vars = obs["name"], obs.get("vars") or {}
    facts = (obs.get("result") or {}).get("host") or {}
    return (disk_checks(host, host_vars, facts) + memory_checks(host, host_vars, facts)
            + [gpu_check(host, facts), versions_check(host, facts)])
