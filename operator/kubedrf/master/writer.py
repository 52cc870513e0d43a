"""The one place the master writes to the API: offers, statuses, bindings, refusals, Events.

The Kubernetes client is synchronous, so every call runs in a worker thread and the kopf
event loop never blocks. Each write's answer goes back into the cache at once, so the next
cycle sees its own writes even before the watch delivers them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel

from kubedrf.api import (
    API_VERSION,
    FRAMEWORK,
    GROUP,
    INVERSE_OFFER,
    OFFER,
    VERSION,
    InverseOfferSpec,
    InverseOfferStatus,
    Kind,
    OfferSpec,
    OfferStatus,
)
from kubedrf.api.conventions import ANNOTATION_SCHEDULER, LABEL_FRAMEWORK, format_micro_time
from kubedrf.api.offer import OfferPhase
from kubedrf.api.types import to_api
from kubedrf.master.cache import ClusterCache
from kubedrf.master.records import Body, FrameworkRecord

logger = logging.getLogger(__name__)
T = TypeVar("T")
COMPONENT = "kubedrf-master"
#: Events remembered for aggregation; the oldest are forgotten first (a new Event then).
EVENT_MEMORY = 4096
EventKey = tuple[str, str, str]


class ApiWriter:
    def __init__(self, api_client: client.ApiClient, cache: ClusterCache) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.events = client.EventsV1Api(api_client)
        self.cache = cache
        #: (regarding uid, reason, note) -> (namespace, Event name, times observed): a
        #: repeated Event grows its series instead of adding an object per occurrence.
        self.recorded: OrderedDict[EventKey, tuple[str, str, int]] = OrderedDict()

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """Run one API call in a thread; ``None`` when the world moved on: the object is gone
        (404), changed (409), or its namespace is being deleted (403 NamespaceTerminating)."""
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except ApiException as error:
            terminating = error.status == 403 and "NamespaceTerminating" in str(error.body)
            if error.status in (404, 409) or terminating:
                logger.debug("%s: %s", function.__name__, error.reason)
                return None
            raise

    # -- offers ------------------------------------------------------------------------------

    async def create_offer(self, framework: FrameworkRecord, spec: OfferSpec) -> Body | None:
        scheduler = self.cache.settings.scheduler_name()
        # How the framework's task Pods name who binds them.
        annotations = {ANNOTATION_SCHEDULER: scheduler} if scheduler is not None else {}
        status = OfferStatus(phase=OfferPhase.OFFERED)
        return await self._create_for(OFFER, framework, spec, status, annotations=annotations)

    async def create_inverse_offer(
        self, framework: FrameworkRecord, spec: InverseOfferSpec
    ) -> Body | None:
        """Ask ``framework`` to free resources."""
        status = InverseOfferStatus()
        return await self._create_for(INVERSE_OFFER, framework, spec, status, suffix="revoke-")

    async def _create_for(
        self,
        kind: Kind,
        framework: FrameworkRecord,
        spec: BaseModel,
        status: OfferStatus | InverseOfferStatus,
        *,
        annotations: Mapping[str, str] | None = None,
        suffix: str = "",
    ) -> Body | None:
        """Create an Offer or InverseOffer in the framework's namespace, owned by the
        Framework (so it goes when the Framework does), then set its status: the status
        subresource ignores status on create."""
        metadata: dict[str, Any] = {
            "generateName": f"{framework.name}-{suffix}",
            "namespace": framework.namespace,
            "labels": {LABEL_FRAMEWORK: framework.name},
            "ownerReferences": [_owned_by(framework)],
        }
        if annotations:
            metadata["annotations"] = dict(annotations)
        body = {"apiVersion": API_VERSION, "kind": kind.kind, "metadata": metadata}
        body["spec"] = to_api(spec)
        created = _as_body(
            await self._call(
                self.custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                framework.namespace,
                kind.plural,
                body,
            )
        )
        if created is None:
            return None
        self.cache.apply(kind.singular, "ADDED", created)
        meta = created.get("metadata", {})
        status = status.model_copy(update={"observed_generation": meta.get("generation")})
        await self.patch_status(kind, meta["name"], status, framework.namespace)
        return created

    async def delete(self, kind: Kind, namespace: str, name: str) -> None:
        """Delete one of our namespaced objects (a finished Offer or InverseOffer)."""
        await self._call(
            self.custom.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            kind.plural,
            name,
        )
        self.cache.forget(kind.singular, f"{namespace}/{name}")

    async def patch_status(
        self,
        kind: Kind,
        name: str,
        status: BaseModel | Mapping[str, Any],
        namespace: str | None = None,
    ) -> None:
        body = {"status": to_api(status) if isinstance(status, BaseModel) else dict(status)}
        if namespace is None:
            result = await self._call(
                self.custom.patch_cluster_custom_object_status,
                GROUP,
                VERSION,
                kind.plural,
                name,
                body,
            )
        else:
            result = await self._call(
                self.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                kind.plural,
                name,
                body,
            )
        answer = _as_body(result)
        if answer is not None:
            self.cache.apply(kind.singular, "MODIFIED", answer)

    # -- pods --------------------------------------------------------------------------------

    async def delete_pod(self, namespace: str, name: str) -> None:
        await self._call(self.core.delete_namespaced_pod, name, namespace, grace_period_seconds=0)

    async def bind_pod(self, namespace: str, name: str, node: str) -> None:
        """Bind a Pod to ``node`` through its Binding subresource. Already bound (409) or
        gone (404) is done; other refusals raise ``ApiException``."""
        binding = client.V1Binding(
            metadata=client.V1ObjectMeta(name=name, namespace=namespace),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=node),
        )
        # The API answers with a Status, which the generated client cannot read as a
        # V1Binding: take the raw answer.
        await self._call(
            self.core.create_namespaced_pod_binding,
            name,
            namespace,
            binding,
            _preload_content=False,
        )
        self.cache.bound(f"{namespace}/{name}")

    async def evict_pod(self, namespace: str, name: str) -> bool:
        """Evict through the Eviction API, so PodDisruptionBudgets are honoured: ``False``
        when a budget blocks it for now (429), ``True`` when evicted or already gone."""
        eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
        try:
            await self._call(self.core.create_namespaced_pod_eviction, name, namespace, eviction)
        except ApiException as error:
            if error.status == 429:
                return False
            raise
        return True

    # -- events ------------------------------------------------------------------------------

    async def event(
        self,
        regarding: Mapping[str, Any],
        reason: str,
        note: str,
        type_: str = "Normal",
        action: str = "Allocate",
    ) -> None:
        """Record an events.k8s.io Event about ``regarding`` (a full object body); the same
        reason and note about the same object again increments the first Event's series."""
        meta = regarding.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        now = format_micro_time(time.time())
        key = (str(meta.get("uid") or meta.get("name")), reason, note[:1024])
        try:
            if await self._repeat(key, now):
                return
        except ApiException as error:  # Events are best effort: never fail a cycle on them.
            logger.warning("could not update event %s: %s", reason, error.reason)
            return
        body = event_body(regarding, reason, note, type_, action)
        try:
            created = await self._call(self.events.create_namespaced_event, namespace, body)
        except ApiException as error:  # Events are best effort: never fail a cycle on them.
            logger.warning("could not record event %s: %s", reason, error.reason)
            return
        name = created.metadata.name if created is not None and created.metadata else None
        if name is not None:
            self.recorded[key] = (namespace, name, 1)
            while len(self.recorded) > EVENT_MEMORY:
                self.recorded.popitem(last=False)

    async def _repeat(self, key: EventKey, now: str) -> bool:
        """Count one more occurrence on the Event recorded for ``key``; False when there is
        none (never recorded, forgotten, or deleted by the apiserver's Event TTL)."""
        recorded = self.recorded.get(key)
        if recorded is None:
            return False
        namespace, name, count = recorded
        patch = {"series": {"count": count + 1, "lastObservedTime": now}}
        if await self._call(self.events.patch_namespaced_event, name, namespace, patch) is None:
            del self.recorded[key]
            return False
        self.recorded[key] = (namespace, name, count + 1)
        self.recorded.move_to_end(key)
        return True


