"""Container images built on this machine, for the real node of ``make test-kind``.

No image registry is reachable, so nothing is pulled: a Debian root file system is made with
``debootstrap`` from Debian's packages and turned into an image with ``docker import``; the
kubedrf image is built from the project's Dockerfile on that base (its ``BASE`` argument), and
the sandbox ("pause") image is a two-line shell loop on the same base. Each image is tagged by
a digest of what it is made from, and the base's root file system is kept as a tarball under
``${XDG_CACHE_HOME:-~/.cache}/kubedrf/images/``, so a warm run builds nothing but the kubedrf
image, whose layers Docker caches itself.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kubedrf.devcluster import provision, versions

#: Where ``dockerd`` is started when no Docker engine answers, and where it logs.
DOCKER_SOCKET: Final = Path("/var/run/docker.sock")

#: The host's TLS roots (Debian's path), copied into the base image.
HOST_CA_BUNDLE: Final = Path("/etc/ssl/certs/ca-certificates.crt")

#: The sandbox image's PID 1: waits, and exits at once on TERM (a bare ``sleep`` would not).
PAUSE_SCRIPT: Final = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"


class ImageError(RuntimeError):
    """An image could not be built, or the container engine could not be reached."""


@dataclass(frozen=True, slots=True)
class Images:
    """Tags of the images a real node needs, all present in the local Docker engine."""

    base: str
    pause: str
    kubedrf: str

    @property
    def all(self) -> tuple[str, ...]:
        return (self.base, self.pause, self.kubedrf)


def images_dir() -> Path:
    return provision.cache_dir() / "images"


def base_key() -> str:
    """What the base is made of, hashed: a change of suite or package list rebuilds it."""
    recipe = "\n".join((versions.DEBIAN_SUITE, *versions.DEBIAN_BASE_PACKAGES, PAUSE_SCRIPT))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _run(cmd: Sequence[str], *, timeout: float = 1200, stdin: bytes | None = None) -> str:
    try:
        result = subprocess.run(
            list(cmd), input=stdin, capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise ImageError(f"{cmd[0]} is not installed (see the README's real-node section)") from exc
    except subprocess.TimeoutExpired as exc:
        raise ImageError(f"{' '.join(cmd)} timed out after {timeout:.0f}s") from exc
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).decode(errors="replace").strip()[-3000:]
        raise ImageError(f"{' '.join(cmd)} failed (exit {result.returncode}):\n{tail}")
    return result.stdout.decode(errors="replace")


def docker_answers() -> bool:
    try:
        _run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=20)
    except ImageError:
        return False
    return True


def ensure_docker(progress: provision.Progress = provision.log, timeout: float = 60) -> None:
    """Use the running Docker engine, or start ``dockerd`` in the background (logging to the
    cache) as a developer would by hand: the engine then outlives this process, like one
    started by an init system, and later runs reuse it."""
    if docker_answers():
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise ImageError("no Docker engine answers and dockerd is not installed (docker.io)")
    log = provision.cache_dir() / "logs" / "dockerd.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    progress(f"starting dockerd (log: {log})")
    with log.open("ab") as sink:
        subprocess.Popen(
            [dockerd, f"--host=unix://{DOCKER_SOCKET}"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while not docker_answers():
        if time.monotonic() > deadline:
            raise ImageError(f"dockerd did not answer within {timeout:.0f}s; see {log}")
        time.sleep(1)


def container_runs(tag: str) -> bool:
    """Whether a container of ``tag`` really starts and exits here (an engine that answers
    may still be unable to: no cgroups, no overlay file system, a runtime refused)."""
    try:
        _run(["docker", "run", "--rm", "--network=none", tag, "true"], timeout=120)
    except ImageError:
        return False
    return True


def image_exists(tag: str) -> bool:
    try:
        _run(["docker", "image", "inspect", tag], timeout=30)
    except ImageError:
        return False
    return True


def _debootstrap(rootfs_tar: Path, progress: provision.Progress) -> None:
    """Make the base's root file system with debootstrap and pack it, atomically."""
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed: apt-get install debootstrap")
    rootfs_tar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".debootstrap-", dir=rootfs_tar.parent) as tmp:
        root = Path(tmp) / "rootfs"
        progress(f"debootstrap {versions.DEBIAN_SUITE} (minbase) into {root}")
        include = ",".join(versions.DEBIAN_BASE_PACKAGES)
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={include}",
                versions.DEBIAN_SUITE,
                str(root),
                versions.DEBIAN_MIRROR,
            ],
            timeout=1800,
        )
        # The official Python images have `python`, and pip may install into the system
        # site-packages there; Debian's marker file (PEP 668) would refuse the Dockerfile's pip.
        (root / "usr/bin/python").symlink_to("python3")
        for marker in (root / "usr/lib").glob("python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        partial = Path(tmp) / "rootfs.tar"
        _run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], timeout=600)
        partial.rename(rootfs_tar)


