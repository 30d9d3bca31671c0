"""The lab's cloud: a loopback stand-in for the Cloud TPU v2 and Compute Engine v1 APIs, backed by lab hosts.

It is NOT Google Cloud: every answer carries the header STANDIN_HEADER. `engine` holds the state and the
life cycles, `server` serves it over HTTP, `backend` makes the hosts (lab containers, or in memory for tests).
"""

STANDIN_HEADER = "X-Fleetwarden-Standin"
STANDIN_VALUE = "fleetwarden cloud stand-in, not Google Cloud"
