"""The one way kubedrf connects to a cluster."""

from __future__ import annotations

from kubernetes import client, config


def api_client() -> client.ApiClient:
    """The kubeconfig's client (KUBECONFIG honoured), or the in-cluster one."""
    try:
        api: client.ApiClient = config.new_client_from_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        api = client.ApiClient()
    return api
