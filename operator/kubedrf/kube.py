"""The one way kubedrf connects to a cluster, and tells an unreachable API from a refusal."""

from __future__ import annotations

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

#: (connect, read) seconds for a call that names no timeout of its own. The Kubernetes
#: client waits for ever by default: in the chaos soak, calls made while kube-apiserver
#: restarted hung for over a minute, held every worker thread, and with them the master's
#: relist and Lease renewal. The apiserver itself gives up on a request after 60 s.
REQUEST_TIMEOUT = (5.0, 30.0)


class BoundedApiClient(client.ApiClient):
    """A client whose every call is bounded by ``REQUEST_TIMEOUT`` unless it names its own,
    except watches, which wait for events as long as their ``timeoutSeconds`` allows."""

    def call_api(  # type: ignore[no-untyped-def]
        self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None
    ):
        if _request_timeout is None and "watch=true" not in str(url).lower():
            _request_timeout = REQUEST_TIMEOUT
        return super().call_api(method, url, header_params, body, post_params, _request_timeout)


def api_client() -> client.ApiClient:
    """The kubeconfig's client (KUBECONFIG honoured), or the in-cluster one; calls bounded."""
    configuration = client.Configuration()
    try:
        config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return BoundedApiClient(configuration)


def unreachable(error: BaseException) -> bool:
    """Whether a call failed because the API could not be reached or could not answer
    (refused or reset connections, timeouts, a 5xx or 429 from a server starting or without
    etcd), rather than because it refused the request itself: after the former, a watch may
    have missed events, so what was cached is no longer known to be complete."""
    if isinstance(error, ApiException):
        return not error.status or error.status >= 500 or error.status == 429
    return isinstance(error, urllib3.exceptions.HTTPError | OSError | TimeoutError)
