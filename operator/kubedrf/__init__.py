"""kubedrf: Mesos-style two-level scheduling for Kubernetes.

Layout: ``resources`` (exact resource arithmetic), ``allocator`` (the pure hierarchical DRF
core), ``simulator`` (virtual-time runs of the core), ``devcluster`` (the local control plane),
``cli`` (the ``kubedrf`` command).
"""

__version__ = "0.1.0"
