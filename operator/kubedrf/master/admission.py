"""The master serves the mutating admission webhook that adds the gate kubedrf.io/offer to
Pods created in namespaces labelled kubedrf.io/role (the registration decides which).

Import it only with the webhook on: ``kubedrf master --webhook-port`` does, and ``kopf run -m
kubedrf.master.handlers -m kubedrf.master.admission`` with ``KUBEDRF_WEBHOOK_PORT`` set. kopf
refuses to start with an admission handler and no server to serve it. Every replica serves
it, leader or not: the decision needs no cluster state, only the Pod in the request.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from kubedrf.master.handlers import settings_of
from kubedrf.workloads.webhook import WEBHOOK_ID, gates_with_offer_gate

logger = logging.getLogger(__name__)


@kopf.on.startup()
async def serve(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    master_settings = settings_of(memo)
    if not master_settings.webhook_port:
        raise kopf.PermanentError(
            "kubedrf.master.admission is loaded but the webhook has no port:"
            " set --webhook-port (KUBEDRF_WEBHOOK_PORT) or leave the module out"
        )
    # aiohttp on kopf's event loop: admission requests never block the allocation loop's
    # thread, and never wait for it either.
    settings.admission.server = kopf.WebhookServer(
        addr="0.0.0.0",
        port=master_settings.webhook_port,
        certfile=master_settings.webhook_cert_file,
        pkeyfile=master_settings.webhook_key_file,
    )
    logger.info(
        "admission webhook: https://0.0.0.0:%d/%s", master_settings.webhook_port, WEBHOOK_ID
    )


@kopf.on.mutate("", "v1", "pods", id=WEBHOOK_ID, operations=["CREATE"])
async def gate(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    gates = gates_with_offer_gate(body)
    if gates is not None:
        patch.spec["schedulingGates"] = gates