def _owned_by(framework: FrameworkRecord) -> dict[str, Any]:
    """Owned by the Framework, so offers and inverse offers go when it does."""
    return {
        "apiVersion": API_VERSION,
        "kind": FRAMEWORK.kind,
        "name": framework.name,
        "uid": framework.uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }


def event_body(
    regarding: Mapping[str, Any], reason: str, note: str, type_: str, action: str
) -> client.EventsV1Event:
    """An events.k8s.io Event from kubedrf about ``regarding`` (a full object body)."""
    meta = regarding.get("metadata", {})
    namespace = meta.get("namespace") or "default"
    return client.EventsV1Event(
        metadata=client.V1ObjectMeta(
            generate_name=f"{meta.get('name', 'kubedrf')}-", namespace=namespace
        ),
        event_time=format_micro_time(time.time()),
        reporting_controller=f"kubedrf.io/{COMPONENT}",
        reporting_instance=COMPONENT,
        action=action,
        reason=reason,
        note=note[:1024],
        type=type_,
        regarding=client.V1ObjectReference(
            api_version=regarding.get("apiVersion"),
            kind=regarding.get("kind"),
            name=meta.get("name"),
            namespace=meta.get("namespace"),
            uid=meta.get("uid"),
            resource_version=meta.get("resourceVersion"),
        ),
    )


def _as_body(result: object) -> Body | None:
    """The custom-objects client answers with plain dicts, typed as ``object``."""
    return result if isinstance(result, Mapping) else None
