"""Nodes and Pods reach the master through plain list-and-watch streams, not kopf.

kopf gives every object it sees a worker task, a queue and a memory kept for the object's
life, and wraps each event for handlers that may patch it; the master only records events in
its cache. At 20,000 Pods that machinery cost more CPU than the allocation, and in a burst
its per-object queues held tens of thousands of bodies waiting (most of the master's peak
memory). Here one stream per kind hands plain JSON events to one consumer that records them
as they come; after a watch error the kind is relisted in pages (``sync.relist_kind``) and
watched again from that list's version. kopf still watches the kubedrf kinds and Leases.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes import client

from kubedrf.framework.watch import Stream, WatchEvent
from kubedrf.master.core import Master
from kubedrf.master.sync import relist_kind
from kubedrf.master.watched import Watched


async def inform(
    api: client.ApiClient,
    master: Master,
    watched: Watched,
    since: str | None,
    stopped: asyncio.Event,
) -> None:
    """Record every event of ``watched``'s kind, from ``since`` (the version of the list
    the cache already holds), until ``stopped``."""
    assert watched.kind in ("Pod", "Node"), "only core kinds are informed"
    core = client.CoreV1Api(api)
    listing = core.list_pod_for_all_namespaces if watched.kind == "Pod" else core.list_node

    def list_function(_: str, **params: Any) -> Any:
        return listing(**params)

    selectors = watched.selectors(master.settings)
    queue: asyncio.Queue[tuple[str, WatchEvent]] = asyncio.Queue()

    async def relist() -> str | None:
        return await relist_kind(api, master.cache, watched)

    stream = Stream(
        api,
        list_function=list_function,
        namespace="",
        label_selector=selectors.labels or "",
        field_selector=selectors.fields or "",
        queue=queue,
        name=watched.name,
        since=since,
        relist=relist,
    )

    async def record() -> None:
        while True:
            _, event = await queue.get()
            for body in event.objects:
                master.observe(watched.name, event.type, body)

    running = [
        asyncio.create_task(stream.run(), name=f"kubedrf-watch-{watched.name}"),
        asyncio.create_task(record(), name=f"kubedrf-record-{watched.name}"),
    ]
    try:
        await stopped.wait()
    finally:
        stream.stop()
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
