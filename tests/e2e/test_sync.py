"""The master's relist on a real apiserver: listed in pages, applied as one snapshot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from kubedrf.master import sync
from kubedrf.master.cache import ClusterCache
from kubedrf.master.settings import MasterSettings

pytestmark = pytest.mark.e2e


def test_a_relist_in_pages_holds_every_pod_and_forgets_one_deleted_unseen(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str, monkeypatch: Any
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
