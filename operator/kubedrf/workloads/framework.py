"""The built-in framework: gated Pods of any workload become tasks, one Framework per
namespace, each run by the SDK's driver like any other framework; only its launcher
differs, releasing the existing Pods instead of creating new ones."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubedrf.api import GROUP, ROLE, VERSION
from kubedrf.api.conventions import LABEL_FRAMEWORK
from kubedrf.api.tenancy import refusal
from kubedrf.framework.driver import KubedrfSchedulerDriver
from kubedrf.framework.model import Offer, TaskInfo, TaskTemplateError
from kubedrf.framework.protocol import SchedulerDriver
from kubedrf.framework.scheduler import Scheduler
from kubedrf.framework.watch import Stream, WatchEvent
from kubedrf.master.writer import event_body
from kubedrf.workloads.tasks import (
    FRAMEWORK_LABELS,
    FRAMEWORK_NAME,
    GatedPod,
    demand,
    parse_gated,
    plan,
    release_patch,
    role_specs,
    standings,
    units,
    waiting_note,
)

logger = logging.getLogger(__name__)

#: Demand and roles are written at most this often, however fast Pods arrive.
FLUSH_SECONDS = 0.5
#: Waiting Pods are told why they wait this often (an Event only when the reason changes).
EXPLAIN_SECONDS = 5.0
#: At most this many roles per Framework (the API's bound).
MAX_ROLES = 16


#: How long a declined node stays filtered for the built-in framework.
GANG_RETRY_SECONDS = 1.0


class NamespaceWorkloads(Scheduler):
    """The built-in framework's scheduler in one namespace: its gated Pods are its tasks."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        #: Gated Pods by name: the task each is, and its body as last read.
        self.waiting: dict[str, tuple[GatedPod, dict[str, Any]]] = {}
        self.roles: list[str] = []
        self.dirty = True
        #: The reason of the last Event recorded on each waiting Pod.
        self.told: dict[str, str] = {}
        self.core: client.CoreV1Api | None = None

    def observe(self, pod: GatedPod | None, name: str, body: dict[str, Any]) -> None:
        if pod is None:
            self.waiting.pop(name, None)
            self.told.pop(name, None)
        else:
            self.waiting[name] = (pod, body)
            if pod.role not in self.roles and len(self.roles) < MAX_ROLES:
                self.roles = sorted([*self.roles, pod.role])
        self.dirty = True

    def tasks(self) -> list[GatedPod]:
        return [pod for pod, _ in self.waiting.values()]

    async def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        placed = plan(offers, self.tasks())
        for offer in offers:
            pods = placed.get(offer.name)
            if not pods:
                # Briefly: a gang waits for offers on several nodes at once, and a long filter
                # on one would keep them from ever arriving in the same cycle.
                await driver.decline(offer, GANG_RETRY_SECONDS)
                continue
            for pod in pods:  # a controller reusing a name (StatefulSet): the old task ended
                if pod.name in driver.tasks and driver.tasks[pod.name].state.terminal:
                    driver.tasks.pop(pod.name)  # type: ignore[attr-defined]
            tasks = [TaskInfo(name=pod.name, resources=pod.shape) for pod in pods]
            await driver.launch(offer, tasks)
        self.dirty = True

    async def release(self, offer: Offer, tasks: Sequence[TaskInfo]) -> list[str]:
        """The driver's launcher: release each gated Pod onto the offer's node."""
        assert self.core is not None
        released = []
        for task in tasks:
            entry = self.waiting.get(task.name)
            if entry is None:
                continue
            try:
                patch = release_patch(entry[1], offer)
                await asyncio.to_thread(
                    self.core.patch_namespaced_pod, task.name, self.namespace, patch
                )
            except TaskTemplateError as error:
                logger.warning(
                    "%s/%s cannot run on %s: %s", self.namespace, task.name, offer, error
                )
                continue
            except ApiException as error:  # gone, or changed since read: it is read again
                logger.info("%s/%s not released: %s", self.namespace, task.name, error.reason)
                continue
            self.waiting.pop(task.name, None)
            self.told.pop(task.name, None)
            released.append(task.name)
        return released


