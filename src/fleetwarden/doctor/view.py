"""`fleetwarden status`: one row per worker on every host, a line per host on top; text or JSON.

Pure: `status_document` shapes gathered observations, `format_status` renders them (colour only when asked).
"""

from __future__ import annotations

import time

RESET, RED, YELLOW, GREEN, DIM = "\033[0m", "\033[31m", "\033[33m", "\033[32m", "\033[2m"


def _ago(seconds) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def ray_alive_ips(observations: list[dict]) -> tuple[set[str] | None, str | None, list[dict]]:
    """(ALIVE node IPs, error, all nodes) from the first host whose module asked a Ray head."""
    for obs in observations:
        ray = (obs.get("result") or {}).get("ray")
        if ray is not None:
            if ray.get("error"):
                return None, ray["error"], []
            nodes = ray.get("nodes") or []
            return {n["ip"] for n in nodes if n.get("state") == "ALIVE"}, None, nodes
    return None, "no host runs a Ray head", []


def status_document(observations: list[dict], seconds: float) -> dict:
    alive, ray_error, _nodes = ray_alive_ips(observations)
    hosts, workers = [], []
    for obs in observations:
        facts = (obs.get("result") or {}).get("host") or {}
        docker = facts.get("docker") or {}
        hosts.append({
            "host": obs["name"], "reachable": bool(obs.get("result")),
            "error": obs.get("unreachable") or obs.get("failed"),
            "sshd_accepts": obs.get("ssh_port_open"),
            "dockerd": docker.get("version") if docker.get("answers") else None,
            "live_restore": docker.get("live_restore"),
            "disks": [{k: d.get(k) for k in ("path", "used_pct", "inodes_used_pct", "available_bytes")}
                      for d in facts.get("disks") or []],
            "memory_used_pct": (facts.get("memory") or {}).get("used_pct"),
            "oom_kill_count": facts.get("oom_kill_count"),
            "gpus": facts.get("gpus"),
            "seconds": obs.get("seconds"),
        })
        addresses = set(facts.get("addresses") or [])
        gpu_memory = [f"{g.get('memory_used_mib')}/{g.get('memory_total_mib')} MiB" for g in facts.get("gpus") or []
                      if "memory_used_mib" in g]
        for w in (obs.get("result") or {}).get("workers") or []:
            unit, container = w["unit"], w["container"]
            ray = None
            if w.get("role") in ("head", "worker"):
                ray = "unknown" if alive is None else ("ALIVE" if addresses & alive else "MISSING")
            exit_info = container.get("exit") or {}
            workers.append({
                "host": obs["name"], "worker": w["name"], "unit": f"{unit['active']}/{unit['sub']}",
                "unit_result": unit["result"], "container": container["status"],
                "uptime_s": container.get("uptime_s"), "restarts_last_hour": w.get("restarts_last_hour"),
                "restart_budget": w.get("restart_budget"),
                "last_exit": exit_info.get("code"), "last_exit_cause": exit_info.get("meaning"),
                "heartbeat_age_s": w.get("heartbeat_age_s"),
                "heartbeat_max_age_s": w["probe"].get("heartbeat_max_age_s"),
                "probe": _probe_word(w), "probe_last_failure": w["probe"].get("last_failure"),
                "mounts": [{"mountpoint": m["mountpoint"], "mounted": m["mounted"]} for m in w.get("mounts") or []],
                "ray": ray, "gpu_memory": gpu_memory or None, "image_present": w.get("image_present"),
            })
    return {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "duration_s": round(seconds, 2),
            "ray_error": ray_error, "hosts": hosts, "workers": workers}


def _probe_word(w: dict) -> str:
    probe = w["probe"]
    if not probe.get("enabled"):
        return "none"
    failure = probe.get("last_failure")
    if probe.get("active") not in ("active", None):
        return probe.get("active")
    if failure and failure.get("ago_s") is not None and failure["ago_s"] < 300:
        return f"failed {_ago(failure['ago_s'])} ago"
    return "passing"


def _paint(text: str, colour: str | None, use: bool) -> str:
    return f"{colour}{text}{RESET}" if use and colour else text


def _table(rows: list[list[str]], colours: list[list[str | None]], use_colour: bool) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row, paint in zip(rows, colours, strict=True):
        cells = [_paint(cell.ljust(widths[i]), paint[i], use_colour) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return lines


def format_status(doc: dict, colour: bool = False) -> str:
    host_rows = [["HOST", "REACHABLE", "DOCKERD", "DISK", "MEMORY", "OOM"]]
    host_paint = [[None] * 6]
    for h in doc["hosts"]:
        disk = ", ".join(f"{d['path']} {max(d.get('used_pct') or 0, d.get('inodes_used_pct') or 0):.0f}%"
                         for d in h["disks"] if d.get("used_pct") is not None) or "-"
        reach = "yes" if h["reachable"] and h["sshd_accepts"] is not False else (
            "session only" if h["reachable"] else f"no: {(h['error'] or '')[:40]}")
        host_rows.append([h["host"], reach, h["dockerd"] or "down", disk,
                          f"{h['memory_used_pct']:.0f}%" if h["memory_used_pct"] is not None else "-",
                          str(h["oom_kill_count"]) if h["oom_kill_count"] is not None else "-"])
        host_paint.append([None, GREEN if reach == "yes" else RED, None if h["dockerd"] else RED, None, None,
                           YELLOW if h["oom_kill_count"] else None])
    head = ["HOST", "WORKER", "UNIT", "CONTAINER", "RESTARTS/H", "LAST EXIT", "HEARTBEAT", "PROBE", "MOUNTS", "RAY",
            "GPU MEM"]
    rows, paint = [head], [[None] * len(head)]
    for w in doc["workers"]:
        healthy = w["unit"].startswith("active") and w["container"] == "running"
        restarts = f"{w['restarts_last_hour']}/{w['restart_budget']}" if w["restarts_last_hour"] is not None else "-"
        last = "-" if w["last_exit"] is None else f"{w['last_exit']} {(w['last_exit_cause'] or '')[:30]}"
        heartbeat = _ago(w["heartbeat_age_s"]) if w["heartbeat_max_age_s"] else "-"
        stale = w["heartbeat_max_age_s"] and (w["heartbeat_age_s"] is None or w["heartbeat_age_s"] < 0
                                              or w["heartbeat_age_s"] > w["heartbeat_max_age_s"])
        mounts = ",".join(("" if m["mounted"] else "!") + m["mountpoint"] for m in w["mounts"]) or "-"
        rows.append([w["host"], w["worker"], w["unit"], f"{w['container']} {_ago(w['uptime_s'])}".strip(), restarts,
                     last, heartbeat, w["probe"], mounts, w["ray"] or "-", ", ".join(w["gpu_memory"] or []) or "-"])
        paint.append([None, None, GREEN if healthy else RED, GREEN if w["container"] == "running" else RED,
                      YELLOW if w["restarts_last_hour"] else None, None, RED if stale else None,
                      None if w["probe"] in ("passing", "none") else YELLOW, RED if "!" in mounts else None,
                      {"ALIVE": GREEN, "MISSING": RED}.get(w["ray"] or ""), None])
    lines = [*_table(host_rows, host_paint, colour), ""]
    lines += _table(rows, paint, colour) if doc["workers"] else ["(no workers declared on these hosts)"]
    lines.append(_paint(f"{len(doc['hosts'])} hosts, {len(doc['workers'])} workers, read in {doc['duration_s']:.1f} s"
                        + (f"; Ray: {doc['ray_error']}" if doc.get("ray_error") else ""), DIM, colour))
    return "\n".join(lines)
