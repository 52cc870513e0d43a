"""Events the master records, on a real apiserver: a repeated Event is one object whose
series counts the repeats, not a new object each cycle."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import client

from kubedrf.master.cache import ClusterCache
from kubedrf.master.settings import MasterSettings
from kubedrf.master.writer import ApiWriter

pytestmark = pytest.mark.e2e


def _regarding(core: client.CoreV1Api, namespace: str) -> dict[str, Any]:
    created = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="regarded"))
    )
    body: dict[str, Any] = client.ApiClient().sanitize_for_serialization(created)
    return {**body, "apiVersion": "v1", "kind": "ConfigMap"}


def _events(api: client.ApiClient, namespace: str) -> list[Any]:
    listed: Any = client.EventsV1Api(api).list_namespaced_event(namespace)
    return sorted(listed.items, key=lambda e: e.note)


def test_a_repeated_event_increments_its_series_instead_of_adding_events(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    writer = ApiWriter(api, ClusterCache(MasterSettings()))
    regarding = _regarding(core, namespace)

    async def record() -> None:
        for _ in range(3):
            await writer.event(regarding, "Filtered", "role eng: Filtered")
        await writer.event(regarding, "Filtered", "role web: Filtered")

    asyncio.run(record())

    events = _events(api, namespace)
    assert [(e.reason, e.note) for e in events] == [
        ("Filtered", "role eng: Filtered"),
        ("Filtered", "role web: Filtered"),
    ]
    repeated, single = events
    assert repeated.series.count == 3 and repeated.series.last_observed_time is not None
    assert single.series is None
    assert repeated.regarding.uid == regarding["metadata"]["uid"]


def test_a_repeat_after_its_event_was_deleted_records_a_new_one(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    writer = ApiWriter(api, ClusterCache(MasterSettings()))
    regarding = _regarding(core, namespace)
    asyncio.run(writer.event(regarding, "Expired", "offer expired"))
    (first,) = _events(api, namespace)
    client.EventsV1Api(api).delete_namespaced_event(first.metadata.name, namespace)

    asyncio.run(writer.event(regarding, "Expired", "offer expired"))

    (second,) = _events(api, namespace)
    assert second.metadata.name != first.metadata.name and second.series is None
