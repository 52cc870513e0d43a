"""The one way kubedrf connects to a cluster, and tells an unreachable API from a refusal."""

from __future__ import annotations

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException


def api_client() -> client.ApiClient:
    """The kubeconfig's client (KUBECONFIG honoured), or the in-cluster one."""
    try:
        api: client.ApiClient = config.new_client_from_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        api = client.ApiClient()
    return api


def unreachable(error: BaseException) -> bool:
    """Whether a call failed because the API could not be reached or could not answer
    (refused or reset connections, timeouts, a 5xx or 429 from a server starting or without
    etcd), rather than because it refused the request itself: after the former, a watch may
    have missed events, so what was cached is no longer known to be complete."""
    if isinstance(error, ApiException):
        return not error.status or error.status >= 500 or error.status == 429
    return isinstance(error, urllib3.exceptions.HTTPError | OSError | TimeoutError)
