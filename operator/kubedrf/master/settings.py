"""The master's configuration: flags and environment, validated once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from kubedrf.allocator import AllocatorConfig, Mode, RevocationPolicy
from kubedrf.api.conventions import SCHEDULER_NAME
from kubedrf.durations import parse_duration

Seconds = Annotated[float, BeforeValidator(parse_duration)]


class MasterSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    allocation_interval: Seconds = Field(default=1.0, gt=0)
    offer_timeout: Seconds = Field(default=30.0, gt=0)
    #: How long finished offers stay for people to inspect before they are deleted.
    offer_retention: Seconds = Field(default=60.0, ge=0)
    #: Events arriving within this window after a trigger share one cycle.
    batch_window: Seconds = Field(default=0.05, ge=0)
    mode: Mode = "demand"
    managed_label: str = "kubedrf.io/managed=true"
    managed_taint: str = "kubedrf.io/managed"
    fairness_excluded: tuple[str, ...] = ("pods",)
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    #: With a namespace, replicas elect one allocating leader through a Lease there.
    leader_election_namespace: str | None = None
    leader_election_name: str = "kubedrf-master"
    seed: int | None = None
    #: Revocation: converge to the DRF allocation of the current demand through inverse
    #: offers; frameworks get ``grace_period`` to end tasks before the master evicts them.
    revocation: bool = True
    grace_period: Seconds = Field(default=30.0, ge=0)
    #: A task younger than this is never revoked.
    min_runtime: Seconds = Field(default=0.0, ge=0)
    max_revocations_per_cycle: int = Field(default=100, ge=1)
    #: Other roles may use the headroom of an unmet guarantee while its role wants nothing;
    #: revocation returns it. Off: Mesos' behaviour, the headroom is held regardless.
    lend_guarantees: bool = False
    #: Port of /healthz, which probes ask whether the allocation loop is alive; 0: none (the chart
    #: sets one; local runs, several per machine, would fight over a fixed default).
    health_port: int = Field(default=0, ge=0, le=65535)
    #: Who binds task Pods: ``kubedrf`` (the master, after judging each claim against its
    #: offer) or ``kube-scheduler`` (task Pods keep the default scheduler and its filters).
    binder: Literal["kubedrf", "kube-scheduler"] = "kubedrf"
    #: Run the built-in framework (gated Pods of any workload as tasks) inside the master.
    workloads: bool = True
    #: Port of the admission webhook that gates Pods in role-labelled namespaces; 0: none.
    webhook_port: int = Field(default=0, ge=0, le=65535)
    #: The webhook's TLS certificate and key (PEM), which the apiserver must trust.
    webhook_cert_file: str | None = None
    webhook_key_file: str | None = None

    @model_validator(mode="after")
    def _lending_needs_revocation(self) -> MasterSettings:
        if self.lend_guarantees and not self.revocation:
            raise ValueError(
                "lend_guarantees needs revocation on (a lent guarantee comes back to its role"
                " only through revocation)"
            )
        return self

    @model_validator(mode="after")
    def _webhook_has_its_certificate(self) -> MasterSettings:
        if not self.webhook_port:
            return self
        for field in ("webhook_cert_file", "webhook_key_file"):
            path = getattr(self, field)
            if not path:
                raise ValueError(f"{field} is required when webhook_port is set (TLS only)")
            if not os.path.isfile(path):
                raise ValueError(f"{field}: no such file {path!r}")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MasterSettings:
        """Settings from ``KUBEDRF_<FIELD>`` variables (e.g. ``KUBEDRF_OFFER_TIMEOUT=30s``)."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = environ.get(f"KUBEDRF_{name.upper()}")
            if raw is None:
                continue
            values[name] = (
                tuple(filter(None, raw.split(","))) if name == "fairness_excluded" else raw
            )
        return cls.model_validate(values)

    def allocator_config(self) -> AllocatorConfig:
        return AllocatorConfig(
            mode=self.mode,
            fairness_excluded=frozenset(self.fairness_excluded),
            seed=self.seed,
            lend_guarantees=self.lend_guarantees,
        )

    def revocation_policy(self) -> RevocationPolicy:
        return RevocationPolicy(
            min_runtime=self.min_runtime, max_per_cycle=self.max_revocations_per_cycle
        )

    def scheduler_name(self) -> str | None:
        """The ``schedulerName`` offers ask task Pods to carry; ``None``: the default."""
        return SCHEDULER_NAME if self.binder == "kubedrf" else None

    def managed_selector(self) -> tuple[str, str | None]:
        key, eq, value = self.managed_label.partition("=")
        return key, (value if eq else None)
