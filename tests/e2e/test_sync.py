"""The master's lists and watches of Pods on a real apiserver: relists in pages applied as one
snapshot, and the informer that records Pod events without kopf."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from kubedrf.master import informer, sync
from kubedrf.master.cache import ClusterCache
from kubedrf.master.core import Master
from kubedrf.master.metrics import Metrics
from kubedrf.master.settings import MasterSettings
from kubedrf.master.watched import BY_NAME
from kubedrf.master.writer import ApiWriter

pytestmark = pytest.mark.e2e


def test_a_relist_in_pages_holds_every_pod_and_forgets_one_deleted_unseen(
    api: client.ApiClient,
    core: client.CoreV1Api,
    crds: None,
    namespace: str,
    monkeypatch: Any,
) -> None:
    pages: list[str | None] = []
    lister = sync._lister

    def counted(*args: Any) -> Callable[[str | None], Any]:
        fetch = lister(*args)

        def page(token: str | None) -> Any:
            if args[1].name == "pod":
                pages.append(token)
            return fetch(token)

        return page

    monkeypatch.setattr(sync, "PAGE_SIZE", 2)
    monkeypatch.setattr(sync, "_lister", counted)
    names = [f"p-{i}" for i in range(5)]
    for name in names:
        body: Any = {
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }
        core.create_namespaced_pod(namespace, body)
    cache = ClusterCache(MasterSettings())
    ghost = {
        "metadata": {"name": "gone", "namespace": namespace, "uid": "u", "resourceVersion": "1"},
        "spec": {},
        "status": {"phase": "Running"},
    }
    cache.apply("pod", "ADDED", ghost)  # deleted while no watch looked: the list lacks it

    asyncio.run(sync.relist(api, cache))

    ours = sorted(key.partition("/")[2] for key in cache.pods if key.startswith(f"{namespace}/"))
    assert ours == names
    assert len(pages) >= 3 and pages[0] is None and all(pages[1:])  # continued, not relisted


def test_the_pod_informer_records_events_and_relists_after_a_watch_error(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str, monkeypatch: Any
) -> None:
    """Started from a version the apiserver refuses (as it refuses one compacted away), the
    stream relists in pages and watches on: a Pod created before it and one created, then
    deleted, after it both reach the cache."""
    relists: list[str] = []

    async def counted(*args: Any) -> str | None:
        relists.append(args[2].name)
        return await sync.relist_kind(*args)

    monkeypatch.setattr(informer, "relist_kind", counted)
    cache = ClusterCache(MasterSettings())
    master = Master(cache, ApiWriter(api, cache), Metrics(CollectorRegistry()))
    pod: Any = {
        "metadata": {"name": "before"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    core.create_namespaced_pod(namespace, pod)

    async def main() -> None:
        stopped = asyncio.Event()
        watched = BY_NAME["pod"]
        informing = asyncio.create_task(informer.inform(api, master, watched, "x", stopped))

        async def until(condition: Callable[[], bool], what: str) -> None:
            for _ in range(240):
                if condition():
                    return
                await asyncio.sleep(0.25)
            raise AssertionError(f"{what}: not within 60 s")

        await until(lambda: f"{namespace}/before" in cache.pods, "the Pod listed after a 410")
        after = {**pod, "metadata": {"name": "after"}}
        await asyncio.to_thread(core.create_namespaced_pod, namespace, after)
        await until(lambda: f"{namespace}/after" in cache.pods, "the Pod created while watching")
        await asyncio.to_thread(
            core.delete_namespaced_pod, "after", namespace, grace_period_seconds=0
        )
        await until(lambda: f"{namespace}/after" not in cache.pods, "the deletion")
        stopped.set()
        await informing

    asyncio.run(main())
    assert relists == ["pod"]
