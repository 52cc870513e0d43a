"""An invariant checker that reads the API on its own: one list-then-watch per kind, no code of
the master's loop. It keeps the latest body of every object, judges the design's invariants
on that state twice a second, and records:

* breaches of invariants 1–5 and 7 (2 and 6 through 1: a resource in two offers, or an offer
  doubled by a restarted master, oversubscribes its node's free capacity). What a node holds
  is its outstanding offers and the Pods *bound* to it: a claim pinned to a node but never
  bound holds nothing (the master binds only valid claims); a bad claim breaches 7 once it is
  bound, or once it has gone unrefused longer than the master's grace for unseen offers;
* lost tasks: task Pods that ran (were bound) and vanished while not terminal, when no one
  decided it (the harness removed their node or their framework, the framework was asked to
  give tasks back through an InverseOffer, or the Pod was one the harness planted to be
  refused). A claim refused before it was ever bound is no lost task: it never held anything;
* stuck offers: outstanding past ``expiresAt`` by more than a cycle, once the master could act;
* offers created, to time recovery (a cycle is successful when it writes an offer).

Invariant 5 and stuck offers are judged only once the master has made its first offer: before
that no master leads yet. Each finding says when it was seen, in seconds since the start.

The watches of different kinds are not one consistent cut (a Pod's end may arrive after the
offer made on what it freed), so a breach counts only once it has held for ``persist``
seconds with every watch connected.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes import client, watch

from kubedrf.master.lifecycle import CLAIM_GRACE_SECONDS
from kubedrf.master.records import pinned_node, pod_requests
from kubedrf.resources import Resources, total

GROUP, VERSION = "kubedrf.io", "v1alpha1"
Key = tuple[str, str]
Body = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")


def key_of(body: Body) -> Key:
    meta = body.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def timestamp(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def outstanding(offer: Body) -> bool:
    return (offer.get("status") or {}).get("phase") in (None, "Offered")


def in_subtree(role: str, root: str) -> bool:
    return role == root or role.startswith(root + ".")


def bound_node(pod: Body) -> str | None:
    """The node a Pod is bound to: what holds its requests there."""
    return (pod.get("spec") or {}).get("nodeName") or None


class Informer(threading.Thread):
    """List, then watch from the list's resourceVersion; relist after any error (a 410, the
    apiserver or etcd gone). A relist reports what vanished meanwhile as deleted."""

    def __init__(
        self,
        kind: str,
        lister: Callable[..., Any],
        on_event: Callable[[str, str, Body], None],
        stopped: threading.Event,
        **selectors: str,
    ) -> None:
        super().__init__(name=f"chaos-{kind}", daemon=True)
        self.kind = kind
        self.lister = lister
        self.on_event = on_event
        self.stopped = stopped
        self.selectors = selectors
        self.known: dict[Key, Body] = {}
        self.synced = False
        self.synced_since = 0.0

    def run(self) -> None:
        while not self.stopped.is_set():
            # The apiserver went away, or the watch expired: relist when it is back.
            with contextlib.suppress(Exception):
                self._list_and_watch()
            self.synced = False
            self.stopped.wait(0.5)

    def _list_and_watch(self) -> None:
        answer = self.lister(**self.selectors, _preload_content=False, _request_timeout=15)
        listing = json.loads(answer.data)
        items = {key_of(item): item for item in listing.get("items") or []}
        for key in set(self.known) - set(items):
            self.on_event(self.kind, "DELETED", self.known.pop(key))
        for key, item in items.items():
            self.known[key] = item
            self.on_event(self.kind, "MODIFIED", item)
        self.synced, self.synced_since = True, time.time()
        stream = watch.Watch().stream(
            self.lister,
            **self.selectors,
            resource_version=listing["metadata"]["resourceVersion"],
            timeout_seconds=60,
            _request_timeout=90,
        )
        for event in stream:
            if self.stopped.is_set():
                return
            kind, body = event["type"], event["raw_object"]
            if kind == "ERROR":
                return
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                self.known.pop(key_of(body), None)
            else:
                self.known[key_of(body)] = body
            self.on_event(self.kind, kind, body)


@dataclass
class Vanished:
    pod: Body
    at: float
    node: str | None


@dataclass
class Findings:
    breaches: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)


class Checker:
    """Watches the cluster and judges the invariants until ``stop``."""

    def __init__(
        self,
        api: client.ApiClient,
        managed_label: tuple[str, str],
        interval: float = 1.0,
        persist: float = 3.0,
        lost_grace: float = 15.0,
    ) -> None:
        self.managed_label = managed_label
        self.interval = interval
        self.persist = persist
        self.lost_grace = lost_grace
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.state: dict[str, dict[Key, Body]] = {}
        self.offer_history: dict[Key, Body] = {}
        self.offers_created: list[tuple[float, Body]] = []
        self.refused: set[Key] = set()
        self.inverse_frameworks: dict[Key, float] = {}
        self.vanished: list[Vanished] = []
        self.findings = Findings()
        self._pending: dict[str, tuple[float, str]] = {}
        self._reported: set[str] = set()
        self._started = time.time()
        # What the harness decided, so that it is no breach nor loss.
        self.excused_nodes: dict[str, float] = {}
        self.excused_frameworks: dict[Key, float] = {}
        self.hostile: set[Key] = set()
        self.excused_offers: set[Key] = set()
        #: Until when the master could not act (a fault not yet recovered from).
        self.blind_until = 0.0
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)

        def custom_lister(plural: str) -> Callable[..., Any]:
            def lister(**kw: Any) -> Any:
                return custom.list_cluster_custom_object(GROUP, VERSION, plural, **kw)

            return lister

        self.informers = [
            Informer("node", core.list_node, self._on_event, self.stopped),
            Informer("pod", core.list_pod_for_all_namespaces, self._on_event, self.stopped),
            Informer(
                "event",
                core.list_event_for_all_namespaces,
                self._on_event,
                self.stopped,
                field_selector="involvedObject.kind=Pod,type=Warning",
            ),
            *(
                Informer(kind, custom_lister(f"{kind}s"), self._on_event, self.stopped)
                for kind in (
                    "offer",
                    "inverseoffer",
                    "framework",
                    "role",
                    "quota",
                    "reservation",
                )
            ),
        ]
        self._judge_thread = threading.Thread(target=self._judge_loop, daemon=True)

    # -- watching ------------------------------------------------------------------------------

    def start(self) -> Checker:
        for informer in self.informers:
            informer.start()
        self._judge_thread.start()
        return self

    def stop(self) -> Findings:
        self.stopped.set()
        self._judge_thread.join(timeout=10)
        with self.lock:
            self._judge_lost(final=True)
            return self.findings

    def synced(self) -> bool:
        return all(informer.synced for informer in self.informers)

    def _on_event(self, kind: str, type_: str, body: Body) -> None:
        now = time.time()
        with self.lock:
            objects = self.state.setdefault(kind, {})
            key = key_of(body)
            if type_ == "DELETED":
                known = objects.pop(key, body)
                last = body if body.get("spec") else known  # the deletion's body is the newest
                if kind == "pod" and self._is_task(last):
                    phase = (last.get("status") or {}).get("phase")
                    if phase not in TERMINAL:
                        self.vanished.append(Vanished(last, now, self._node(last)))
                return
            objects[key] = body
            if kind == "offer":
                if key not in self.offer_history:
                    self.offers_created.append((now, body))
                self.offer_history[key] = body
            elif kind == "event":
                if body.get("action") == "Refuse":
                    regarding = body.get("involvedObject") or {}
                    self.refused.add((regarding.get("namespace", ""), regarding.get("name", "")))
            elif kind == "inverseoffer":
                spec = body.get("spec") or {}
                self.inverse_frameworks[(key[0], spec.get("framework", ""))] = now

    # -- what the harness tells -----------------------------------------------------------------

    def excuse_node(self, node: str) -> None:
        with self.lock:
            self.excused_nodes[node] = time.time()

    def excuse_framework(self, namespace: str, name: str) -> None:
        with self.lock:
            self.excused_frameworks[(namespace, name)] = time.time()

    def excuse_offer(self, namespace: str, name: str) -> None:
        """An offer deleted by hand: tasks that claimed it may be refused."""
        with self.lock:
            self.excused_offers.add((namespace, name))

    def plant(self, namespace: str, pod: str) -> None:
        with self.lock:
            self.hostile.add((namespace, pod))

    def blind(self, until: float) -> None:
        with self.lock:
            self.blind_until = max(self.blind_until, until)

    def first_offer_after(self, moment: float, node: str | None = None) -> float | None:
        """When the first offer made after ``moment`` (on ``node``) was seen, if any."""
        with self.lock:
            for seen, body in self.offers_created:
                created = timestamp((body.get("metadata") or {}).get("creationTimestamp"))
                on_node = node is None or (body.get("spec") or {}).get("nodeName") == node
                if seen >= moment and created is not None and created >= int(moment) and on_node:
                    return seen
        return None

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time in ``[start, end]`` in which no new offer was seen: how long
        allocation stood still while a fault that should not stop it lasted."""
        with self.lock:
            seen = sorted(at for at, _ in self.offers_created if start < at < end)
        marks = [start, *seen, end]
        return max(later - earlier for earlier, later in itertools.pairwise(marks))

    def room(self, node: str) -> bool:
        """Whether ``node`` is Ready and has room (beside what is bound, pinned or offered
        there) for a task some framework demands: whether an offer on it is owed."""
        with self.lock:
            body = self.state.get("node", {}).get(("", node)) or {}
            conditions = (body.get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                return False
            nodes = self._managed_nodes()
            if node not in nodes:
                return False
            free = nodes[node] - total(r for n, _, _, r, _ in self._usage(pinned=True) if n == node)
            for (namespace, name), framework in self.state.get("framework", {}).items():
                if (namespace, name) in self.excused_frameworks:
                    continue
                for shape in (framework.get("spec") or {}).get("demand") or []:
                    want = Resources.parse(shape.get("resources") or {})
                    if shape.get("count") and want and want <= free:
                        return True
            return False

    # -- judging -------------------------------------------------------------------------------

    def _judge_loop(self) -> None:
        while not self.stopped.wait(0.5):
            with self.lock:
                now = time.time()
                if not self.synced():
                    self._pending.clear()
                    continue
                current = dict(self._current_breaches(now))
                for name in set(self._pending) - set(current):
                    del self._pending[name]
                for name, message in current.items():
                    since, _ = self._pending.setdefault(name, (now, message))
                    if now - since >= self.persist and name not in self._reported:
                        self._reported.add(name)
                        self.findings.breaches.append(self._when(since) + message)
                self._judge_lost(final=False)
                self._judge_stuck(now)

    def _when(self, moment: float) -> str:
        return f"at {moment - self._started:.1f}s: "

    def _master_acted(self) -> bool:
        """Whether a master has made an offer yet: before, none leads, and nothing is late."""
        return bool(self.offers_created)

    def _is_task(self, pod: Body) -> bool:
        return "kubedrf.io/framework" in ((pod.get("metadata") or {}).get("labels") or {})

    def _node(self, pod: Body) -> str | None:
        spec = pod.get("spec") or {}
        return spec.get("nodeName") or pinned_node(spec)

    def _managed_nodes(self) -> dict[str, Resources]:
        key, value = self.managed_label
        nodes = {}
        for body in self.state.get("node", {}).values():
            labels = (body.get("metadata") or {}).get("labels") or {}
            if labels.get(key) != value:
                continue
            nodes[body["metadata"]["name"]] = Resources.parse(
                (body.get("status") or {}).get("allocatable") or {}
            )
        return nodes

    def _usage(self, pinned: bool = False) -> Iterator[tuple[str, str | None, str, Resources, str]]:
        """(node, role or None for a non-kubedrf Pod, namespace, resources, what) of every
        outstanding offer and every live bound Pod not covered by an outstanding offer; with
        ``pinned``, Pods pinned to a node and not bound yet too (what is on its way there)."""
        offers = {k: o for k, o in self.state.get("offer", {}).items() if outstanding(o)}
        for (namespace, name), offer in offers.items():
            spec = offer.get("spec") or {}
            yield (
                spec.get("nodeName", ""),
                spec.get("role", ""),
                namespace,
                Resources.parse(spec.get("resources") or {}),
                f"offer {namespace}/{name}",
            )
        for (namespace, name), pod in self.state.get("pod", {}).items():
            if (pod.get("status") or {}).get("phase") in TERMINAL:
                continue
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if (namespace, labels.get("kubedrf.io/offer", "")) in offers:
                continue
            node = self._node(pod) if pinned else bound_node(pod)
            if node is None:
                continue
            yield (
                node,
                labels.get("kubedrf.io/role"),
                namespace,
                pod_requests(pod.get("spec") or {}),
                f"pod {namespace}/{name}",
            )

    def _current_breaches(self, now: float) -> Iterator[tuple[str, str]]:
        nodes = self._managed_nodes()
        usage = [u for u in self._usage() if u[0] in nodes]
        # 1 (and 2, 6): no overcommit.
        per_node: dict[str, list[tuple[Resources, str]]] = {}
        for node, _, _, resources, what in usage:
            per_node.setdefault(node, []).append((resources, what))
        for node, parts in per_node.items():
            used = total(resources for resources, _ in parts)
            if not used <= nodes[node]:
                # What holds it, so a breach found in a long run can be traced in the logs.
                held = "; ".join(f"{what} {r}" for r, what in sorted(parts, key=lambda p: p[1]))
                yield (
                    f"1:{node}",
                    f"invariant 1: node {node} holds {used} > {nodes[node]}: {held}",
                )
        # 3: reserved resources only to their role's subtree.
        for reservation in self.state.get("reservation", {}).values():
            spec = reservation.get("spec") or {}
            node, role = spec.get("nodeName", ""), spec.get("role", "")
            if node not in nodes:
                continue
            others = total(
                r for n, rl, _, r, _ in usage if n == node and not in_subtree(rl or "", role)
            )
            reserved = Resources.parse(spec.get("resources") or {})
            if not others + reserved <= nodes[node]:
                yield (
                    f"3:{node}:{role}",
                    f"invariant 3: on {node}, roles outside {role} hold {others} of what "
                    f"is left after its reservation {reserved}",
                )
        # 4: a role's offered + allocated within its quota limit.
        for quota in self.state.get("quota", {}).values():
            spec = quota.get("spec") or {}
            role, limit = spec.get("role", ""), Resources.parse(spec.get("limit") or {})
            if not limit:
                continue
            held = total(r for _, rl, _, r, _ in usage if rl and in_subtree(rl, role))
            over = {name: amount for name, amount in held.items() if amount > limit.get(name, 0)}
            if any(name in limit for name in over):
                yield f"4:{role}", f"invariant 4: role {role} holds {held}, limit {limit}"
        # 5: a role below its guarantee with demand is served first when capacity exists.
        if now >= self.blind_until and self._master_acted():
            # Claims on their way to being bound count as served, and as taking room.
            coming = [u for u in self._usage(pinned=True) if u[0] in nodes]
            yield from self._starved_guarantees(nodes, coming)
        # 7: a framework uses only offers made to it, in its namespace, up to what was offered.
        yield from self._bad_claims(now)

    def _starved_guarantees(
        self, nodes: dict[str, Resources], usage: list[tuple[str, str | None, str, Resources, str]]
    ) -> Iterator[tuple[str, str]]:
        used: dict[str, list[Resources]] = {}
        for node, _, _, resources, _ in usage:
            used.setdefault(node, []).append(resources)
        free = {node: alloc - total(used.get(node, [])) for node, alloc in nodes.items()}
        reserved = [r.get("spec") or {} for r in self.state.get("reservation", {}).values()]
        for quota in self.state.get("quota", {}).values():
            spec = quota.get("spec") or {}
            role = spec.get("role", "")
            guarantee = Resources.parse(spec.get("guarantee") or {})
            held = total(r for _, rl, _, r, _ in usage if rl and in_subtree(rl, role))
            if not guarantee or guarantee <= held:
                continue
            if any(rl and in_subtree(rl, role) for _, rl, _, _, what in usage if "offer" in what):
                continue  # being served
            for (namespace, name), framework in self.state.get("framework", {}).items():
                fspec = framework.get("spec") or {}
                if not any(in_subtree(r, role) for r in fspec.get("roles") or []):
                    continue
                if fspec.get("suppressed") or (namespace, name) in self.excused_frameworks:
                    continue
                for shape in fspec.get("demand") or []:
                    want = Resources.parse(shape.get("resources") or {})
                    if not shape.get("count") or not want:
                        continue
                    for node, room in free.items():
                        other = total(
                            Resources.parse(r.get("resources") or {})
                            for r in reserved
                            if r.get("nodeName") == node and not in_subtree(role, r.get("role", ""))
                        )
                        if want + other <= room:
                            yield (
                                f"5:{role}:{namespace}/{name}",
                                f"invariant 5: role {role} holds {held} below its guarantee "
                                f"{guarantee}; {namespace}/{name} wants {want} and {node} has "
                                f"{room} free, yet nothing is offered",
                            )
                            break

    def _bad_claims(self, now: float) -> Iterator[tuple[str, str]]:
        """Claims that use what was not offered: bound ones at once; unbound ones (which hold
        nothing yet) once the master has had its grace for offers it has not seen, and a cycle
        to refuse them, outside a fault (a refusal needs the API to delete the Pod)."""
        claimed: dict[Key, list[Resources]] = {}
        for (namespace, name), pod in self.state.get("pod", {}).items():
            labels = (pod.get("metadata") or {}).get("labels") or {}
            offer_name = labels.get("kubedrf.io/offer")
            if offer_name is None or (pod.get("status") or {}).get("phase") in TERMINAL:
                continue
            created = timestamp((pod.get("metadata") or {}).get("creationTimestamp")) or now
            owed = max(created + CLAIM_GRACE_SECONDS + 2 * self.interval, self.blind_until)
            if bound_node(pod) is None and now < owed:
                continue
            offer = self.offer_history.get((namespace, offer_name))
            where = f"pod {namespace}/{name}"
            if offer is None:
                yield f"7:{namespace}/{name}", f"invariant 7: {where} claims no offer of its own"
                continue
            spec = offer.get("spec") or {}
            if spec.get("framework") != labels.get("kubedrf.io/framework") or spec.get(
                "nodeName"
            ) != self._node(pod):
                yield (
                    f"7:{namespace}/{name}",
                    f"invariant 7: {where} claims offer {offer_name} of another framework or node",
                )
            claimed.setdefault((namespace, offer_name), []).append(
                pod_requests(pod.get("spec") or {})
            )
        for (namespace, offer_name), parts in claimed.items():
            offer = self.offer_history[(namespace, offer_name)]
            offered = Resources.parse((offer.get("spec") or {}).get("resources") or {})
            if not total(parts) <= offered:
                yield (
                    f"7:{namespace}/{offer_name}",
                    f"invariant 7: tasks on offer {namespace}/{offer_name} hold {total(parts)} "
                    f"> offered {offered}",
                )

    def _judge_lost(self, final: bool) -> None:
        now = time.time()
        keep = []
        for gone in self.vanished:
            if not final and now - gone.at < self.lost_grace:
                keep.append(gone)
                continue
            meta = gone.pod.get("metadata") or {}
            key = key_of(gone.pod)
            framework = (key[0], (meta.get("labels") or {}).get("kubedrf.io/framework", ""))
            offer = (key[0], (meta.get("labels") or {}).get("kubedrf.io/offer", ""))
            if key in self.hostile or offer in self.excused_offers:
                continue
            if bound_node(gone.pod) is None:
                continue  # a claim refused (or withdrawn) before it ran: it held nothing
            if gone.node is not None and gone.node in self.excused_nodes:
                continue
            if framework in self.excused_frameworks or framework in self.inverse_frameworks:
                continue
            what = "refused" if key in self.refused else "deleted, undecided"
            self.findings.lost.append(
                f"{self._when(gone.at)}task {key[0]}/{key[1]} on {gone.node}: {what}"
            )
        self.vanished = keep

    def _judge_stuck(self, now: float) -> None:
        if not self._master_acted():
            return
        for key, offer in self.state.get("offer", {}).items():
            if not outstanding(offer):
                continue
            expires = timestamp((offer.get("spec") or {}).get("expiresAt"))
            if expires is None:
                continue
            since = max(expires, self.blind_until)
            name = f"stuck:{key[0]}/{key[1]}"
            if now - since > self.interval + 1.0 and name not in self._reported:
                self._reported.add(name)
                late = now - expires
                self.findings.stuck.append(
                    f"{self._when(now)}offer {key[0]}/{key[1]} outstanding {late:.1f}s late"
                )


@contextlib.contextmanager
def checking(api: client.ApiClient, managed_label: tuple[str, str]) -> Iterator[Checker]:
    checker = Checker(api, managed_label).start()
    try:
        yield checker
    finally:
        checker.stop()
