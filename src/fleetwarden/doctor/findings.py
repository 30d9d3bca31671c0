"""The doctor's vocabulary, in one place: statuses, priorities, thresholds, and what each finding recommends.

A check is OK, WARN, FAIL or SKIP, with evidence. A FAIL or WARN may name a recommendation: its id, priority,
action and command live in RECOMMENDATIONS, so one finding on five hosts gives one recommendation for five hosts.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field

STATUSES = ("OK", "WARN", "FAIL", "SKIP")
PRIORITIES = ("HIGH", "MEDIUM", "LOW")
CATEGORIES = ("configuration", "ssh", "inventory", "workers", "hosts", "pipeline", "drift")

# Defaults of the thresholds; a host variable fleetwarden_doctor_<name> overrides one for that host.
THRESHOLDS = {
    "disk_warn_pct": 85, "disk_fail_pct": 95,
    "memory_warn_pct": 90, "memory_fail_pct": 97,
    "restart_warn_fraction": 0.5,
    "pod_starting_max_s": 600,
}


@dataclass
class Check:
    id: str
    category: str
    status: str
    summary: str
    host: str | None = None
    worker: str | None = None
    evidence: dict = field(default_factory=dict)
    recommendation: str | None = None  # a key of RECOMMENDATIONS

    def as_dict(self) -> dict:
        return asdict(self)


# id -> (priority, action, command template). {inv} (-i per inventory source), {hosts} (comma-separated),
# {host}, {console} and {key} are filled in; a command is one line an operator can paste.
RECOMMENDATIONS = {
    "fix-configuration": ("HIGH", "Fix the fields the preflight names, then check again before any host changes",
                          "ansible-playbook {inv} site.yml --tags always --check"),
    "provide-secrets": ("HIGH", "Define the secrets the fleet declares (vault or environment); they were not found",
                        "ansible-inventory {inv} --host {host} --vars"),
    "fix-controller-key": ("HIGH", "Make the controller's key pair usable: Ed25519, mode 0600, and the public half "
                                   "derived from the private key",
                           "chmod 600 {key} && ssh-keygen -y -f {key} | diff - {key}.pub"),
    "start-sshd": ("HIGH", "sshd does not accept connections: start it from the host's console",
                   "{console} systemctl start ssh"),
    "fix-host-key": ("HIGH", "The host's SSH key is unknown or changed: verify it out of band, then pin it",
                     "ssh-keygen -F {host} -f ~/.ssh/known_hosts"),
    "fix-ssh-access": ("HIGH", "The controller cannot log in: check the user and key the inventory names",
                       "ssh -o BatchMode=yes {host} true"),
    "apply-ssh-keys": ("HIGH", "authorized_keys differs from the declared ssh_keys policy: apply the ssh_keys role",
                       "ansible-playbook {inv} site.yml --tags ssh_keys --limit {hosts}"),
    "recover-worker": ("HIGH", "Diagnose and restart the failed workers (recover.yml keeps the evidence first)",
                       "ansible-playbook {inv} playbooks/recover.yml -e target={hosts}"),
    "deploy-workers": ("HIGH", "Put the missing image or mount back by applying the host and worker plays",
                       "ansible-playbook {inv} site.yml --limit {hosts}"),
    "watch-restart-loop": ("MEDIUM", "A worker keeps restarting: read its last exits before the budget runs out",
                           "ansible-playbook {inv} playbooks/diagnose.yml -e target={hosts}"),
    "rejoin-ray": ("HIGH", "Workers are not ALIVE in the Ray head: restart them so they rejoin",
                   "ansible-playbook {inv} playbooks/recover.yml -e target={hosts}"),
    "account-ray-nodes": ("MEDIUM", "The Ray head lists ALIVE nodes that no inventory host accounts for: find and "
                                    "stop them, or add their hosts to the inventory",
                          "ansible-inventory {inv} --graph"),
    "start-docker": ("HIGH", "dockerd does not answer: start it (live-restore keeps running containers)",
                     "ansible {inv} {hosts} -m ansible.builtin.systemd_service "
                     "-a 'name=docker state=started'"),
    "apply-docker-settings": ("HIGH", "dockerd's settings drifted from the declared ones: apply the docker_engine role",
                              "ansible-playbook {inv} site.yml --tags docker_engine --limit {hosts}"),
    "free-disk": ("HIGH", "A filesystem is almost full: remove unused images and stopped containers",
                  "ansible {inv} {hosts} -m ansible.builtin.command -a 'docker system prune --all --force "
                  "--filter until=168h'"),
    "watch-disk": ("MEDIUM", "A filesystem is filling up: see what uses docker's space",
                   "ansible {inv} {hosts} -m ansible.builtin.command -a 'docker system df'"),
    "relieve-memory": ("MEDIUM", "Memory is short or the OOM killer has been busy: read the kills and set limits",
                       "ansible-playbook {inv} playbooks/diagnose.yml -e target={hosts}"),
    "drain-gpu": ("HIGH", "A GPU reports uncorrectable ECC errors, pending page retirement or a hardware XID: "
                  "drain the host and reset or replace the GPU",
                  "ansible-playbook {inv} playbooks/diagnose.yml -e target={hosts}"),
    "recreate-tpu": ("HIGH", "TPU VMs were preempted or terminated: recreate them",
                     "ansible-playbook {inv} playbooks/recover_preempted_tpu.yml -e target={hosts}"),
    "remove-ghost-hosts": ("MEDIUM", "Hosts in a static inventory or the cache are gone from the cloud: remove them "
                                     "or refresh the cache",
                           "ansible-inventory {inv} --flush-cache --graph"),
    "restart-pods": ("HIGH", "RunPod pods are stopped or stuck starting: restart or replace them",
                     "runpodctl start pod {hosts}"),
    "reset-breaker": ("HIGH", "Automatic recovery is stopped: the receiver's circuit breaker is open. Find why many "
                      "hosts failed at once (fleetwarden receiver status), then close it",
                      "fleetwarden receiver status && fleetwarden receiver reset  # on {hosts}, the receiver's host"),
    "release-quarantined": ("MEDIUM", "The receiver quarantined hosts whose recovery kept failing: fix them, then "
                            "release each one",
                            "fleetwarden receiver status  # on {hosts}, the receiver's host; then: fleetwarden "
                            "receiver release HOST"),
    "check-pipeline": ("MEDIUM", "The healing pipeline does not answer: alerts would not reach recover.yml",
                       "ansible {inv} {hosts} -m ansible.builtin.uri -a 'url=http://127.0.0.1:9090/-/ready'"),
    "apply-site": ("LOW", "site.yml would change these hosts: review the diff, then apply it",
                   "ansible-playbook {inv} site.yml --check --diff --limit {hosts}"),
}


def render_command(rec_id: str, inventories: list[str], hosts: list[str], extra: dict | None = None) -> str:
    _priority, _action, template = RECOMMENDATIONS[rec_id]
    values = {"inv": " ".join("-i " + shlex.quote(i) for i in inventories),
              "hosts": shlex.quote(",".join(hosts) or "all"), "host": shlex.quote(hosts[0]) if hosts else "HOST",
              "key": "KEY", "console": "ssh HOST"}
    values.update(extra or {})
    return template.format(**values)


def threshold(host_vars: dict, name: str):
    value = host_vars.get("fleetwarden_doctor_" + name)
    return THRESHOLDS[name] if value is None else type(THRESHOLDS[name])(value)
