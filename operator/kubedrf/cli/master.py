"""``kubedrf master``: run the allocator operator against the current kubeconfig."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from typing import Any

from pydantic import ValidationError

from kubedrf.master.records import validation_message
from kubedrf.master.settings import MasterSettings

#: Where a user reads what every flag means; error messages point here.
SETTINGS_DOC = "docs/settings.md"
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "master",
        help="run the master (the allocator operator) against the current kubeconfig",
        description=(
            "Run the kubedrf master: watch the cluster, allocate, write Offers. Durations take"
            " a unit (500ms, 2s, 1m) or are seconds; every flag is also read from"
            " KUBEDRF_<FLAG> by `kopf run -m kubedrf.master.handlers` (see docs/settings.md)."
        ),
    )
    defaults = MasterSettings()
    parser.add_argument(
        "--allocation-interval",
        default=f"{defaults.allocation_interval:g}s",
        metavar="DURATION",
        help="time between allocation cycles when nothing triggers one (default: %(default)s)",
    )
    parser.add_argument(
        "--offer-timeout",
        default=f"{defaults.offer_timeout:g}s",
        metavar="DURATION",
        help="how long an unanswered Offer stays outstanding before it expires"
        " (default: %(default)s)",
    )
    parser.add_argument(
        "--offer-retention",
        default=f"{defaults.offer_retention:g}s",
        metavar="DURATION",
        help="how long finished Offers stay for inspection before they are deleted"
        " (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-window",
        default=f"{defaults.batch_window * 1000:g}ms",
        metavar="DURATION",
        help="events within this window after a trigger share one cycle (default: %(default)s)",
    )
    parser.add_argument(
        "--mode",
        choices=("demand", "classic"),
        default=defaults.mode,
        help="demand: fill by the frameworks' declared task shapes; classic: Mesos' whole-node"
        " offers (default: %(default)s)",
    )
    parser.add_argument(
        "--managed-label",
        default=defaults.managed_label,
        metavar="KEY[=VALUE]",
        help="the node label that selects the nodes kubedrf offers (default: %(default)s)",
    )
    parser.add_argument(
        "--managed-taint",
        default=defaults.managed_taint,
        metavar="KEY",
        help="key of the NoSchedule taint on managed nodes, which task Pods tolerate"
        " (default: %(default)s)",
    )
    parser.add_argument(
        "--fairness-excluded",
        default=",".join(defaults.fairness_excluded),
        metavar="R1,R2",
        help="resource names that do not count toward dominant shares (default: %(default)s)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=defaults.metrics_port,
        metavar="PORT",
        help="TCP port of the Prometheus /metrics endpoint; 0: none (default: %(default)s)",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=defaults.health_port,
        metavar="PORT",
        help="TCP port of /healthz, which fails while the allocation loop is stuck; 0: none"
        " (default: %(default)s)",
    )
    parser.add_argument(
        "--leader-election-namespace",
        metavar="NS",
        help="elect one allocating replica through a Lease in NS (default: no election)",
    )
    parser.add_argument(
        "--leader-election-name",
        default=defaults.leader_election_name,
        metavar="NAME",
        help="name of that Lease (default: %(default)s)",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text: timestamped lines; json: one JSON object per line (default: %(default)s)",
    )
    parser.add_argument(
        "--revocation",
        choices=("on", "off"),
        default="on" if defaults.revocation else "off",
        help="on: take tasks back through inverse offers when a framework is below its DRF"
        " share of the current demand (default: %(default)s)",
    )
    parser.add_argument(
        "--grace-period",
        default=f"{defaults.grace_period:g}s",
        metavar="DURATION",
        help="how long a framework has to end the tasks asked back before the master"
        " evicts them (default: %(default)s)",
    )
    parser.add_argument(
        "--min-runtime",
        default=f"{defaults.min_runtime:g}s",
        metavar="DURATION",
        help="tasks younger than this are never revoked (default: %(default)s)",
    )
    parser.add_argument(
        "--max-revocations-per-cycle",
        type=int,
        default=defaults.max_revocations_per_cycle,
        metavar="N",
        help="at most this many inverse offers started per cycle (default: %(default)s)",
    )
    parser.add_argument(
        "--lend-guarantees",
        choices=("on", "off"),
        default="on" if defaults.lend_guarantees else "off",
        help="on: other roles may use the capacity an unmet guarantee holds while its role"
        " wants nothing, and revocation returns it when the role does; off: held idle, as in"
        " Mesos (default: %(default)s)",
    )
    parser.add_argument(
        "--binder",
        choices=("kubedrf", "kube-scheduler"),
        default=defaults.binder,
        help="who binds task Pods: the master, after checking each claim against its offer"
        " (default: %(default)s), or kube-scheduler with its own filters",
    )
    parser.add_argument(
        "--workloads",
        choices=("on", "off"),
        default="on" if defaults.workloads else "off",
        help="on: run the built-in framework, whose tasks are Pods of any workload gated with"
        " kubedrf.io/offer (default: %(default)s)",
    )
    parser.add_argument(
        "--webhook-port",
        type=int,
        default=defaults.webhook_port,
        metavar="PORT",
        help="TCP port of the admission webhook that adds the gate kubedrf.io/offer to Pods"
        " created in namespaces labelled kubedrf.io/role; 0: none (default: %(default)s)",
    )
    parser.add_argument(
        "--webhook-cert-file",
        metavar="PATH",
        help="the webhook's TLS certificate (PEM); `kubedrf dev webhook` makes one locally",
    )
    parser.add_argument(
        "--webhook-key-file", metavar="PATH", help="the webhook's TLS private key (PEM)"
    )
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG level")
    parser.set_defaults(func=run)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors that parse fields rather than text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def log_handler(log_format: str) -> logging.Handler:
    """A stderr handler whose every line carries its time, in UTC."""
    handler = logging.StreamHandler()
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    if log_format == "text":
        formatter.default_msec_format = "%s.%03dZ"
        formatter.default_time_format = "%Y-%m-%dT%H:%M:%S"
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    return handler


def run(args: argparse.Namespace) -> int:
    try:
        settings = MasterSettings(
            allocation_interval=args.allocation_interval,
            offer_timeout=args.offer_timeout,
            offer_retention=args.offer_retention,
            batch_window=args.batch_window,
            mode=args.mode,
            managed_label=args.managed_label,
            managed_taint=args.managed_taint,
            fairness_excluded=tuple(filter(None, args.fairness_excluded.split(","))),
            metrics_port=args.metrics_port,
            health_port=args.health_port,
            leader_election_namespace=args.leader_election_namespace,
            leader_election_name=args.leader_election_name,
            revocation=args.revocation == "on",
            grace_period=args.grace_period,
            min_runtime=args.min_runtime,
            max_revocations_per_cycle=args.max_revocations_per_cycle,
            lend_guarantees=args.lend_guarantees == "on",
            binder=args.binder,
            workloads=args.workloads == "on",
            webhook_port=args.webhook_port,
            webhook_cert_file=args.webhook_cert_file,
            webhook_key_file=args.webhook_key_file,
        )
    except ValidationError as error:
        message = validation_message(error, "flags")
        message = re.sub(r"\bflags\.(\w+)", lambda m: "--" + m[1].replace("_", "-"), message)
        # A rule across settings names them bare (``webhook_port``): flags here, too.
        fields = "|".join(name for name in MasterSettings.model_fields if "_" in name)
        message = re.sub(rf"\b({fields})\b", lambda m: "--" + m[1].replace("_", "-"), message)
        message = message.replace("flags: Value error, ", "")
        print(f"error: {message} (see {SETTINGS_DOC})", file=sys.stderr)
        return 2
    # Imported here: loading kopf and the handlers is only needed to run the master.
    import kopf  # noqa: PLC0415

    import kubedrf.master.handlers  # noqa: PLC0415

    if settings.webhook_port:
        # Only then: kopf refuses to start with an admission handler and no server.
        import kubedrf.master.admission  # noqa: F401, PLC0415

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        handlers=[log_handler(args.log_format)],
        force=True,
    )
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    # Standalone: kopf's peering would pause the watches of standbys, whose caches must stay
    # warm; the Lease decides who allocates (see kubedrf.master.leader).
    kopf.run(
        clusterwide=True,
        standalone=True,
        memo=kopf.Memo(settings=settings),
        liveness_endpoint=liveness,
    )
    return 0
