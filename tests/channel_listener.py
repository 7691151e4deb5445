"""Listen to a Channels group over the real Redis layer from a sync test.

The Redis layer binds its receive buffers to one event loop, so the listener owns a thread with a
single loop for its whole life instead of calling async_to_sync repeatedly.
"""
from __future__ import annotations

import asyncio
import threading
import time

from channels.layers import get_channel_layer


class GroupListener:
    def __init__(self, group: str):
        self.group = group
        self.received: list[dict] = []
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self):
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(self.group, channel)
        self._ready.set()
        try:
            while not self._stop.is_set():
                try:
                    self.received.append(await asyncio.wait_for(layer.receive(channel), 0.1))
                except asyncio.TimeoutError:
                    continue
        finally:
            await layer.group_discard(self.group, channel)

    def __enter__(self) -> "GroupListener":
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("channel layer listener did not start (is Redis up?)")
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def wait(self, count: int, timeout: float = 3.0) -> list[dict]:
        """The messages received once `count` have arrived or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)
