"""ansible.cfg's strategy, fleetwarden.fleet.mitogen_linear, on the lab: site.yml's tasks reach the hosts over
Mitogen, and a no_log task's secrets stay out of the output at the highest verbosity (Mitogen has its own logging,
which must not print what Ansible's no_log hides)."""

from __future__ import annotations

import base64

import pytest
from fleetwarden_testing import ray_lab

pytestmark = [pytest.mark.lab]
SECRET = "fw-connection-test-secret-0123456789"  # noqa: S105 - a made-up value the test looks for


def test_no_log_secrets_stay_out_of_the_output_over_mitogen_at_the_highest_verbosity(tmp_path, lab_baseline):
    hosts = lab_baseline
    target = sorted(hosts)[-1]
    playbook = tmp_path / "secret.yml"
    playbook.write_text(f"""---
- name: A secret through a module's arguments and a command's argv, with no_log
  hosts: {target}
  gather_facts: false
  tasks:
    - name: Write it
      ansible.builtin.copy:
        content: "{SECRET}\\n"
        dest: /tmp/fw-connection-test
        mode: "0600"
      no_log: true
    - name: Pass it to a command
      ansible.builtin.command:
        argv: [sh, -c, 'test "$(cat /tmp/fw-connection-test)" = "$1"', sh, "{SECRET}"]
      changed_when: false
      no_log: true
    - name: Remove it
      ansible.builtin.file:
        path: /tmp/fw-connection-test
        state: absent
""")
    run = ray_lab.ansible_playbook(playbook, "-vvvvv", timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    # Over Mitogen: no ssh command lines of Ansible's own ssh plugin (it prints ESTABLISH SSH CONNECTION at -vvv).
    assert "ESTABLISH SSH CONNECTION" not in run.stdout + run.stderr
    output = run.stdout + run.stderr
    assert SECRET not in output
    assert base64.b64encode(SECRET.encode()).decode()[:24] not in output  # nor base64-encoded (a payload's form)
