# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""Google Cloud options shared by the gcp_tpu and gce_gpu inventories and the tpu_node module."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment:
    # Modules: authentication and retries (fleetwarden.fleet.gcp).
    DOCUMENTATION = r"""
options:
  auth_kind:
    description:
      - How to authenticate.
      - V(application) uses application default credentials, which honour E(GOOGLE_APPLICATION_CREDENTIALS),
        the gcloud ADC file and the metadata server.
      - V(serviceaccount) reads the key file O(service_account_file).
      - V(accesstoken) sends O(access_token) as a bearer token.
    type: str
    choices: [application, serviceaccount, accesstoken]
    default: application
  service_account_file:
    description: Path of a service-account JSON key; only with O(auth_kind=serviceaccount).
    type: path
  access_token:
    description: An OAuth2 access token; only with O(auth_kind=accesstoken). Never logged.
    type: str
  scopes:
    description: OAuth2 scopes to request.
    type: list
    elements: str
    default: ['https://www.googleapis.com/auth/cloud-platform']
  retries:
    description: How many times to retry a request that got HTTP 429 or 5xx, with exponential backoff.
    type: int
    default: 5
  request_timeout:
    description: Seconds to wait for one HTTP response.
    type: int
    default: 60
requirements:
  - google-api-python-client >= 2.100 (its bundled static discovery documents are used; no discovery call)
  - google-auth
"""

    # Inventory plugins: the same options, also read from the environment (fleetwarden.fleet.gcp.inventory).
    INVENTORY = r"""
options:
  auth_kind:
    description:
      - How to authenticate.
      - V(application) uses application default credentials, which honour E(GOOGLE_APPLICATION_CREDENTIALS),
        the gcloud ADC file and the metadata server.
      - V(serviceaccount) reads the key file O(service_account_file).
      - V(accesstoken) sends O(access_token) as a bearer token.
    type: str
    choices: [application, serviceaccount, accesstoken]
    default: application
    env:
      - name: GCP_AUTH_KIND
  service_account_file:
    description: Path of a service-account JSON key; only with O(auth_kind=serviceaccount).
    type: path
    env:
      - name: GCP_SERVICE_ACCOUNT_FILE
  access_token:
    description: An OAuth2 access token; only with O(auth_kind=accesstoken). Never put into host vars or messages.
    type: str
    env:
      - name: GCP_ACCESS_TOKEN
  scopes:
    description: OAuth2 scopes to request.
    type: list
    elements: str
    default: ['https://www.googleapis.com/auth/cloud-platform']
  retries:
    description: How many times to retry a request that got HTTP 429 or 5xx, with exponential backoff.
    type: int
    default: 5
  request_timeout:
    description: Seconds to wait for one HTTP response.
    type: int
    default: 60
  concurrency:
    description: How many list calls (projects, or zones when listing zone by zone) run at once.
    type: int
    default: 8
  hostnames:
    description:
      - Where C(ansible_host) comes from, in order of preference; the first one a host has wins.
      - V(external_ip) and V(internal_ip) are the worker's addresses, V(name) is the inventory hostname.
    type: list
    elements: str
    default: [external_ip, internal_ip, name]
  filters:
    description:
      - Keep only hosts whose host vars match. Keys are host var names (dots reach into dicts,
        for example C(tpu_labels.team)); values are a glob or a list of globs.
      - Keys are ANDed, the globs of one key are ORed. Applied after the cache, so edits take effect at once.
    type: dict
    default: {}
requirements:
  - google-api-python-client >= 2.100 (its bundled static discovery documents are used; no discovery call)
  - google-auth
"""
