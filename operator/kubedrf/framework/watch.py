"""A list-then-watch stream that survives watch errors and apiserver restarts.

The Kubernetes client's watch is synchronous, so it runs in a worker thread and hands events
to the event loop. As a client-go reflector does, a watch that ends resumes from the last
resourceVersion seen (bookmarks keep it fresh), and only an error (the version compacted
away, the apiserver gone) lists again: a ``SYNC`` event with every object, so a consumer
never misses a change for long. Bodies stay plain JSON: the client's models cost more to
build than everything a framework does with a Pod, at thousands of Pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

logger = logging.getLogger(__name__)

#: Seconds a single watch request stays open before it is renewed.
WATCH_SECONDS = 30
#: Seconds to open a connection before it is given up on.
CONNECT_SECONDS = 5.0
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
        field_selector: str = "",
        since: str | None = None,
        relist: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        """``since``: a version to watch from at first, instead of listing (its owner has just
        listed). ``relist``: how to list again after an error, when its owner applies the
        list itself (in pages, say) and answers the version to watch from; without it, the
        stream lists and hands the list on as a ``SYNC`` event."""
        self.api = api
        self.since = since
        self.relist = relist
        self.list_function = list_function
        self.namespace = namespace
        self.queue = queue
        self.name = name
        self._selectors = {
            key: value
            for key, value in (
                ("label_selector", label_selector),
                ("field_selector", field_selector),
            )
            if value
        }
        self._stop = threading.Event()

    def _list(self) -> tuple[list[dict[str, Any]], str | None]:
        response = self.list_function(self.namespace, _preload_content=False, **self._selectors)
        _raise_for_status(response)
        answer = json.loads(response.data)
        version = (answer.get("metadata") or {}).get("resourceVersion")
        return list(answer.get("items") or []), version

    def _watch(self, loop: asyncio.AbstractEventLoop, version: str | None) -> str | None:
        """Watch from ``version`` until the request ends; the last version seen.

        The client's ``Watch`` would build a model of every event (or, told not to, fail on
        the apiserver's ERROR event), so the response's lines are read here.
        """
        response = self.list_function(
            self.namespace,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            # An apiserver that hangs without closing the connection: given up on, relisted.
            _request_timeout=(CONNECT_SECONDS, WATCH_SECONDS + 15),
            _preload_content=False,
            **self._selectors,
        )
        try:
            _raise_for_status(response)
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                if self._stop.is_set():
                    break
                event = json.loads(line)
                body = event.get("object") or {}
                if event.get("type") == "ERROR":  # e.g. 410: the version is compacted away
                    raise ApiException(status=body.get("code"), reason=body.get("message"))
                version = (body.get("metadata") or {}).get("resourceVersion") or version
                if event.get("type") != "BOOKMARK":
                    loop.call_soon_threadsafe(
                        self.queue.put_nowait, (self.name, WatchEvent(event["type"], [body]))
                    )
        finally:
            response.close()
            response.release_conn()
        return version

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        version = self.since
        while not self._stop.is_set():
            try:
                if version is None and self.relist is not None:
                    version = await self.relist()
                elif version is None:
                    items, version = await asyncio.to_thread(self._list)
                    await self.queue.put((self.name, WatchEvent("SYNC", items)))
                while not self._stop.is_set():
                    version = await _in_daemon_thread(self._watch, loop, version)
            except Exception as error:  # the apiserver restarted, the watch expired, ...
                if self._stop.is_set():
                    break
                logger.warning("%s stream: %s; listing again", self.name, error)
                version = None
                await asyncio.sleep(BACKOFF_SECONDS)

    def stop(self) -> None:
        self._stop.set()


def _raise_for_status(response: Any) -> None:
    """An answer read raw is not checked by the client: a refusal would read as data."""
    if not 200 <= response.status <= 299:
        raise ApiException(http_resp=response)


T = TypeVar("T")


def _in_daemon_thread(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run a blocking watch in a daemon thread: unlike ``asyncio.to_thread``, a process
    stopping (SIGTERM) does not wait up to WATCH_SECONDS for the request to end."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(result)  # type: ignore[arg-type]
        else:
            done.set_exception(error)

    def target() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = function(*args)
        except BaseException as caught:
            error = caught
        with contextlib.suppress(RuntimeError):  # the loop may be closed by now
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, daemon=True).start()
    return done
