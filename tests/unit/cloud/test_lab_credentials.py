"""Lab credentials go to the stand-in only, real ones to Google only: the rule, and the plugins refusing a config."""

import json

import pytest
from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible_collections.fleetwarden.fleet.plugins.inventory import gce_gpu, gcp_tpu
from ansible_collections.fleetwarden.fleet.plugins.module_utils._lab_credentials import (
    LAB_TOKEN_PREFIX,
    credential_problem,
)
from inventory_testlib import load_plugin

LAB_TOKEN = LAB_TOKEN_PREFIX + "not-a-secret"
LOOPBACK = "http://127.0.0.1:8471/"


def key(tmp_path, token_uri):
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"type": "service_account", "token_uri": token_uri}))
    return str(path)


@pytest.mark.parametrize("endpoint", [None, "https://tpu.googleapis.com/", "https://tpu.example.internal/"])
def test_a_lab_token_is_refused_anywhere_but_loopback(endpoint):
    problem = credential_problem(endpoint, "accesstoken", LAB_TOKEN)
    assert "access_token is a lab credential" in problem
    assert LAB_TOKEN not in problem


def test_real_credentials_are_refused_on_loopback(tmp_path):
    assert "application default credentials are real" in credential_problem(LOOPBACK, "application")
    assert "Google access token" in credential_problem(LOOPBACK, "accesstoken", "ya29.real-looking")
    google_key = key(tmp_path, "https://oauth2.googleapis.com/token")
    assert "token_uri is https://oauth2.googleapis.com/token" in credential_problem(
        LOOPBACK, "serviceaccount", service_account_file=google_key
    )
    contents = json.dumps({"token_uri": "https://oauth2.googleapis.com/token"})
    assert "token_uri" in credential_problem(LOOPBACK, "serviceaccount", service_account_contents=contents)


def test_what_is_allowed(tmp_path):
    assert credential_problem(LOOPBACK, "accesstoken", LAB_TOKEN) is None
    assert credential_problem(None, "application") is None
    assert credential_problem("https://tpu.googleapis.com/", "accesstoken", "ya29.x") is None
    # A key exchanged at a loopback token endpoint (the replay tests) gets no real token.
    loopback_key = key(tmp_path, "http://127.0.0.1:9/token")
    assert credential_problem(LOOPBACK, "serviceaccount", service_account_file=loopback_key) is None


@pytest.mark.parametrize(
    ("module", "filename", "endpoint"),
    [(gcp_tpu, "lab.gcp_tpu.yml", "https://tpu.googleapis.com/"), (gce_gpu, "lab.gce_gpu.yml", None)],
)
def test_the_plugins_refuse_a_lab_token_for_google(tmp_path, module, filename, endpoint):
    text = f"plugin: {module.InventoryModule.NAME}\nprojects: [fw-lab]\nauth_kind: accesstoken\n"
    text += f"access_token: {LAB_TOKEN}\n"
    if endpoint:
        text += f"endpoint: {endpoint}\n"
    path = tmp_path / filename
    path.write_text(text)
    plugin = load_plugin(module)
    with pytest.raises(AnsibleParserError, match="access_token is a lab credential") as error:
        plugin.parse(InventoryData(), DataLoader(), str(path), cache=False)
    assert LAB_TOKEN not in str(error.value)


def test_the_plugin_refuses_application_credentials_for_the_stand_in(tmp_path):
    path = tmp_path / "lab.gcp_tpu.yml"
    path.write_text(f"plugin: fleetwarden.fleet.gcp_tpu\nprojects: [fw-lab]\nendpoint: {LOOPBACK}\n")
    with pytest.raises(AnsibleParserError, match="auth_kind is application"):
        load_plugin(gcp_tpu).parse(InventoryData(), DataLoader(), str(path), cache=False)
