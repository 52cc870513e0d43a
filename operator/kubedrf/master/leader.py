"""Leader election on a coordination.k8s.io Lease: of several master replicas, one allocates.

kopf's peering pauses handlers but not the allocation loop, and two loops would offer the
same resources twice; so replicas all keep their caches warm from the watches, and only the
Lease holder cycles. The Kubernetes client's own ``leaderelection`` decides each round, as
client-go does: a Lease held by another replica is taken over only after this replica has
*observed* it unchanged for ``lease_seconds`` by its own clock, so no replica compares the
holder's ``renewTime`` with a clock that may be skewed. Updates carry the resourceVersion
they read, so two candidates can never both win.

A leader that cannot renew stops acting after ``renew_deadline`` (shorter than the lease), so
it has stopped before any standby may take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

logger = logging.getLogger(__name__)
# The library narrates every round at INFO; our own log says when leadership changes.
logging.getLogger("leaderelection").setLevel(logging.WARNING)


def default_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class _Bounded:
    """An API whose every call carries ``_request_timeout``."""

    def __init__(self, api: Any, timeout: tuple[float, float]) -> None:
        self._api = api
        self._timeout = timeout

    def __getattr__(self, name: str) -> Any:
        return functools.partial(getattr(self._api, name), _request_timeout=self._timeout)


class LeaderElector:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        *,
        identity: str | None = None,
        lease_seconds: int = 15,
        renew_deadline: int = 10,
        retry_seconds: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_seconds = lease_seconds
        self.renew_deadline = renew_deadline
        self.retry_seconds = retry_seconds
        self.clock = clock
        lock = LeaseLock(name, namespace, self.identity)  # type: ignore[no-untyped-call]
        # Ours, not the global default client; each call bounded as client-go bounds a try,
        # so one the apiserver never answers cannot outlive the leadership it renews.
        timeout = (float(retry_seconds), float(renew_deadline))
        lock.api_instance = _Bounded(client.CoordinationV1Api(api), timeout)  # type: ignore[assignment]
        self.leases: Any = lock.api_instance
        #: Rounds run on a thread of their own: behind writes that wait on a slow apiserver
        #: in the shared pool, a renewal would come too late and a leader lose its Lease.
        self._rounds = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubedrf-lease")
        self.election = leaderelection.LeaderElection(  # type: ignore[no-untyped-call]
            electionconfig.Config(  # type: ignore[no-untyped-call]
                lock,
                lease_duration=lease_seconds,
                renew_deadline=renew_deadline,
                retry_period=retry_seconds,
                onstarted_leading=lambda: None,  # we run no callback: the loop asks is_leader
                onstopped_leading=None,
            )
        )
        self._renewed_at = -float("inf")
        self._leading = False
        #: Rounds that could not reach the API: the leader's loop relists after one, since
        #: its watches may have missed events while the API was away.
        self.failed_rounds = 0

    @property
    def is_leader(self) -> bool:
        """Held and renewed within ``renew_deadline``: judged at every call, not per round."""
        return self.clock() - self._renewed_at < self.renew_deadline

    def step(self) -> bool:
        """One round of acquire-or-renew (blocking: run it in a thread)."""
        started = self.clock()
        try:
            held = bool(self.election.try_acquire_or_renew())  # type: ignore[no-untyped-call]
        except Exception as error:  # the apiserver is away: is_leader runs out by itself
            logger.warning("leader election: %s", error)
            self.failed_rounds += 1
            held = False
        if held:
            self._renewed_at = started
        leading = self.is_leader
        if leading != self._leading:
            logger.info(
                "%s %s the lease %s/%s",
                self.identity,
                "acquired" if leading else "lost",
                self.namespace,
                self.name,
            )
            self._leading = leading
        return held

    async def run(self, stopped: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stopped.is_set():
            await loop.run_in_executor(self._rounds, self.step)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), timeout=self.retry_seconds)
        if self.is_leader:
            await loop.run_in_executor(self._rounds, self.release)
        self._rounds.shutdown(wait=False)

    def release(self) -> None:
        """Give the Lease up on a clean stop, so a standby takes over at once."""
        self._renewed_at = -float("inf")
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
