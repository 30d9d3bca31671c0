# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""Google Cloud options shared by the gcp_tpu and gce_gpu inventories and the tpu_node module."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


# ansible-test's yamllint reads each fragment as one string literal, so the options that modules and
# inventories share are written out in both (tests/unit/plugins/test_doc_fragments.py holds them equal).
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
  service_account_contents:
    description:
      - The service-account JSON key itself, for example from a vault; only with O(auth_kind=serviceaccount),
        instead of O(service_account_file). Never logged.
    type: jsonarg
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
      - V(serviceaccount) reads the key file O(service_account_file), or the key in O(service_account_contents).
      - V(accesstoken) sends O(access_token) as a bearer token.
      - playbooks/recover_preempted_tpu.yml passes tpu_node the same options as the source that listed the node.
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
  service_account_contents:
    description:
      - The service-account JSON key itself, for example an inline C(!vault) value in this file; only with
        O(auth_kind=serviceaccount), instead of O(service_account_file). JSON text or a mapping.
        Never put into host vars or messages.
    type: raw
    env:
      - name: GCP_SERVICE_ACCOUNT_CONTENTS
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
    description: Seconds to wait for one HTTP response (never more than O(total_timeout)).
    type: int
    default: 60
  total_timeout:
    description:
      - Seconds the whole listing may take, retries and backoff included. When they run out, no further
        request is sent and no retry waited for; what is missing is reported like an unreachable zone or a
        failed project. A listing can overrun it by at most one O(request_timeout).
    type: int
    default: 60
  concurrency:
    description: How many list calls (projects, or zones when listing zone by zone) run at once.
    type: int
    default: 8
  strict_permissions:
    description:
      - A project that cannot be listed (permission denied, API disabled, project not found, retries or
        O(total_timeout) exhausted) is left out with a warning that names it and the fix, and the other
        projects are listed, as for an unreachable zone. V(true) makes it an error instead, as in aws_ec2.
      - When no project at all can be listed, it is an error either way.
    type: bool
    default: false
  hostnames:
    description:
      - How the inventory hostname is chosen, as in gcp_compute and aws_ec2, in order of preference; the first
        one a host has a value for wins. A host with none of them gets the V(name_zone_project) name.
      - V(name) is the resource name, V(name_zone) C(<name>.<zone>), V(name_project) C(<name>.<project>),
        V(name_zone_project) C(<name>.<zone>.<project>) (the default, unique across zones and projects,
        shaped like Google's zonal DNS names). A TPU slice worker's name is C(<node>-w<index>) before the
        qualifiers.
      - C(labels.<key>) takes the value of that label (plus C(-w<index>) for a slice worker).
      - V(external_ip) and V(internal_ip) take the worker's address.
      - When two resources get the same name, parsing fails with an error that names both. No host is dropped.
    type: list
    elements: str
    default: [name_zone_project]
  addresses:
    description:
      - Where C(ansible_host) comes from, in order of preference; the first address a host has wins.
        An empty list sets no C(ansible_host).
    type: list
    elements: str
    choices: [external_ip, internal_ip]
    default: [external_ip, internal_ip]
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
