"""A list-then-watch stream that survives watch errors and apiserver restarts.

The Kubernetes client's watch is synchronous, so it runs in a worker thread and hands events
to the event loop. After any error the stream lists again (a ``SYNC`` event with every
object) before it resumes watching, so a consumer never misses a change for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

logger = logging.getLogger(__name__)

#: Seconds a single watch request stays open before it is renewed.
WATCH_SECONDS = 30
#: Seconds to wait after an error before listing again.
BACKOFF_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # SYNC (a full list), ADDED, MODIFIED, DELETED
    objects: list[dict[str, Any]]


class Stream:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        list_function: Callable[..., Any],
        namespace: str,
        label_selector: str,
        queue: asyncio.Queue[tuple[str, WatchEvent]],
        name: str,
    ) -> None:
        self.api = api
        self.list_function = list_function
        self.namespace = namespace
        self.label_selector = label_selector
        self.queue = queue
        self.name = name
        self._stop = threading.Event()

    def _plain(self, item: Any) -> dict[str, Any]:
        plain: dict[str, Any] = (
            item if isinstance(item, dict) else self.api.sanitize_for_serialization(item)  # type: ignore[no-untyped-call]
        )
        return plain

    def _list(self) -> tuple[list[dict[str, Any]], str | None]:
        answer = self._plain(self.list_function(self.namespace, label_selector=self.label_selector))
        version = (answer.get("metadata") or {}).get("resourceVersion")
        return [self._plain(item) for item in answer.get("items") or []], version

    def _watch(self, loop: asyncio.AbstractEventLoop, version: str | None) -> None:
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for event in stream.stream(  # type: ignore[no-untyped-call]
                self.list_function,
                self.namespace,
                label_selector=self.label_selector,
                resource_version=version,
                timeout_seconds=WATCH_SECONDS,
            ):
                if self._stop.is_set():
                    break
                if event.get("type") == "ERROR":
                    raise ApiException(status=410, reason="watch error: relisting")
                body = self._plain(
                    event["raw_object"] if "raw_object" in event else event["object"]
                )
                loop.call_soon_threadsafe(
                    self.queue.put_nowait, (self.name, WatchEvent(event["type"], [body]))
                )
                version = (body.get("metadata") or {}).get("resourceVersion") or version
        finally:
            stream.stop()  # type: ignore[no-untyped-call]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            try:
                items, version = await asyncio.to_thread(self._list)
                await self.queue.put((self.name, WatchEvent("SYNC", items)))
                while not self._stop.is_set():
                    await _in_daemon_thread(self._watch, loop, version)
                    items, version = await asyncio.to_thread(self._list)
                    await self.queue.put((self.name, WatchEvent("SYNC", items)))
            except Exception as error:  # the apiserver restarted, the watch expired, ...
                if self._stop.is_set():
                    break
                logger.warning("%s stream: %s; listing again", self.name, error)
                await asyncio.sleep(BACKOFF_SECONDS)

    def stop(self) -> None:
        self._stop.set()


def _in_daemon_thread(function: Callable[..., None], *args: Any) -> asyncio.Future[None]:
    """Run a blocking watch in a daemon thread: unlike ``asyncio.to_thread``, a process
    stopping (SIGTERM) does not wait up to WATCH_SECONDS for the request to end."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def target() -> None:
        error: BaseException | None = None
        try:
            function(*args)
        except BaseException as caught:
            error = caught
        with contextlib.suppress(RuntimeError):  # the loop may be closed by now
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=target, daemon=True).start()
    return done
