"""Reading a live cluster into the master's frozen view: list every watched kind, freeze."""

from __future__ import annotations

import asyncio
import time

from kubernetes import client, config

from kubedrf.master.cache import ClusterCache
from kubedrf.master.settings import MasterSettings
from kubedrf.master.sync import relist
from kubedrf.master.view import MasterView


def api_client(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    """A client as kubectl would build one: ``--kubeconfig``, then ``$KUBECONFIG``, then
    ``~/.kube/config``, with ``--context`` or the current one; in a Pod, its ServiceAccount."""
    try:
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context
        )
    except config.ConfigException:
        if kubeconfig or context:
            raise
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        api = client.ApiClient()
    return api


def current_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The context's namespace, ``default`` when it names none (kubectl's rule)."""
    try:
        contexts, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
    except config.ConfigException:
        return "default"
    chosen = next((c for c in contexts if c["name"] == context), None) if context else active
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else "default"


def read_view(
    api: client.ApiClient, settings: MasterSettings, now: float | None = None
) -> MasterView:
    """The cluster as one master cycle would see it, read by the master's own relist."""
    cache = ClusterCache(settings)
    asyncio.run(relist(api, cache))
    return cache.freeze(time.time() if now is None else now)
