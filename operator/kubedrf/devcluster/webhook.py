"""The admission webhook on the local control plane: the apiserver calls a master running on
this host by URL, over TLS with a self-signed certificate for 127.0.0.1 and localhost."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubedrf.devcluster.cluster import Cluster, cluster_dir
from kubedrf.workloads.webhook import WEBHOOK_ID, FailurePolicy, configuration

#: The MutatingWebhookConfiguration ``kubedrf dev webhook`` applies (one per dev cluster).
CONFIGURATION_NAME = "kubedrf-dev-webhook"
#: A dev cluster lives for days at most; a year keeps a forgotten one working.
VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True, slots=True)
class Certificate:
    cert_file: Path
    key_file: Path

    def pem(self) -> bytes:
        return self.cert_file.read_bytes()


def self_signed(directory: Path, now: datetime.datetime) -> Certificate:
    """Write a self-signed serving certificate for 127.0.0.1 and localhost into ``directory``.

    Self-signed is enough here: the certificate is its own CA bundle, given to the apiserver
    in the webhook's ``caBundle``, and it never leaves the machine."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubedrf-webhook")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    made = Certificate(directory / "tls.crt", directory / "tls.key")
    made.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    made.key_file.touch(mode=0o600)
    made.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return made


def local_configuration(
    port: int, ca_bundle: bytes, failure_policy: FailurePolicy, name: str = CONFIGURATION_NAME
) -> dict[str, object]:
    """The webhook registration that points the apiserver at ``https://127.0.0.1:PORT``."""
    client_config = {
        "url": f"https://127.0.0.1:{port}/{WEBHOOK_ID}",
        "caBundle": base64.b64encode(ca_bundle).decode(),
    }
    return configuration(name, client_config, failure_policy=failure_policy)


def register(
    dev: Cluster,
    port: int,
    failure_policy: FailurePolicy = "Fail",
    name: str = CONFIGURATION_NAME,
    now: datetime.datetime | None = None,
) -> Certificate:
    """Make the certificate (in the cluster's directory) and apply the registration; returns
    the certificate, whose files ``kubedrf master --webhook-cert-file/--webhook-key-file``
    take."""
    certificate = self_signed(
        cluster_dir(dev.name) / "webhook" / name, now or datetime.datetime.now(datetime.UTC)
    )
    body = local_configuration(port, certificate.pem(), failure_policy, name)
    dev.kubectl("apply", "-f", "-", stdin=json.dumps(body))
    return certificate


def unregister(dev: Cluster, name: str = CONFIGURATION_NAME) -> None:
    dev.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found")
