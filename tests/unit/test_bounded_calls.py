"""Every API call the master and the SDK make is bounded in time, and the master's Lease
renewal runs on its own thread: in the chaos soak, calls made while kube-apiserver restarted
hung for over a minute, held every shared worker thread, and the leader neither relisted,
allocated nor renewed its Lease for 78 s."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client

from kubedrf.kube import REQUEST_TIMEOUT, BoundedApiClient
from kubedrf.master.leader import LeaderElector


class SentError(Exception):
    """Raised by the fake transport: the request went no further."""


def timeouts_of(call: Any) -> list[Any]:
    """The ``_request_timeout`` each request of ``call(api)`` was sent with."""
    api = BoundedApiClient(client.Configuration(host="http://127.0.0.1:1"))
    sent: list[Any] = []

    def request(method: str, url: str, **kwargs: Any) -> Any:
        sent.append((url, kwargs["_request_timeout"]))
        raise SentError

    api.rest_client.request = request  # type: ignore[method-assign]
    with pytest.raises(SentError):
        call(api)
    return sent


def test_a_call_that_names_no_timeout_gets_the_default() -> None:
    ((url, timeout),) = timeouts_of(lambda api: client.CoreV1Api(api).read_namespace("x"))
    assert url.endswith("/api/v1/namespaces/x")
    assert timeout == REQUEST_TIMEOUT


def test_a_call_keeps_its_own_timeout_and_a_watch_waits_for_events() -> None:
    ((_, own),) = timeouts_of(
        lambda api: client.CoreV1Api(api).list_node(_request_timeout=(1.0, 2.0))
    )
    assert own == (1.0, 2.0)
    ((url, watching),) = timeouts_of(
        lambda api: client.CoreV1Api(api).list_node(
            watch=True, timeout_seconds=300, _preload_content=False
        )
    )
    assert "watch=true" in url
    assert watching is None


def test_lease_rounds_do_not_wait_behind_the_shared_worker_threads() -> None:
    elector = LeaderElector(client.ApiClient(), "ns", "lease")
    rounds: list[str] = []
    elector.step = lambda: bool(rounds.append(threading.current_thread().name))  # type: ignore[method-assign]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        released = threading.Event()
        busy = loop.run_in_executor(None, released.wait, 10)  # a write the API never answers
        stopped = asyncio.Event()
        running = asyncio.create_task(elector.run(stopped))
        await asyncio.sleep(0.5)
        try:
            assert rounds, "no Lease round while the shared worker threads were busy"
        finally:
            stopped.set()
            released.set()
            await running
            await busy

    asyncio.run(main())
    assert rounds[0].startswith("kubedrf-lease")


def test_the_lease_calls_are_bounded_by_the_renew_deadline() -> None:
    elector = LeaderElector(client.ApiClient(), "ns", "lease", renew_deadline=7, retry_seconds=3)
    sent: list[Any] = []
    leases = elector.leases._api  # the CoordinationV1Api the election calls through

    def read(name: str, namespace: str, **kwargs: Any) -> Any:
        sent.append(kwargs)
        raise SentError

    leases.read_namespaced_lease = read
    with pytest.raises(SentError):
        elector.leases.read_namespaced_lease("lease", "ns")
    assert sent == [{"_request_timeout": (3.0, 7.0)}]
