"""docs/runbook.md has a section for every alert the roles define, every receiver decision and every doctor
recommendation: the lists come from the code, so a new one without its runbook entry fails here."""

import re
from pathlib import Path

import yaml

from fleetwarden.doctor.findings import RECOMMENDATIONS
from fleetwarden.receiver.limits import KINDS

REPO = Path(__file__).resolve().parents[2]
HEADINGS = set(re.findall(r"^### `?([A-Za-z_-]+)`?", (REPO / "docs" / "runbook.md").read_text(), re.MULTILINE))


def _alerts():
    server = (REPO / "src" / "fleetwarden" / "receiver" / "server.py").read_text()
    names = set(re.findall(r'"alertname": "(\w+)"', server))  # the receiver's own pages
    for path in REPO.glob("roles/*/files/*alerts*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["alert"] for rule in group["rules"] if "alert" in rule}
    return names


def test_every_alert_has_a_section():
    alerts = _alerts()
    assert {"WorkerDown", "FleetwardenReceiverBreakerOpen"} <= alerts
    assert alerts - HEADINGS == set()


def test_every_receiver_decision_has_a_section():
    assert set(KINDS) - HEADINGS == set()


def test_every_doctor_recommendation_has_a_section():
    assert set(RECOMMENDATIONS) - HEADINGS == set()
