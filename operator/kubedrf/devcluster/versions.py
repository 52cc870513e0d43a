"""The one place where the versions of the local control plane's binaries are pinned.

Every binary is built from the Go module proxy at exactly these versions (see ``provision``);
changing a version here is all an upgrade takes, the binary cache being keyed by version.
"""

from __future__ import annotations

from typing import Final

#: ``k8s.io/kubernetes``: kube-apiserver, kube-scheduler, kube-controller-manager, kubectl.
#: Its staging modules (``k8s.io/api`` …) are used at the matching ``v0.X.Y``.
KUBERNETES: Final = "v1.36.3"

#: ``sigs.k8s.io/kwok``: kwok (fake nodes and pod lifecycles) and kwokctl (starts the cluster).
#: Its go.mod has no replace directives, so it builds as a plain dependency.
KWOK: Final = "v0.8.0"

#: ``helm.sh/helm/v3``.
HELM: Final = "v3.22.0"

#: ``github.com/yannh/kubeconform``: validates rendered manifests against JSON schemas, which
#: the tests generate from the local apiserver's OpenAPI (no schema registry is reachable).
KUBECONFORM: Final = "v0.8.0"

#: ``go.etcd.io/etcd/server/v3``, the release line Kubernetes 1.36 is tested against.
ETCD: Final = "v3.6.16"

#: ``github.com/prometheus/prometheus``: scrapes the master in the dashboard's tests. Its Go
#: module is tagged ``v0.X.Y`` for release ``3.X.Y`` (see ``prometheus_release``).
PROMETHEUS: Final = "v0.316.0"

#: The Debian release whose packages make the base image (debootstrap, minbase variant). Its
#: Python is 3.11, like the Dockerfile's default ``python:3.11-slim``, which it stands in for.
DEBIAN_SUITE: Final = "bookworm"
DEBIAN_MIRROR: Final = "http://deb.debian.org/debian"
#: Added to minbase: what the Dockerfile runs (pip, groupadd) and what clients need (TLS roots).
DEBIAN_BASE_PACKAGES: Final = ("python3", "python3-pip", "passwd", "ca-certificates")


def staging_version(kubernetes: str = KUBERNETES) -> str:
    """The ``v0.X.Y`` tag of the staging modules (``k8s.io/api`` …) of a ``v1.X.Y`` release."""
    major, minor, patch = kubernetes.removeprefix("v").split(".")
    if major != "1":
        raise ValueError(f"unexpected Kubernetes version {kubernetes!r}")
    return f"v0.{minor}.{patch}"


def prometheus_release(module_version: str = PROMETHEUS) -> str:
    """The ``3.X.Y`` release a ``v0.3XX.Y`` Prometheus module tag stands for."""
    _, minor, patch = module_version.removeprefix("v").split(".")
    if not (minor.startswith("3") and len(minor) == 3):
        raise ValueError(f"unexpected Prometheus module version {module_version!r}")
    return f"3.{int(minor[1:])}.{patch}"
