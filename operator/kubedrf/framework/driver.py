"""The scheduler driver on Kubernetes: registers a Framework, watches its offers and tasks,
calls the scheduler, and carries out its answers through the API.

Restart-safe: a restarted driver adopts the framework's running task Pods and its
outstanding offers instead of launching or answering them twice. Alive-evident: it renews a
heartbeat Lease every few seconds, so the master knows its controller still runs (a
framework not heard from within its failoverTimeout is Disconnected and offered nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubedrf.api import API_VERSION, FRAMEWORK, GROUP, INVERSE_OFFER, OFFER, VERSION
from kubedrf.api.conventions import (
    ANNOTATION_REVIVE,
    LABEL_FRAMEWORK,
    format_micro_time,
    format_time,
    heartbeat_lease,
)
from kubedrf.api.types import ConditionType
from kubedrf.framework.hooks import PodMutationHook
from kubedrf.framework.ledger import TaskLedger
from kubedrf.framework.model import (
    InverseOffer,
    Offer,
    TaskInfo,
    TaskState,
    TaskStatus,
    TaskTemplateError,
)
from kubedrf.framework.pods import task_pod, task_status
from kubedrf.framework.protocol import Demand
from kubedrf.framework.scheduler import Scheduler
from kubedrf.framework.watch import Stream, WatchEvent
from kubedrf.resources import Resources

logger = logging.getLogger(__name__)

#: How long the driver gathers offers before handing them to the scheduler together.
OFFER_BATCH_SECONDS = 0.2
#: Task Pods a driver creates at once, whatever the number of offers it launches on.
LAUNCH_CONCURRENCY = 8
#: Seconds between heartbeats (at most: a third of a shorter failoverTimeout).
HEARTBEAT_SECONDS = 5.0
#: Conditions of the Framework's status the scheduler hears of through ``error`` when False.
REPORTED_CONDITIONS = (
    ConditionType.ROLES_ALLOWED,
    ConditionType.CONNECTED,
    ConditionType.TASKS_FIT,
)

#: How launched tasks become Pods on the offer's node, answering the names of those that did;
#: the default creates them. A framework whose Pods already exist (the built-in one releases
#: gated Pods) passes its own.
Launcher = Callable[[Offer, Sequence[TaskInfo]], Awaitable[Sequence[str]]]


class KubedrfSchedulerDriver(TaskLedger):
    """The ``SchedulerDriver`` that talks to the API (as ``MesosSchedulerDriver`` talks to
    the Mesos master)."""

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        name: str,
        namespace: str,
        api: client.ApiClient,
        roles: Sequence[str] = ("default",),
        refuse_seconds: float = 5.0,
        capabilities: Sequence[str] = (),
        hooks: Sequence[PodMutationHook] = (),
        demand: Demand = (),
        failover_timeout: float | None = None,
        labels: Mapping[str, str] | None = None,
        launcher: Launcher | None = None,
    ) -> None:
        super().__init__(name)
        self.scheduler = scheduler
        self.namespace = namespace
        self.api = api
        self.roles = list(roles)
        self.refuse_seconds = refuse_seconds
        self.capabilities = list(capabilities)
        self.hooks = list(hooks)
        self.initial_demand = list(demand)
        self.failover_timeout = failover_timeout
        self.labels = dict(labels or {})
        self.launcher: Launcher = launcher or self._create_pods
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self._answered: set[str] = set()
        self._events: asyncio.Queue[tuple[str, WatchEvent]] = asyncio.Queue()
        self._streams: list[Stream] = []
        self._registered = False
        self._uid: str | None = None
        #: The last message of each reported condition that was False, to tell it once.
        self._told: dict[str, str] = {}
        self.coordination = client.CoordinationV1Api(api)
        #: Shared by every launch, first come first served: offers launched together are
        #: worked through in order, so the first ones are accepted before they expire.
        self._creating = asyncio.Semaphore(LAUNCH_CONCURRENCY)

    # -- running -----------------------------------------------------------------------------

    async def run(self, stopped: asyncio.Event | None = None) -> None:
        """Register, then deliver offers and task updates until ``stopped`` is set."""
        stopped = stopped or asyncio.Event()
        await self._register()
        selector = f"{LABEL_FRAMEWORK}={self.name}"

        def list_offers(namespace: str, **kwargs: Any) -> Any:
            return self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, OFFER.plural, **kwargs
            )

        def list_inverse_offers(namespace: str, **kwargs: Any) -> Any:
            return self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, INVERSE_OFFER.plural, **kwargs
            )

        pods = Stream(
            self.api,
            list_function=self.core.list_namespaced_pod,
            namespace=self.namespace,
            label_selector=selector,
            queue=self._events,
            name="pods",
        )
        offers = Stream(
            self.api,
            list_function=list_offers,
            namespace=self.namespace,
            label_selector=selector,
            queue=self._events,
            name="offers",
        )
        inverse_offers = Stream(
            self.api,
            list_function=list_inverse_offers,
            namespace=self.namespace,
            label_selector=selector,
            queue=self._events,
            name="inverseoffers",
        )
        self._streams = [pods, offers, inverse_offers]
        # Offers are watched only once the running tasks are adopted, so a restarted
        # framework knows what it already runs before it is asked to launch more.
        running = [
            asyncio.create_task(pods.run()),
            asyncio.create_task(self._heartbeat(stopped), name=f"{self.name}-heartbeat"),
        ]
        try:
            while not stopped.is_set():
                try:
                    kind, event = await asyncio.wait_for(self._events.get(), timeout=0.5)
                except TimeoutError:
                    continue
                if kind == "pods":
                    await self._on_pods(event)
                    if len(running) == 2 and event.type == "SYNC":
                        running.append(asyncio.create_task(offers.run()))
                        running.append(asyncio.create_task(inverse_offers.run()))
                elif kind == "inverseoffers":
                    await self._on_inverse_offers(event)
                elif kind == "framework":
                    await self._on_framework(event)
                else:
                    if not self._registered:
                        self._registered = True
                        await self.scheduler.registered(self)
                    await self._on_offers([event, *await self._more_offer_events()])
        finally:
            for stream in self._streams:
                stream.stop()
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _register(self) -> None:
        """Create the Framework, or bring an existing one's roles and filters up to date."""
        spec: dict[str, Any] = {
            "roles": self.roles,
            "offerFilters": {"refuseSeconds": self.refuse_seconds},
            "capabilities": self.capabilities,
        }
        if self.failover_timeout is not None:
            spec["failoverTimeout"] = self.failover_timeout
        body = {
            "apiVersion": API_VERSION,
            "kind": FRAMEWORK.kind,
            "metadata": {"name": self.name, "labels": self.labels},
            "spec": {**spec, "demand": _demand(self.initial_demand)},
        }
        created: Any  # the answer: a plain dict
        try:
            created = await asyncio.to_thread(
                self.custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                FRAMEWORK.plural,
                body,
            )
        except ApiException as error:
            if error.status != 409:
                raise
            created = await self._patch_framework({"spec": spec})
        else:
            self.demand_written(self.initial_demand)
        self._uid = (created.get("metadata") or {}).get("uid")

    async def _patch_framework(self, patch: Mapping[str, Any]) -> Any:
        """The patched Framework, as the API answers (a plain dict)."""
        return await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            FRAMEWORK.plural,
            self.name,
            dict(patch),
        )

    # -- liveness ----------------------------------------------------------------------------

    async def _heartbeat(self, stopped: asyncio.Event) -> None:
        """Renew the heartbeat Lease, and read the Framework's status back for the loop.

        Runs beside the event loop and never blocks it (each call in a worker thread); a
        failed round is logged and retried: the master only acts after failoverTimeout.
        """
        every = min(HEARTBEAT_SECONDS, (self.failover_timeout or HEARTBEAT_SECONDS * 3) / 3)
        while not stopped.is_set():
            try:
                await asyncio.to_thread(self._renew_lease)
                body: Any = await asyncio.to_thread(
                    self.custom.get_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    FRAMEWORK.plural,
                    self.name,
                )
                await self._events.put(("framework", WatchEvent("MODIFIED", [body])))
            except Exception as error:
                logger.warning("heartbeat of framework %s: %s", self.name, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), timeout=every)

    def _renew_lease(self) -> None:
        renew_heartbeat(
            self.coordination,
            self.namespace,
            self.name,
            holder=f"{socket.gethostname()}-{os.getpid()}",
            failover_timeout=self.failover_timeout,
            owner_uid=self._uid,
        )

    async def _on_framework(self, event: WatchEvent) -> None:
        """Tell the scheduler, through ``error``, what the master's status refuses it (its
        roles closed to this namespace, its heartbeat not reaching the master, a task no node
        can hold): once per message, not at every heartbeat."""
        for body in event.objects:
            conditions = (body.get("status") or {}).get("conditions") or []
            for condition in conditions:
                kind = condition.get("type")
                if kind not in REPORTED_CONDITIONS:
                    continue
                message = f"{kind} is {condition.get('status')}: {condition.get('message', '')}"
                if condition.get("status") != "False":
                    self._told.pop(kind, None)
                elif self._told.get(kind) != message:
                    self._told[kind] = message
                    await self.scheduler.error(self, f"framework {self.name}: {message}")

    # -- events ------------------------------------------------------------------------------

    async def _on_pods(self, event: WatchEvent) -> None:
        if event.type == "SYNC":
            listed = {pod["metadata"]["name"] for pod in event.objects}
            for name in set(self.tasks) - listed:
                if not self.tasks[name].state.terminal:  # an ended task stays as it ended
                    await self._update(task_status(self._gone_pod(name), deleted=True))
        for pod in event.objects:
            deleted = event.type == "DELETED"
            node_gone = deleted and await self._node_gone(pod)
            await self._update(task_status(pod, deleted=deleted, node_gone=node_gone))

    def _gone_pod(self, name: str) -> dict[str, Any]:
        last = self.tasks[name]
        return {"metadata": {"name": name}, "spec": {"nodeName": last.node}, "status": {}}

    async def _node_gone(self, pod: Mapping[str, Any]) -> bool:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return False
        try:
            await asyncio.to_thread(self.core.read_node, node)
        except ApiException as error:
            return bool(error.status == 404)
        return False

    async def _update(self, status: TaskStatus) -> None:
        previous = self.tasks.get(status.task)
        if previous is not None and previous.state is status.state:
            return
        self.tasks[status.task] = status
        await self.scheduler.status_update(self, status)

    async def _more_offer_events(self) -> list[WatchEvent]:
        """Offer events arriving within OFFER_BATCH_SECONDS, so that the offers of one
        allocation cycle reach the scheduler together (as Mesos sends them)."""
        batch: list[WatchEvent] = []
        deferred: list[tuple[str, WatchEvent]] = []
        deadline = time.monotonic() + OFFER_BATCH_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                kind, event = await asyncio.wait_for(self._events.get(), timeout=left)
            except TimeoutError:
                break
            if kind == "offers":
                batch.append(event)
            else:
                deferred.append((kind, event))
        for item in deferred:
            self._events.put_nowait(item)
        return batch

    async def _on_offers(self, events: Sequence[WatchEvent]) -> None:
        fresh = []
        for event, body in ((e, b) for e in events for b in e.objects):
            name = body["metadata"]["name"]
            phase = (body.get("status") or {}).get("phase")
            answered = (body.get("spec") or {}).get("response") is not None
            if event.type == "DELETED" or phase not in (None, "Offered"):
                if self.offers.pop(name, None) is not None and phase != "Accepted":
                    await self.scheduler.offer_rescinded(self, name)
                continue
            if answered or name in self._answered or name in self.offers or phase is None:
                continue
            try:
                offer = Offer.from_body(body)
            except ValueError as error:
                self._answered.add(name)  # left to expire: it is not ours to repair
                await self.scheduler.error(self, str(error))
                continue
            if offer.expires_at <= time.time():
                # Seen late (a relist after the apiserver or this controller restarted): tasks
                # launched on it now would only be refused, so it is left to expire.
                self._answered.add(name)
                continue
            self.offers[name] = offer
            fresh.append(offer)
        if fresh:
            await self.scheduler.resource_offers(self, fresh)

    async def _on_inverse_offers(self, event: WatchEvent) -> None:
        asked = []
        for body in event.objects:
            name = body["metadata"]["name"]
            phase = (body.get("status") or {}).get("phase")
            answered = (body.get("spec") or {}).get("response") is not None
            if event.type == "DELETED" or phase != "Outstanding" or answered:
                continue
            if name in self._answered:
                continue
            self._answered.add(name)
            try:
                asked.append(InverseOffer.from_body(body))
            except ValueError as error:
                await self.scheduler.error(self, str(error))
        if asked:
            await self.scheduler.inverse_offers(self, asked)

    # -- what a scheduler may do ----------------------------------------------------------------

    async def launch(self, offer: Offer, tasks: Sequence[TaskInfo]) -> list[str]:
        """Put the tasks on ``offer`` (by default: create their Pods) and accept it with
        those that were launched, answered here; the unused rest returns. Launches on
        several offers may run at once (each in its own asyncio task)."""
        self.stage(offer, tasks)
        launched = list(await self.launcher(offer, tasks))
        for task in tasks:
            status = self.tasks.get(task.name)
            if task.name not in launched and status is not None and not status.state.terminal:
                self.tasks.pop(task.name)  # never launched: not STAGING either
        if launched:
            await self._respond(offer, {"action": "Accept", "tasks": launched})
        else:
            await self.decline(offer)
        return launched

    async def _create_pods(self, offer: Offer, tasks: Sequence[TaskInfo]) -> list[str]:
        """Create the tasks' Pods, LAUNCH_CONCURRENCY at a time across the driver; a task
        whose turn comes once its offer has expired is not launched (the master would only
        refuse its Pod), and one whose Pod the API refuses is FAILED."""
        pods = []
        try:
            for task in tasks:  # every Pod is built before any is created: all or none is bad
                pod = task_pod(task, offer)
                for hook in self.hooks:
                    pod = hook(pod, task, offer)
                pods.append(pod)
        except TaskTemplateError:
            for task in tasks:  # never launched: not STAGING either
                self.tasks.pop(task.name, None)
            raise

        async def create(pod: dict[str, Any]) -> str | None:
            name: str = pod["metadata"]["name"]
            create_pod: Any = self.core.create_namespaced_pod  # takes a plain dict body too
            async with self._creating:
                if offer.expires_at <= time.time():
                    return None
                try:
                    await asyncio.to_thread(create_pod, self.namespace, pod)
                except ApiException as error:
                    if error.status != 409:  # 409: already launched before a restart
                        message = f"its Pod could not be created: {error.reason}"
                        await self._update(TaskStatus(name, TaskState.FAILED, message=message))
                        return None
            return name

        created = await asyncio.gather(*(create(pod) for pod in pods))
        return [name for name in created if name is not None]

    async def decline(self, offer: Offer, refuse_seconds: float | None = None) -> None:
        response: dict[str, Any] = {"action": "Decline"}
        if refuse_seconds is not None:
            response["refuseSeconds"] = refuse_seconds
        await self._respond(offer, response)

    async def _respond(self, offer: Offer, response: Mapping[str, Any]) -> None:
        self._answered.add(offer.name)
        self.answered(offer)
        try:
            await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                OFFER.plural,
                offer.name,
                {"spec": {"response": dict(response)}},
            )
        except ApiException as error:
            if error.status not in (404, 422):  # gone, or already answered: nothing to undo
                raise
            await self.scheduler.error(self, f"offer {offer.name}: {error.reason}")

    async def give_back(self, inverse_offer: InverseOffer, tasks: Sequence[str]) -> None:
        """Answer ``inverse_offer`` with ``tasks`` first (so the master knows the choice at
        once), then end them."""
        try:
            await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                INVERSE_OFFER.plural,
                inverse_offer.name,
                {"spec": {"response": {"tasks": list(tasks)}}},
            )
        except ApiException as error:
            if error.status != 404:  # gone: nothing is asked any more
                raise
            return
        await asyncio.gather(*(self.kill(task) for task in tasks))

    async def set_demand(self, demand: Demand) -> None:
        """Tell the master what is still wanted: (task resources, how many more) pairs."""
        if self.demand_is_current(demand):
            return
        await self._patch_framework({"spec": {"demand": _demand(demand)}})
        self.demand_written(demand)

    async def set_roles(self, roles: Sequence[str]) -> None:
        """Change the roles the framework is offered resources under."""
        if list(roles) == self.roles:
            return
        self.roles = list(roles)
        await self._patch_framework({"spec": {"roles": self.roles}})

    async def suppress(self, role: str | None = None) -> None:
        """Stop offers (under ``role``, or every role) until ``revive``."""
        patch = {"suppressedRoles": [role]} if role else {"suppressed": True}
        await self._patch_framework({"spec": patch})

    async def revive(self) -> None:
        """Resume offers everywhere and clear every refusal filter."""
        await self._patch_framework(
            {
                "metadata": {"annotations": {ANNOTATION_REVIVE: format_time(time.time())}},
                "spec": {"suppressed": False, "suppressedRoles": []},
            }
        )

    async def reserve(self, node: str, resources: Resources, role: str | None = None) -> str:
        """Create a dynamic Reservation on ``node`` for ``role`` (default: the first role)."""
        name = f"{self.namespace}.{self.name}.{node}"
        body = {
            "apiVersion": API_VERSION,
            "kind": "Reservation",
            "metadata": {
                "name": name,
                "labels": {LABEL_FRAMEWORK: self.name, "kubedrf.io/namespace": self.namespace},
            },
            "spec": {
                "role": role or self.roles[0],
                "nodeName": node,
                "resources": resources.to_quantities(),
            },
        }
        await asyncio.to_thread(
            self.custom.create_cluster_custom_object, GROUP, VERSION, "reservations", body
        )
        return name

    async def kill(self, task: str) -> None:
        try:
            await asyncio.to_thread(self.core.delete_namespaced_pod, task, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise


def _demand(demand: Demand) -> list[dict[str, Any]]:
    return [{"resources": r.to_quantities(), "count": count} for r, count in demand]


def renew_heartbeat(
    coordination: client.CoordinationV1Api,
    namespace: str,
    framework: str,
    *,
    holder: str,
    failover_timeout: float | None = None,
    owner_uid: str | None = None,
) -> None:
    """Renew ``framework``'s heartbeat Lease, creating it on first use: how the master hears
    that a framework lives (its ``failoverTimeout`` runs from the last renewal). With
    ``owner_uid`` the Lease is deleted with its Framework."""
    name = heartbeat_lease(framework)
    spec: dict[str, Any] = {
        "holderIdentity": holder,
        "renewTime": format_micro_time(time.time()),
    }
    if failover_timeout is not None:
        spec["leaseDurationSeconds"] = max(1, int(failover_timeout))
    try:
        coordination.patch_namespaced_lease(name, namespace, {"spec": spec})
    except ApiException as error:
        if error.status != 404:
            raise
        owner = {
            "apiVersion": API_VERSION,
            "kind": FRAMEWORK.kind,
            "name": framework,
            "uid": owner_uid,
        }
        metadata: dict[str, Any] = {"name": name, "labels": {LABEL_FRAMEWORK: framework}}
        if owner_uid:  # deleted with its Framework
            metadata["ownerReferences"] = [owner]
        body: Any = {  # the client takes a plain dict body too
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }
        coordination.create_namespaced_lease(namespace, body)
