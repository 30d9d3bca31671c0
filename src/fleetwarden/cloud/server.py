"""The stand-in over HTTP, on loopback: the Cloud TPU v2 and Compute Engine v1 paths the project calls, and /admin.

Base URLs, as the plugins' `endpoint` option takes them: `http://127.0.0.1:PORT/` (TPU) and
`http://127.0.0.1:PORT/compute/v1/` (compute). Every answer carries STANDIN_HEADER. Every API call needs
`Authorization: Bearer <API token>`; /admin/v1/faults needs the admin token, and neither token opens the
other's paths. Bodies are at most 1 MiB; bad input is a 400 in the API's own error shape.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from pathlib import Path

from aiohttp import web

from fleetwarden.cloud import STANDIN_HEADER, STANDIN_VALUE
from fleetwarden.cloud.backend import Backend
from fleetwarden.cloud.engine import Cloud
from fleetwarden.cloud.shapes import (
    COMPUTE_BASE,
    TPU_ZONES,
    ApiError,
    bad_request,
    check_project,
    matches,
    page,
    parse_filter,
)
from fleetwarden.cloud.store import ENDPOINT_FILE, Store, ensure_tokens

LOG = logging.getLogger("fleetwarden.cloud")
MAX_BODY = 1 << 20
SEGMENT = r"([-a-z0-9]+)"
TPU_ROUTES = [  # (method, path regex under /v2/, handler name)
    ("GET", rf"projects/{SEGMENT}/locations", "locations"),
    ("GET", rf"projects/{SEGMENT}/locations/{SEGMENT}/nodes", "list_nodes"),
    ("POST", rf"projects/{SEGMENT}/locations/{SEGMENT}/nodes", "create_node"),
    ("GET", rf"projects/{SEGMENT}/locations/{SEGMENT}/nodes/{SEGMENT}", "get_node"),
    ("DELETE", rf"projects/{SEGMENT}/locations/{SEGMENT}/nodes/{SEGMENT}", "delete_node"),
    ("POST", rf"projects/{SEGMENT}/locations/{SEGMENT}/nodes/{SEGMENT}:(stop|start)", "node_action"),
    ("POST", rf"projects/{SEGMENT}/locations/{SEGMENT}/nodes/{SEGMENT}:getGuestAttributes", "node_guest_attributes"),
    ("GET", rf"projects/{SEGMENT}/locations/{SEGMENT}/queuedResources", "list_queued"),
    ("POST", rf"projects/{SEGMENT}/locations/{SEGMENT}/queuedResources", "create_queued"),
    ("GET", rf"projects/{SEGMENT}/locations/{SEGMENT}/queuedResources/{SEGMENT}", "get_queued"),
    ("DELETE", rf"projects/{SEGMENT}/locations/{SEGMENT}/queuedResources/{SEGMENT}", "delete_queued"),
    ("GET", rf"projects/{SEGMENT}/locations/{SEGMENT}/operations/{SEGMENT}", "tpu_operation"),
]
COMPUTE_ROUTES = [  # under /compute/v1/
    ("GET", rf"projects/{SEGMENT}/aggregated/instances", "aggregated"),
    ("POST", rf"projects/{SEGMENT}/zones/{SEGMENT}/instances", "insert"),
    ("GET", rf"projects/{SEGMENT}/zones/{SEGMENT}/instances/{SEGMENT}", "get_instance"),
    ("DELETE", rf"projects/{SEGMENT}/zones/{SEGMENT}/instances/{SEGMENT}", "delete_instance"),
    ("POST", rf"projects/{SEGMENT}/zones/{SEGMENT}/instances/{SEGMENT}/(start|stop)", "instance_action"),
    ("GET", rf"projects/{SEGMENT}/zones/{SEGMENT}/instances/{SEGMENT}/getGuestAttributes", "instance_guest"),
    ("GET", rf"projects/{SEGMENT}/zones/{SEGMENT}/operations/{SEGMENT}", "compute_operation"),
]
ROUTES = [(method, re.compile("^/v2/" + path + "$"), name) for method, path, name in TPU_ROUTES] + [
    (method, re.compile("^/compute/v1/" + path + "$"), name) for method, path, name in COMPUTE_ROUTES
]
ERROR_MESSAGES = {
    429: ("RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of "
          "the service for consumer 'project_number:0' (fleetwarden stand-in fault).", "rateLimitExceeded"),
    503: ("UNAVAILABLE", "The service is currently unavailable (fleetwarden stand-in fault).", "backendError"),
}


def error_response(error: ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.code)


class StandIn:
    """The aiohttp application around one Cloud; `api_token` and `admin_token` are the only credentials."""

    def __init__(self, cloud: Cloud, api_token: str, admin_token: str) -> None:
        self.cloud = cloud
        self.api_auth = f"Bearer {api_token}"
        self.admin_auth = f"Bearer {admin_token}"
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[self.errors])
        self.app.on_response_prepare.append(self._mark)
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)

    @staticmethod
    async def _mark(request: web.Request, response: web.StreamResponse) -> None:
        response.headers[STANDIN_HEADER] = STANDIN_VALUE

    @web.middleware
    async def errors(self, request: web.Request, handler):
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc)
        except web.HTTPException as exc:  # aiohttp's own refusals (a body over MAX_BODY), in the API's shape
            return error_response(ApiError(exc.status, "INVALID_ARGUMENT" if exc.status < 500 else "INTERNAL",
                                           exc.text or exc.reason))
        except Exception:
            LOG.exception("stand-in failure on %s %s", request.method, request.path)
            return error_response(ApiError(500, "INTERNAL", "Internal error of the fleetwarden stand-in"))

    @staticmethod
    def _authorized(request: web.Request, expected: str) -> bool:
        return hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected.encode())

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/admin/"):
            if not self._authorized(request, self.admin_auth):
                raise ApiError(401, "UNAUTHENTICATED", "The admin path needs the stand-in's admin token")
            return await self.admin(request)
        if not self._authorized(request, self.api_auth):
            raise ApiError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 "
                           "access token (the fleetwarden stand-in takes only its own lab token).", "authError")
        for method, pattern, name in ROUTES:
            match = pattern.match(path)
            if match and method == request.method:
                project = check_project(match.group(1))
                status = self.cloud.take_api_error(project)
                if status is not None:
                    code, message, reason = ERROR_MESSAGES[status]
                    raise ApiError(status, code, message, reason)
                body = await self._body(request) if method == "POST" else {}
                answer = web.json_response(await getattr(self, name)(request, body, *match.groups()))
                self.cloud.flush()  # what the answer says is on disk before it leaves
                return answer
        if any(pattern.match(path) for _, pattern, _ in ROUTES):
            raise ApiError(405, "INVALID_ARGUMENT", f"Method {request.method} is not allowed on {path}")
        raise ApiError(404, "NOT_FOUND", f"The stand-in does not serve {path}", "notFound")

    @staticmethod
    async def _body(request: web.Request) -> dict:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError is one
            raise bad_request("Invalid JSON payload received.") from None
        if not isinstance(body, dict):
            raise bad_request("Invalid JSON payload received: an object is expected.")
        return body

    # -- admin ------------------------------------------------------------------------------------
    async def admin(self, request: web.Request) -> web.Response:
        if request.path != "/admin/v1/faults":
            raise ApiError(404, "NOT_FOUND", f"The stand-in does not serve {request.path}")
        if request.method == "GET":
            state = self.cloud.state
            return web.json_response({"log": state["fault_log"], "stockouts": state["stockouts"],
                                      "apiErrors": state["api_errors"]})
        if request.method != "POST":
            raise ApiError(405, "INVALID_ARGUMENT", "GET or POST")
        body = await self._body(request)
        record = await self.cloud.inject(body.get("kind"), body.get("target"), body.get("count", 1),
                                         body.get("status", 503))
        self.cloud.flush()
        return web.json_response(record)

    # -- Cloud TPU v2 ----------------------------------------------------------------------------
    async def locations(self, request, body, project):
        zones = sorted(set(TPU_ZONES) | {name.split("/")[3] for name in self.cloud.state["nodes"]})
        items, token = page([{"name": f"projects/{project}/locations/{zone}", "locationId": zone} for zone in zones],
                            request.query.get("pageSize"), request.query.get("pageToken"), "tpu")
        return {"locations": items, **({"nextPageToken": token} if token else {})}

    async def list_nodes(self, request, body, project, zone):
        items, token = page(self.cloud.nodes(project, zone), request.query.get("pageSize"),
                            request.query.get("pageToken"), "tpu")
        return {"nodes": items, **({"nextPageToken": token} if token else {})}

    async def create_node(self, request, body, project, zone):
        return self.cloud.create_node(project, zone, request.query.get("nodeId", ""), body)

    async def get_node(self, request, body, project, zone, node):
        return self.cloud.node(f"projects/{project}/locations/{zone}/nodes/{node}")

    async def delete_node(self, request, body, project, zone, node):
        return self.cloud.node_action(f"projects/{project}/locations/{zone}/nodes/{node}", "delete")

    async def node_action(self, request, body, project, zone, node, action):
        return self.cloud.node_action(f"projects/{project}/locations/{zone}/nodes/{node}", action)

    async def node_guest_attributes(self, request, body, project, zone, node):
        query_path = body.get("queryPath", "")
        if not isinstance(query_path, str):
            raise bad_request("queryPath must be a string")
        workers = body.get("workerIds") or []
        if not isinstance(workers, list):
            raise bad_request("workerIds must be a list")
        return self.cloud.node_guest_attributes(f"projects/{project}/locations/{zone}/nodes/{node}", query_path,
                                                workers)

    async def list_queued(self, request, body, project, zone):
        items, token = page(self.cloud.queued_resources(project, zone), request.query.get("pageSize"),
                            request.query.get("pageToken"), "tpu")
        return {"queuedResources": items, **({"nextPageToken": token} if token else {})}

    async def create_queued(self, request, body, project, zone):
        return self.cloud.create_queued_resource(project, zone, request.query.get("queuedResourceId", ""), body)

    async def get_queued(self, request, body, project, zone, queued):
        return self.cloud.queued_resource(f"projects/{project}/locations/{zone}/queuedResources/{queued}")

    async def delete_queued(self, request, body, project, zone, queued):
        force = request.query.get("force", "false").lower() == "true"
        return self.cloud.delete_queued_resource(f"projects/{project}/locations/{zone}/queuedResources/{queued}",
                                                 force)

    async def tpu_operation(self, request, body, project, zone, operation):
        return self.cloud.operation(f"projects/{project}/locations/{zone}/operations/{operation}")

    # -- Compute Engine v1 --------------------------------------------------------------------------
    async def aggregated(self, request, body, project):
        terms = parse_filter(request.query.get("filter"))
        instances = [instance for instance in self.cloud.instances(project) if matches(instance, terms)]
        items, token = page(instances, request.query.get("maxResults"), request.query.get("pageToken"), "compute")
        scoped: dict[str, dict] = {}
        for instance in items:
            scope = "zones/" + instance["zone"].rsplit("/", 1)[-1]
            scoped.setdefault(scope, {"instances": []})["instances"].append(instance)
        answer = {"kind": "compute#instanceAggregatedList", "id": f"projects/{project}/aggregated/instances",
                  "items": scoped, "selfLink": f"{COMPUTE_BASE}projects/{project}/aggregated/instances"}
        return {**answer, **({"nextPageToken": token} if token else {})}

    async def insert(self, request, body, project, zone):
        return self.cloud.insert_instance(project, zone, body)

    async def get_instance(self, request, body, project, zone, instance):
        return self.cloud.instance(f"projects/{project}/zones/{zone}/instances/{instance}")

    async def delete_instance(self, request, body, project, zone, instance):
        return self.cloud.instance_action(f"projects/{project}/zones/{zone}/instances/{instance}", "delete")

    async def instance_action(self, request, body, project, zone, instance, action):
        return self.cloud.instance_action(f"projects/{project}/zones/{zone}/instances/{instance}", action)

    async def instance_guest(self, request, body, project, zone, instance):
        return self.cloud.instance_guest_attributes(f"projects/{project}/zones/{zone}/instances/{instance}",
                                                    request.query.get("queryPath"), request.query.get("variableKey"))

    async def compute_operation(self, request, body, project, zone, operation):
        return self.cloud.operation(f"projects/{project}/zones/{zone}/operations/{operation}")


async def start(state_dir: Path, backend: Backend, port: int = 0) -> tuple[web.AppRunner, StandIn, str]:
    """Start the stand-in on 127.0.0.1:`port` (0: any free port); returns (runner, stand-in, base URL).

    The base URL is also written to `<state_dir>/endpoint`, beside the two token files."""
    api_token, admin_token = ensure_tokens(state_dir)
    cloud = Cloud(Store(state_dir), backend)
    standin = StandIn(cloud, api_token, admin_token)
    runner = web.AppRunner(standin.app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=64)
    await site.start()
    bound = runner.addresses[0][1]
    url = f"http://127.0.0.1:{bound}"
    (Path(state_dir) / ENDPOINT_FILE).write_text(url + "\n")
    cloud.resume()
    LOG.info("cloud stand-in serving %s (state %s)", url, state_dir)
    return runner, standin, url


def serve(state_dir: Path, backend: Backend, port: int = 0) -> None:
    """Run the stand-in until interrupted."""

    async def main() -> None:
        runner, standin, url = await start(state_dir, backend, port)
        print(f"fleetwarden cloud stand-in (not Google Cloud) on {url}; state in {state_dir}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await standin.cloud.drain()
            await runner.cleanup()

    Path(state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    handler = logging.FileHandler(Path(state_dir) / "stand-in.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    asyncio.run(main())
