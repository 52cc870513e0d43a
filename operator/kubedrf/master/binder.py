"""The master binds task Pods: it chose their node when it made the offer.

A task Pod whose ``schedulerName`` is kubedrf's waits unbound until the master has judged its
claim against its offer (framework, namespace, role, node, and that it fits what is left of
the offer). Only then is it bound, through the Binding subresource, so a Pod that claims what
was not offered never runs (invariant 7). Which Pods to bind is decided here, purely; the
writes happen in the master's write step, concurrently and bounded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kubernetes.client.exceptions import ApiException

from kubedrf.api.conventions import SCHEDULER_NAME
from kubedrf.kube import unreachable
from kubedrf.master.lifecycle import valid_claims
from kubedrf.master.metrics import Metrics
from kubedrf.master.records import PodRecord
from kubedrf.master.view import MasterView
from kubedrf.master.writer import ApiWriter

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Binding:
    pod: PodRecord
    node: str


def bindings(view: MasterView) -> list[Binding]:
    """The valid claims still unbound that name kubedrf as their scheduler, on usable nodes.

    ``view`` is the view as this cycle's settlements leave it: a Pod whose offer was just
    rescinded is no valid claim, and a refused one is gone. A Pod on a node that is not
    usable (gone, NotReady, cordoned) waits, as kube-scheduler would leave it pending.
    """
    return [
        Binding(pod, pod.node)
        for _, pods in sorted(valid_claims(view).items())
        for pod in pods
        if pod.scheduler == SCHEDULER_NAME
        and not pod.bound
        and pod.node is not None
        and pod.node in view.usable
    ]


class Binder:
    """Carries out bindings: a Pod the API will not bind gets Events and is deleted, so
    its resources return to the pool instead of waiting on a node it can never reach."""

    def __init__(self, writer: ApiWriter, metrics: Metrics) -> None:
        self.writer = writer
        self.metrics = metrics

    async def bind(self, binding: Binding, view: MasterView) -> None:
        pod = binding.pod
        try:
            await self.writer.bind_pod(pod.namespace, pod.name, binding.node)
        except ApiException as error:
            if unreachable(error):
                raise  # transient: a later cycle binds it
            await self._failed(binding, view, f"{error.status} {error.reason}")
            return
        self.metrics.tasks_bound.labels("bound").inc()

    async def _failed(self, binding: Binding, view: MasterView, why: str) -> None:
        pod = binding.pod
        message = f"task {pod.name} could not be bound to node {binding.node} ({why}); deleted"
        logger.warning("%s", message)
        for regarding in (
            pod.reference(),
            view.bodies.get(("framework", pod.framework_key or "")),
        ):
            if regarding is not None:
                await self.writer.event(regarding, "BindingFailed", message, "Warning", "Bind")
        await self.writer.delete_pod(pod.namespace, pod.name)
        self.metrics.tasks_bound.labels("failed").inc()
