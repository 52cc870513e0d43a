"""Leader election on a coordination.k8s.io Lease: of several master replicas, one allocates.

kopf's peering pauses handlers but not the allocation loop, and two loops would offer the
same resources twice; so replicas all keep their caches warm from the watches, and only the
Lease holder cycles. The holder renews every ``renew_seconds``; a Lease not renewed for
``lease_seconds`` may be taken over. Updates carry the resourceVersion they read, so two
candidates can never both win.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubedrf.api.conventions import format_micro_time, parse_time

logger = logging.getLogger(__name__)


def default_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class LeaderElector:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        *,
        identity: str | None = None,
        lease_seconds: int = 15,
        renew_seconds: float = 5.0,
    ) -> None:
        # Typed as Any: the client accepts plain dict bodies though its hints say V1Lease.
        self.leases: Any = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.is_leader = False
        self._renewed_at = 0.0

    async def run(self, stopped: asyncio.Event) -> None:
        while not stopped.is_set():
            try:
                held = await asyncio.to_thread(self._try_acquire_or_renew)
            except Exception as error:  # the apiserver is away: keep what we know, for now
                logger.warning("leader election: %s", error)
                held = self.is_leader and time.monotonic() - self._renewed_at < self.lease_seconds
            if held != self.is_leader:
                logger.info(
                    "%s %s the lease %s/%s",
                    self.identity,
                    "acquired" if held else "lost",
                    self.namespace,
                    self.name,
                )
            self.is_leader = held
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), timeout=self.renew_seconds)
        if self.is_leader:
            await asyncio.to_thread(self._release)

    def _spec(self, acquire_time: str | None = None, transitions: int = 0) -> dict[str, Any]:
        now = format_micro_time(time.time())
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_seconds,
            "acquireTime": acquire_time or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _try_acquire_or_renew(self) -> bool:
        try:
            lease: Any = self.leases.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            body = {"metadata": {"name": self.name}, "spec": self._spec()}
            try:
                self.leases.create_namespaced_lease(self.namespace, body)
            except ApiException as conflict:
                if conflict.status == 409:
                    return False
                raise
            self._renewed_at = time.monotonic()
            return True
        spec = lease.spec
        holder = spec.holder_identity
        renewed = _seconds(spec.renew_time)
        expired = renewed is None or renewed + (spec.lease_duration_seconds or 0) < time.time()
        if holder not in (self.identity, None, "") and not expired:
            return False
        transitions = (spec.lease_transitions or 0) + (0 if holder == self.identity else 1)
        acquired = _text(spec.acquire_time) if holder == self.identity else None
        body = {
            "metadata": {"name": self.name, "resourceVersion": lease.metadata.resource_version},
            "spec": self._spec(acquired, transitions),
        }
        try:
            self.leases.replace_namespaced_lease(self.name, self.namespace, body)
        except ApiException as error:
            if error.status == 409:  # someone else wrote first
                return False
            raise
        self._renewed_at = time.monotonic()
        return True

    def _release(self) -> None:
        """Give the Lease up on a clean stop, so a standby takes over at once."""
        try:
            lease: Any = self.leases.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity == self.identity:
                body = {
                    "metadata": {
                        "name": self.name,
                        "resourceVersion": lease.metadata.resource_version,
                    },
                    "spec": {"holderIdentity": None, "leaseDurationSeconds": 1},
                }
                self.leases.replace_namespaced_lease(self.name, self.namespace, body)
        except ApiException as error:
            logger.debug("releasing the lease: %s", error.reason)


def _seconds(value: object) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else parse_time(value)


def _text(value: object) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return None if value is None else str(value)
