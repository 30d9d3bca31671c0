"""Inventory against the cloud against reality, compared on resource identity, not on inventory host names.

A host's identity comes from the variables the dynamic inventories set (fleetwarden.fleet.gce_gpu: project,
zone, name; gcp_tpu: project, zone, node name and worker index; runpod: the pod id), so a change in how an
inventory names its hosts does not turn every host into a ghost. Pure functions; tests feed them host
variables that the inventory plugins' own shaping functions made from recorded API pages.
"""

from __future__ import annotations

from .findings import Check

PREEMPTED_TPU_STATES = ("PREEMPTED", "TERMINATED")
STOPPED_POD_STATES = ("EXITED", "TERMINATED", "STOPPED")
DYNAMIC_SUFFIXES = {"gce_gpu": ("gce_gpu.yml", "gce_gpu.yaml"), "gcp_tpu": ("gcp_tpu.yml", "gcp_tpu.yaml"),
                    "runpod": ("runpod.yml", "runpod.yaml")}


def identity(host_vars: dict) -> tuple | None:
    """The cloud resource a host is, or None for a host no cloud inventory describes (the lab, bare metal)."""
    if host_vars.get("runpod_id"):
        return ("runpod", host_vars["runpod_id"])
    if host_vars.get("tpu_node_name"):
        return ("gcp_tpu", host_vars.get("tpu_project"), host_vars.get("tpu_zone"), host_vars["tpu_node_name"],
                int(host_vars.get("tpu_worker_index") or 0))
    if host_vars.get("gce_name"):
        return ("gce_gpu", host_vars.get("gce_project"), host_vars.get("gce_zone"), host_vars["gce_name"])
    return None


def label(ident: tuple) -> str:
    kind = ident[0]
    if kind == "runpod":
        return f"runpod pod {ident[1]}"
    if kind == "gcp_tpu":
        return f"TPU {ident[1]}/{ident[2]}/{ident[3]} worker {ident[4]}"
    return f"GCE {ident[1]}/{ident[2]}/{ident[3]}"


def compare(known: dict[str, dict], cloud: dict[str, dict] | None, answered: dict[str, bool], now: float,
            first_seen: dict[str, float], starting_max_s: float = 600,
            listed_kinds: tuple[str, ...] | None = None) -> tuple[list[Check], dict[str, float]]:
    """Checks for hosts the inventory knows against what the clouds list now.

    known: {inventory host: vars} (static inventory and cache); cloud: {inventory host: vars} from a fresh
    listing, or None when no cloud was asked; answered: {inventory host: did fleet_status answer};
    first_seen: {identity label: epoch} of pods first seen starting (kept between runs). Returns the checks
    and the new first_seen.
    """
    known_ids = {identity(v): h for h, v in known.items() if identity(v)}
    if cloud is None and not known_ids:
        return [Check("inventory.cloud", "inventory", "SKIP", "no host of a cloud inventory (gce_gpu, gcp_tpu, "
                      "runpod) in this inventory")], {}
    cloud = cloud or {}
    cloud_ids = {identity(v): (h, v) for h, v in cloud.items() if identity(v)}
    kinds = set(listed_kinds) if listed_kinds is not None else {i[0] for i in cloud_ids}
    checks, seen = [], {}
    ghosts = sorted(h for ident, h in known_ids.items() if ident[0] in kinds and ident not in cloud_ids)
    for host in ghosts:
        checks.append(Check("inventory.ghost", "inventory", "FAIL", f"{label(identity(known[host]))} is in the "
                            "inventory but gone from the cloud", host,
                            evidence={"identity": list(identity(known[host]))},
                            recommendation="remove-ghost-hosts"))
    for ident, (host, host_vars) in sorted(cloud_ids.items(), key=lambda item: item[1][0]):
        name = label(ident)
        if ident[0] == "gcp_tpu" and host_vars.get("tpu_state") in PREEMPTED_TPU_STATES:
            checks.append(Check("inventory.tpu_preempted", "inventory", "FAIL", f"{name} is "
                                f"{host_vars['tpu_state']}", host, evidence={"state": host_vars["tpu_state"],
                                                                              "health": host_vars.get("tpu_health")},
                                recommendation="recreate-tpu"))
        elif ident[0] == "gce_gpu" and host_vars.get("gce_status") in ("TERMINATED", "STOPPED", "SUSPENDED"):
            checks.append(Check("inventory.gce_stopped", "inventory", "WARN", f"{name} is {host_vars['gce_status']}",
                                host, evidence={"status": host_vars["gce_status"]}))
        elif ident[0] == "runpod":
            checks += _pod_checks(host, host_vars, name, now, first_seen, seen, starting_max_s)
    listed_up = sorted(h for ident, (h, v) in cloud_ids.items() if _is_up(v))
    silent = [h for h in listed_up if h in answered and not answered[h]]
    for host in silent:
        checks.append(Check("inventory.silent", "inventory", "FAIL", "the cloud says it runs, but it does not "
                            "answer", host, evidence={"identity": list(identity(cloud[host]))},
                            recommendation="start-sshd"))
    checks.append(Check("inventory.cloud", "inventory", "FAIL" if ghosts or silent else "OK",
                        f"{len(cloud_ids)} listed by the clouds, {len(listed_up)} running, "
                        f"{sum(1 for h in listed_up if answered.get(h))} answered; {len(ghosts)} ghosts",
                        evidence={"listed": len(cloud_ids), "running": len(listed_up), "ghosts": ghosts,
                                  "kinds": sorted(kinds)}))
    return checks, seen


def _is_up(host_vars: dict) -> bool:
    if host_vars.get("runpod_id"):
        return (host_vars.get("runpod_desired_status") == "RUNNING"
                and host_vars.get("runpod_uptime_seconds") is not None)
    if host_vars.get("tpu_node_name"):
        return host_vars.get("tpu_state") == "READY"
    return host_vars.get("gce_status") == "RUNNING"


def _pod_checks(host, host_vars, name, now, first_seen, seen, starting_max_s) -> list[Check]:
    status = host_vars.get("runpod_desired_status")
    if status in STOPPED_POD_STATES:
        return [Check("inventory.pod_stopped", "inventory", "FAIL", f"{name} is {status}", host,
                      evidence={"desired_status": status}, recommendation="restart-pods")]
    if status == "RUNNING" and host_vars.get("runpod_uptime_seconds") is None:
        since = first_seen.get(name, now)
        seen[name] = since
        waited = now - since
        stuck = waited > starting_max_s
        return [Check("inventory.pod_starting", "inventory", "FAIL" if stuck else "WARN",
                      f"{name} has been starting for {waited:.0f} s" + (" (stuck in spawning)" if stuck else ""),
                      host, evidence={"starting_for_s": round(waited), "max_s": starting_max_s},
                      recommendation="restart-pods" if stuck else None)]
    return []


def unaccounted_ray_nodes(ray_nodes: list[dict], host_ips: set[str]) -> Check:
    """Ray nodes ALIVE in the head whose address no inventory host has."""
    alive = [n for n in ray_nodes if n.get("state") == "ALIVE"]
    strangers = sorted(n["ip"] for n in alive if n.get("ip") not in host_ips)
    if strangers:
        return Check("inventory.ray_unaccounted", "inventory", "WARN", f"{len(strangers)} ALIVE Ray nodes that no "
                     "inventory host accounts for", evidence={"node_ips": strangers},
                     recommendation="account-ray-nodes")
    return Check("inventory.ray_unaccounted", "inventory", "OK", f"every one of {len(alive)} ALIVE Ray nodes is an "
                 "inventory host", evidence={"alive": len(alive)})
