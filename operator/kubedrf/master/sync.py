"""Listing every watched kind: the master's state before its first cycle, and resyncs.

A cycle before the initial list would not see outstanding offers or running tasks and could
offer them again; so the loop starts only after ``relist`` (invariant 6).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubedrf.api import FRAMEWORK, GROUP, OFFER, QUOTA, RESERVATION, ROLE, VERSION
from kubedrf.master.cache import ClusterCache
from kubedrf.master.records import Body


def _listers(api_client: client.ApiClient) -> dict[str, Callable[[], Any]]:
    core = client.CoreV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)

    def custom_list(plural: str) -> Callable[[], Any]:
        return lambda: custom.list_cluster_custom_object(GROUP, VERSION, plural)

    def core_list(function: Callable[..., Any]) -> Callable[[], Any]:
        # Plain dicts, as watches deliver them, instead of the client's model objects.
        return lambda: api_client.sanitize_for_serialization(function())  # type: ignore[no-untyped-call]

    return {
        "node": core_list(core.list_node),
        "pod": core_list(core.list_pod_for_all_namespaces),
        "framework": custom_list(FRAMEWORK.plural),
        "role": custom_list(ROLE.plural),
        "quota": custom_list(QUOTA.plural),
        "reservation": custom_list(RESERVATION.plural),
        "offer": custom_list(OFFER.plural),
    }


async def relist(api_client: client.ApiClient, cache: ClusterCache) -> None:
    """Replace the cache's contents with a fresh list of every kind."""
    for kind, lister in _listers(api_client).items():
        answer = await asyncio.to_thread(lister)
        items: list[Body] = [_with_kind(kind, item) for item in answer.get("items") or []]
        version = answer.get("metadata", {}).get("resourceVersion")
        cache.replace(kind, items, int(version) if str(version or "").isdigit() else None)


def _with_kind(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    # List items lack apiVersion/kind; Events about them need both.
    names = {
        "node": ("v1", "Node"),
        "pod": ("v1", "Pod"),
        "framework": (f"{GROUP}/{VERSION}", FRAMEWORK.kind),
        "role": (f"{GROUP}/{VERSION}", ROLE.kind),
        "quota": (f"{GROUP}/{VERSION}", QUOTA.kind),
        "reservation": (f"{GROUP}/{VERSION}", RESERVATION.kind),
        "offer": (f"{GROUP}/{VERSION}", OFFER.kind),
    }
    api_version, kind_name = names[kind]
    return {"apiVersion": api_version, "kind": kind_name, **item}


class ApiReader:
    """Fresh reads, for when the watches may lag: a new leader's first cycle, and every
    destructive decision (refusing a task, settling an Accept without a task it lists)."""

    def __init__(self, api_client: client.ApiClient, cache: ClusterCache) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.cache = cache

    async def relist(self) -> None:
        await relist(self.api_client, self.cache)

    async def read(self, kind: str, key: str) -> bool:
        """Read one Pod or Offer (``namespace/name``) into the cache; ``False`` when gone."""
        namespace, _, name = key.partition("/")
        try:
            if kind == "pod":
                answer = self.api_client.sanitize_for_serialization(  # type: ignore[no-untyped-call]
                    await asyncio.to_thread(self.core.read_namespaced_pod, name, namespace)
                )
            else:
                answer = await asyncio.to_thread(
                    self.custom.get_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    OFFER.plural,
                    name,
                )
        except ApiException as error:
            if error.status != 404:
                raise
            self.cache.apply(kind, "DELETED", {"metadata": {"name": name, "namespace": namespace}})
            return False
        self.cache.apply(kind, "MODIFIED", _with_kind(kind, answer))
        return True
