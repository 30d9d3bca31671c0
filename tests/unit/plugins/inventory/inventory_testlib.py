"""Helpers for the inventory plugin tests: real option definitions, recorded pages, a replay server.

A module with a unique name (not conftest) so that test modules can import it unambiguously.

Plugins are loaded without ansible's plugin loader because tests/conftest.py imports the
collection through sys.path; the loader's collection finder cannot take over once
`ansible_collections` is imported that way. `load_plugin` does what the loader does for options:
merge the doc fragments and register the option definitions.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ansible import constants as C
from ansible.parsing.yaml.loader import AnsibleLoader
from ansible.plugins.doc_fragments import constructed, inventory_cache
from ansible.utils.plugin_docs import add_fragments
from ansible_collections.fleetwarden.fleet.plugins.doc_fragments import gcp as gcp_fragment
from ansible_collections.fleetwarden.fleet.plugins.module_utils._gcp import ApiCaller

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
SAMPLES = Path(__file__).resolve().parents[4] / "inventory" / "sample"
GCP_FIXTURES = FIXTURES / "gcp"


def fixture_text(relative):
    return (FIXTURES / relative).read_text()


def fixture_json(relative):
    return json.loads(fixture_text(relative))


def ok(relative):
    """An HttpMockSequence entry answering 200 with a recorded file under tests/fixtures/gcp."""
    return ({"status": "200"}, (GCP_FIXTURES / relative).read_text())


def status(code, relative, headers=None):
    """An HttpMockSequence entry answering `code` with a recorded error body."""
    return (dict({"status": str(code)}, **(headers or {})), (GCP_FIXTURES / relative).read_text())


FRAGMENTS = {
    "constructed": constructed.ModuleDocFragment,
    "inventory_cache": inventory_cache.ModuleDocFragment,
    "fleetwarden.fleet.gcp": gcp_fragment.ModuleDocFragment,
}


class _Fragments:
    """Resolves the fragments our inventories extend, as the fragment loader would."""

    def get(self, name):
        fragment = FRAGMENTS.get(name)
        return type("Fragment", (fragment,), {"ansible_name": name}) if fragment else None


def load_plugin(module):
    """An InventoryModule of `module` with its documented options registered, as the loader does."""
    doc = AnsibleLoader(module.DOCUMENTATION).get_single_data()
    add_fragments(doc, module.__file__, fragment_loader=_Fragments())
    name = module.InventoryModule.NAME
    C.config.initialize_plugin_configuration_definitions("inventory", name, doc["options"])
    plugin = module.InventoryModule()
    plugin._load_name = name
    return plugin


class Sleeps(list):
    """A sleep that records its delays instead of waiting."""

    def __call__(self, seconds):
        self.append(seconds)


def wire_http(plugin, http, sleeps=None):
    """Make `plugin._query` use `http` (an HttpMockSequence) and never wait or look for credentials."""
    plugin._credentials = lambda: None
    plugin._api_caller = lambda credentials, deadline: ApiCaller(
        lambda: http,
        retries=plugin.get_option("retries"),
        sleep=sleeps if sleeps is not None else Sleeps(),
        deadline=deadline,
    )


# ---------------------------------------------------------------------------------------------
# A loopback server that replays recorded responses, for ansible-inventory runs
# ---------------------------------------------------------------------------------------------


UNAUTHENTICATED = b'{"error": {"code": 401, "message": "bad credentials", "status": "UNAUTHENTICATED"}}'
NOT_RECORDED = b'{"error": {"code": 404, "message": "no recorded response", "status": "NOT_FOUND"}}'


class ReplayServer:
    """Answers GET/POST by (path, pageToken) from a table of recorded files; records every request.

    `routes` maps "path" or "path?pageToken=TOKEN" to (status, fixture path relative to tests/fixtures),
    or to a list of those, answered in turn (the last one repeats).
    Requests whose Authorization header is not `expected_auth` (one, or a tuple) get a 401, so tests
    prove the credential actually travels.
    """

    def __init__(self, routes, expected_auth):
        self.routes = routes
        self.expected_auth = (expected_auth,) if isinstance(expected_auth, str) else tuple(expected_auth)
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                token = parse_qs(url.query).get("pageToken", [None])[0]
                server.requests.append((self.command, self.path, token, body))
                key = f"{url.path}?pageToken={token}" if token else url.path
                if self.headers.get("Authorization") not in server.expected_auth:
                    code, payload = 401, UNAUTHENTICATED
                elif key in server.routes:
                    route = server.routes[key]
                    if isinstance(route, list):
                        route = route.pop(0) if len(route) > 1 else route[0]
                    code, relative = route
                    payload = (FIXTURES / relative).read_bytes()
                else:
                    code, payload = 404, NOT_RECORDED
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
