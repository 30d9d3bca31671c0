"""The cloud stand-in running on its own event loop in a thread, for synchronous clients: the stand-in's unit tests
and benchmarks/standin_list.py share it."""

from __future__ import annotations

import asyncio
import threading

from fleetwarden.cloud.backend import MemoryBackend
from fleetwarden.cloud.server import start


class RunningStandIn:
    """The stand-in on its own loop in a thread, with a MemoryBackend, for synchronous clients."""

    def __init__(self, state_dir, backend=None):
        self.state_dir = state_dir
        self.backend = backend or MemoryBackend()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner, self.standin, self.url = self.run(start(state_dir, self.backend))
        self.cloud = self.standin.cloud
        self.api_token = (state_dir / "api-token").read_text().strip()
        self.admin_token = (state_dir / "admin-token").read_text().strip()

    def run(self, coroutine, timeout=30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def settle(self):
        """Wait until every operation has finished."""
        self.run(self.cloud.drain())

    def stop(self):
        self.settle()
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