def ensure_base(progress: provision.Progress = provision.log) -> str:
    """The Debian base image: the cached root file system (made if missing), imported, with
    this machine's TLS roots on top, so that pip in the Dockerfile trusts what the host's
    pip trusts (a proxy's own authority included)."""
    key = base_key()
    trust = hashlib.sha256(HOST_CA_BUNDLE.read_bytes()).hexdigest()[:12]
    tag = f"kubedrf.local/debian:{versions.DEBIAN_SUITE}-{key}-{trust}"
    if image_exists(tag):
        return tag
    imported = f"kubedrf.local/debian-rootfs:{versions.DEBIAN_SUITE}-{key}"
    if not image_exists(imported):
        rootfs_tar = images_dir() / f"debian-{versions.DEBIAN_SUITE}-{key}.tar"
        if not rootfs_tar.is_file():
            _debootstrap(rootfs_tar, progress)
        progress(f"docker import {rootfs_tar.name} as {imported}")
        _run(["docker", "import", "--change", 'CMD ["/bin/sh"]', str(rootfs_tar), imported])
    with tempfile.TemporaryDirectory() as context:
        shutil.copyfile(HOST_CA_BUNDLE, Path(context) / "ca-certificates.crt")
        dockerfile = f"FROM {imported}\nCOPY ca-certificates.crt {HOST_CA_BUNDLE}\n"
        _build(tag, Path(context), dockerfile, {})
    return tag


def _build(tag: str, context: Path, dockerfile: str | None, build_args: dict[str, str]) -> None:
    args = [arg for key, value in build_args.items() for arg in ("--build-arg", f"{key}={value}")]
    cmd = ["docker", "build", "--network=host", "-t", tag, *args]
    if dockerfile is None:
        _run([*cmd, str(context)], timeout=1800)
    else:
        _run([*cmd, "-f", "-", str(context)], stdin=dockerfile.encode(), timeout=600)


def ensure_pause(base: str) -> str:
    """The sandbox image: PID 1 of every Pod, which only waits and exits on TERM."""
    tag = f"kubedrf.local/pause:{base_key()}"
    if not image_exists(tag):
        with tempfile.TemporaryDirectory() as context:
            script = PAUSE_SCRIPT.replace('"', '\\"')
            dockerfile = f'FROM {base}\nENTRYPOINT ["/bin/sh", "-c", "{script}"]\n'
            _build(tag, Path(context), dockerfile, {})
    return tag


def build_kubedrf(base: str, root: Path, tag: str, progress: provision.Progress) -> str:
    """The project's own image from its Dockerfile, on the Debian base instead of the
    official Python image. Docker's layer cache keeps a rebuild of unchanged sources short;
    its ``pip`` steps reach the Python package index over the host's network."""
    progress(f"docker build {tag} from {root / 'Dockerfile'} on {base}")
    _build(tag, root, None, {"BASE": base})
    return tag


def ensure_all(
    root: Path,
    kubedrf_tag: str = "kubedrf.local/kubedrf:dev",
    progress: provision.Progress = provision.log,
) -> Images:
    """Docker running, and every image a real node needs built in it."""
    ensure_docker(progress)
    base = ensure_base(progress)
    return Images(
        base=base,
        pause=ensure_pause(base),
        kubedrf=build_kubedrf(base, root, kubedrf_tag, progress),
    )


def save(tags: Sequence[str], dest: Path) -> Path:
    """One ``docker save`` archive of the tags, which ``ctr images import`` reads."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    _run(["docker", "save", "-o", str(dest), *tags], timeout=600)
    return dest
