# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""Which credentials may go to which endpoint: lab credentials to the cloud stand-in only, real ones to Google only.

The lab's cloud stand-in (fleetwarden.cloud, on a loopback port) issues access tokens that start with
LAB_TOKEN_PREFIX. A real Google credential is application default credentials, a service-account key whose
token_uri is not on this machine, or an access token that Google issued (they start with `ya29.`).
A config that would send a lab token to a non-loopback endpoint (Google's by default), or a real credential
to a loopback one, is refused before any request. No third-party imports: the inventories, tpu_node and the
stand-in itself share this one rule.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
from urllib.parse import urlsplit

# One home for the prefix: the stand-in issues tokens with it, and the check below recognises them.
LAB_TOKEN_PREFIX = "fwlab-"  # noqa: S105 - a prefix that marks a token, not a token
GOOGLE_TOKEN_PREFIX = "ya29."  # noqa: S105 - a prefix that marks a token, not a token
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(endpoint):
    return urlsplit(endpoint or "").hostname in LOOPBACK_HOSTS


def is_lab_token(token):
    return isinstance(token, str) and token.startswith(LAB_TOKEN_PREFIX)


def _token_uri(service_account_file, service_account_contents):
    """The key's token_uri, or None when the key cannot be read here (load_credentials then says why)."""
    try:
        if service_account_contents:
            info = service_account_contents
            if not isinstance(info, dict):
                info = json.loads(str(info))
        else:
            with open(os.path.realpath(os.path.expanduser(service_account_file))) as handle:
                info = json.load(handle)
    except (OSError, TypeError, ValueError):
        return None
    return info.get("token_uri") if isinstance(info, dict) else None


def credential_problem(
    endpoint, auth_kind, access_token=None, service_account_file=None, service_account_contents=None
):
    """Why these credentials must not go to this endpoint, or None. Never names the token itself."""
    loopback = is_loopback(endpoint)
    if not loopback:
        if auth_kind == "accesstoken" and is_lab_token(access_token):
            return (
                "access_token is a lab credential (it starts with %s, issued by the fleetwarden cloud stand-in), "
                "but endpoint is %s: lab credentials go to the stand-in's loopback endpoint only; "
                "set endpoint to the stand-in's URL, or use a real Google credential"
                % (LAB_TOKEN_PREFIX, endpoint or "Google's (the default)")
            )
        return None
    if auth_kind == "application":
        return (
            "endpoint %s is on this machine (the lab's cloud stand-in), but auth_kind is application: application "
            "default credentials are real Google credentials. Use auth_kind: accesstoken with the stand-in's "
            "token (it starts with %s)" % (endpoint, LAB_TOKEN_PREFIX)
        )
    if auth_kind == "accesstoken" and isinstance(access_token, str) and access_token.startswith(GOOGLE_TOKEN_PREFIX):
        return (
            "endpoint %s is on this machine (the lab's cloud stand-in), but access_token is a Google access "
            "token (%s...): use the stand-in's token (it starts with %s)"
            % (endpoint, GOOGLE_TOKEN_PREFIX, LAB_TOKEN_PREFIX)
        )
    if auth_kind == "serviceaccount":
        token_uri = _token_uri(service_account_file, service_account_contents)
        if token_uri is not None and not is_loopback(token_uri):
            return (
                "endpoint %s is on this machine (the lab's cloud stand-in), but the service account key's "
                "token_uri is %s: that key gets real Google tokens. Use auth_kind: accesstoken with the "
                "stand-in's token (it starts with %s)" % (endpoint, token_uri, LAB_TOKEN_PREFIX)
            )
    return None
