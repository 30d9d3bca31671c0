"""Fakes that the plugin tests in several folders share (module_utils, modules, inventory)."""

import pytest


class Clock:
    """A monotonic clock that moves only when the code under test sleeps (``sleep``), recording each sleep."""

    def __init__(self, now=100.0):
        self.now = now
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock():
    """A Clock at 100 s."""
    return Clock()


@pytest.fixture
def service_account_key():
    """``service_account_key(token_uri)``: a service-account key with a freshly generated RSA key (nothing real,
    nothing stored) whose token endpoint is ``token_uri``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def make(token_uri):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "project_id": "fw-ml-prod",
            "private_key_id": "0123456789abcdef",
            "private_key": pem,
            "client_email": "fleetwarden@fw-ml-prod.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "token_uri": token_uri,
        }

    return make
