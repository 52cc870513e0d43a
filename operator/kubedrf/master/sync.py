"""Listing every watched kind: the master's state before its first cycle, and resyncs.

A cycle before the initial list would not see outstanding offers or running tasks and could
offer them again; so the loop starts only after ``relist`` (invariant 6).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubedrf.api import GROUP, OFFER, VERSION
from kubedrf.master.cache import ClusterCache
from kubedrf.master.settings import MasterSettings
from kubedrf.master.watched import BY_NAME, WATCHED, Watched

#: (connect, read) seconds: an apiserver still starting may take a connection and not answer
#: it, and a relist that hangs would hold the loop after the apiserver is back.
LIST_TIMEOUT = (5.0, 60.0)


#: Objects per list request. A relist of 20,000 Pods then holds one page of bodies at a time
#: (client-go's reflectors page by 500 too): the whole list at once, parsed, was the
#: master's peak memory at scale.
PAGE_SIZE = 500


def _lister(
    api_client: client.ApiClient, watched: Watched, settings: MasterSettings
) -> Callable[[str | None], Any]:
    """A page of every object of a kind (after the given continue token) as plain dicts, as
    watches deliver them, with the same server-side selectors as the watch."""
    selectors = watched.selectors(settings)
    params: dict[str, Any] = {
        name: value
        for name, value in (
            ("label_selector", selectors.labels),
            ("field_selector", selectors.fields),
        )
        if value
    }
    params["_request_timeout"] = LIST_TIMEOUT
    params["limit"] = PAGE_SIZE

    def after(token: str | None) -> dict[str, Any]:
        return {**params, "_continue": token} if token else params

    if watched.group:
        custom = client.CustomObjectsApi(api_client)
        return lambda token: custom.list_cluster_custom_object(
            watched.group, watched.version, watched.plural, **after(token)
        )
    core = client.CoreV1Api(api_client)
    singular = watched.kind.lower()
    function = getattr(
        core, f"list_{singular}_for_all_namespaces" if watched.namespaced else f"list_{singular}"
    )
    # Plain JSON: building the generated models for tens of thousands of Pods, only to
    # serialise them back to dicts, is work before the first cycle that buys nothing.
    return lambda token: json.loads(function(_preload_content=False, **after(token)).data)


async def relist(api_client: client.ApiClient, cache: ClusterCache) -> dict[str, str | None]:
    """Bring the cache to a fresh list of every kind; the version each list was taken at.

    The kinds are listed at once (a relist after the apiserver came back takes the longest
    list, not their sum).
    """
    versions = await asyncio.gather(*(relist_kind(api_client, cache, w) for w in WATCHED))
    return {watched.name: version for watched, version in zip(WATCHED, versions, strict=True)}


async def relist_kind(
    api_client: client.ApiClient, cache: ClusterCache, watched: Watched
) -> str | None:
    """List one kind into the cache: what the list lacks was deleted while no watch was
    looking. Each page is applied here, on the loop, as it comes (the cache has one writer);
    the pages of one list are one snapshot, at the version answered (the first page's)."""
    fetch = _lister(api_client, watched, cache.settings)
    listed: set[str] = set()
    version: str | None = None
    token: str | None = None
    while True:
        answer = await asyncio.to_thread(fetch, token)
        meta = answer.get("metadata") or {}
        if token is None:
            version = meta.get("resourceVersion")
        items = [with_kind(watched, item) for item in answer.get("items") or []]
        listed |= cache.apply_listed(watched.name, items)
        token = meta.get("continue") or None
        if token is None:
            break
    snapshot = int(version) if version is not None and version.isdigit() else None
    cache.forget_unlisted(watched.name, listed, snapshot)
    return version


def with_kind(watched: Watched, item: Mapping[str, Any]) -> dict[str, Any]:
    """List and get answers lack apiVersion/kind; Events about the objects need both."""
    return {"apiVersion": watched.api_version, "kind": watched.kind, **item}


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
        self.cache.apply(kind, "MODIFIED", with_kind(BY_NAME[kind], answer))
        return True