class WorkloadsFramework:
    """Watches gated Pods cluster-wide and runs one driver per namespace that has them."""

    def __init__(self, api: client.ApiClient, is_leader: Callable[[], bool] = lambda: True) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.events = client.EventsV1Api(api)
        self.is_leader = is_leader
        self.namespaces: dict[str, dict[str, str]] = {}
        self.schedulers: dict[str, NamespaceWorkloads] = {}
        self.drivers: dict[str, KubedrfSchedulerDriver] = {}
        self._queue: asyncio.Queue[tuple[str, WatchEvent]] = asyncio.Queue()
        self._running: list[asyncio.Task[None]] = []

    async def run(self, stopped: asyncio.Event) -> None:
        while not self.is_leader():  # one replica's built-in framework answers offers
            try:
                await asyncio.wait_for(stopped.wait(), timeout=1.0)
                return
            except TimeoutError:
                continue
        namespaces = Stream(
            self.api,
            list_function=lambda _ns, **kw: self.core.list_namespace(**kw),
            namespace="",
            label_selector="",
            queue=self._queue,
            name="namespaces",
        )
        # Only Pods no scheduler has bound can be gated (the API refuses a gate beside a
        # nodeName): every running Pod of the cluster stays out of this stream. A released
        # Pod carries the framework label and leaves it at once.
        pods = Stream(
            self.api,
            list_function=lambda _ns, **kw: self.core.list_pod_for_all_namespaces(**kw),
            namespace="",
            label_selector=f"!{LABEL_FRAMEWORK}",
            field_selector="spec.nodeName=",
            queue=self._queue,
            name="pods",
        )
        streams = [namespaces, pods]
        self._running = [
            asyncio.create_task(namespaces.run()),
            asyncio.create_task(self._flush(stopped)),
        ]
        try:
            while not stopped.is_set():
                try:
                    kind, event = await asyncio.wait_for(self._queue.get(), timeout=0.5)
                except TimeoutError:
                    continue
                if kind == "namespaces":
                    self._on_namespaces(event)
                    if len(self._running) == 2:
                        self._running.append(asyncio.create_task(pods.run()))
                else:
                    self._on_pods(event)
        finally:
            for stream in streams:
                stream.stop()
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    def _on_namespaces(self, event: WatchEvent) -> None:
        for body in event.objects:
            meta = body["metadata"]
            if event.type == "DELETED":
                self.namespaces.pop(meta["name"], None)
                continue
            labels = dict(meta.get("labels") or {})
            changed = self.namespaces.get(meta["name"]) != labels
            self.namespaces[meta["name"]] = labels
            known = self.schedulers.get(meta["name"])
            if changed and known is not None:  # the namespace's role may have changed
                for name, (_, pod_body) in list(known.waiting.items()):
                    known.observe(parse_gated(pod_body, labels), name, pod_body)

    def _on_pods(self, event: WatchEvent) -> None:
        if event.type == "SYNC":
            listed = {(b["metadata"]["namespace"], b["metadata"]["name"]) for b in event.objects}
            for namespace, scheduler in self.schedulers.items():
                for name in [n for n in scheduler.waiting if (namespace, n) not in listed]:
                    scheduler.observe(None, name, {})
        for body in event.objects:
            meta = body["metadata"]
            namespace = meta["namespace"]
            gated = None
            if event.type != "DELETED":
                gated = parse_gated(body, self.namespaces.get(namespace, {}))
            owner = self.schedulers.get(namespace)
            if owner is None:
                if gated is None:
                    continue
                owner = self._start(namespace)
            owner.observe(gated, meta["name"], body)

    def _start(self, namespace: str) -> NamespaceWorkloads:
        scheduler = NamespaceWorkloads(namespace)
        scheduler.core = self.core
        self.schedulers[namespace] = scheduler
        return scheduler

    async def _flush(self, stopped: asyncio.Event) -> None:
        """Write what changed: start drivers, update roles and demand; explain waits."""
        explained = 0.0
        loop = asyncio.get_running_loop()
        while not stopped.is_set():
            await asyncio.sleep(FLUSH_SECONDS)
            for namespace, scheduler in list(self.schedulers.items()):
                if not scheduler.dirty or not scheduler.roles:
                    continue
                scheduler.dirty = False
                try:
                    await self._write(namespace, scheduler, stopped)
                except ApiException as error:
                    scheduler.dirty = True
                    logger.warning("workloads in %s: %s", namespace, error.reason)
            if loop.time() - explained >= EXPLAIN_SECONDS:
                explained = loop.time()
                try:
                    await self._explain()
                except ApiException as error:
                    logger.warning("workloads: could not explain waiting Pods: %s", error.reason)

    async def _write(
        self, namespace: str, scheduler: NamespaceWorkloads, stopped: asyncio.Event
    ) -> None:
        wanted = demand(scheduler.tasks())
        driver = self.drivers.get(namespace)
        if driver is None:
            driver = KubedrfSchedulerDriver(
                scheduler,
                name=FRAMEWORK_NAME,
                namespace=namespace,
                api=self.api,
                roles=scheduler.roles,
                labels=FRAMEWORK_LABELS,
                launcher=scheduler.release,
                demand=wanted,
            )
            self.drivers[namespace] = driver
            self._running.append(asyncio.create_task(driver.run(stopped)))
            await asyncio.sleep(0)  # let it register before it is patched
            return
        await driver.set_roles(scheduler.roles)
        await driver.set_demand(wanted)

    async def _explain(self) -> None:
        """An Event on each waiting Pod whose reason to wait is new."""
        if not any(s.waiting for s in self.schedulers.values()):
            return
        roles: Any = await asyncio.to_thread(
            self.custom.list_cluster_custom_object, GROUP, VERSION, ROLE.plural
        )
        items = roles.get("items") or []
        standing = standings(items)
        specs = role_specs(items)
        for namespace, scheduler in self.schedulers.items():
            if not scheduler.waiting:
                continue
            _, held = units(scheduler.tasks())
            for name, (pod, body) in list(scheduler.waiting.items()):
                reason, note = waiting_note(
                    pod,
                    standing.get(pod.role),
                    held=held.get(pod.key),
                    refused=refusal(pod.role, namespace, specs),
                )
                if scheduler.told.get(name) == reason:
                    continue
                scheduler.told[name] = reason
                regarding = {"apiVersion": "v1", "kind": "Pod", **body}
                kind = "Warning" if reason in ("NotSchedulable", "RoleRefused") else "Normal"
                event = event_body(regarding, reason, note, kind, "Wait")
                try:
                    await asyncio.to_thread(self.events.create_namespaced_event, namespace, event)
                except ApiException as error:  # best effort, as every Event
                    logger.info("no event on %s/%s: %s", namespace, name, error.reason)
