"""A loopback HTTP server that replays recorded cloud API answers: the stand-in for Google Cloud and RunPod.

The inventory tests and the inventory benchmarks both run the plugins against it through their
ordinary `endpoint` option, so what they exercise is the production code path: option parsing,
credentials, the bearer header, URLs, paging. It is the only copy of this server; tests and
benchmarks import it from here (benchmarks never import tests).

A production config cannot reach it by accident: it lives only as long as the test or benchmark that
starts it, on a random loopback port, and answers 401 to any credential but the ones it was given.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

UNAUTHENTICATED = b'{"error": {"code": 401, "message": "bad credentials", "status": "UNAUTHENTICATED"}}'
NOT_RECORDED = b'{"error": {"code": 404, "message": "no recorded response", "status": "NOT_FOUND"}}'


def route_key(path, page_token=None):
    """The key of a route: the URL path, plus `?pageToken=...` for a page after the first."""
    return f"{path}?pageToken={page_token}" if page_token else path


def paged_routes(path, bodies, next_tokens):
    """Routes answering 200 with consecutive pages of one list call: the first page without a token,
    page i+1 by `next_tokens[i]`, the nextPageToken that page i carries."""
    routes = {route_key(path): (200, bodies[0])}
    for token, body in zip(next_tokens, bodies[1:], strict=False):
        routes[route_key(path, token)] = (200, body)
    return routes


class ReplayServer:
    """Answers GET/POST/DELETE by (path, pageToken) from a table of recorded answers; records every request.

    `routes` maps a route_key to (status, body bytes), or to a list of those answered in turn (the
    last one repeats). Requests whose Authorization header is not one of `expected_auth` get a 401,
    so a test proves that the credential travels; paths in `open_paths` (an OAuth token endpoint)
    need none. `requests` holds (method, path with query, pageToken, body) for each request.
    """

    def __init__(self, routes, expected_auth, open_paths=()):
        self.routes = routes
        self.expected_auth = (expected_auth,) if isinstance(expected_auth, str) else tuple(expected_auth)
        self.open_paths = frozenset(open_paths)
        self.requests = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                token = parse_qs(url.query).get("pageToken", [None])[0]
                code, payload = server.answer(url.path, token, self.headers.get("Authorization"))
                with server._lock:
                    server.requests.append((self.command, self.path, token, body))
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def answer(self, path, token, authorization):
        """(status, body) for one request."""
        if path not in self.open_paths and authorization not in self.expected_auth:
            return 401, UNAUTHENTICATED
        route = self.routes.get(route_key(path, token))
        if route is None:
            return 404, NOT_RECORDED
        if isinstance(route, list):
            with self._lock:
                route = route.pop(0) if len(route) > 1 else route[0]
        return route

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
