"""Locate or build the pinned control-plane binaries, cached by version.

No Docker engine and no prebuilt downloads are available, so every binary is compiled with
``go build`` from modules fetched through the Go module proxy, each group from a scratch Go
module (a ``require`` of the released module plus the ``replace`` lines its own go.mod would
need). Results are cached under ``${XDG_CACHE_HOME:-~/.cache}/kubedrf/bin/<name>-<version>/``;
a binary already in ``$KUBEBUILDER_ASSETS`` or on ``PATH`` is used instead when its
``--version`` matches the pin. A warm cache makes provisioning a matter of seconds; a cold
build of Kubernetes takes many minutes, so progress is printed to stderr meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from kubedrf.devcluster import versions

#: Receives one human-readable progress line at a time.
Progress = Callable[[str], None]

#: Seconds between two progress lines while ``go build`` runs.
PROGRESS_INTERVAL = 20.0

#: A fixed build date keeps the link step reproducible and cacheable.
BUILD_DATE = "1970-01-01T00:00:00Z"


class ProvisionError(RuntimeError):
    """A binary could not be located or built; the message says what to do about it."""


@dataclass(frozen=True, slots=True)
class Recipe:
    """How one group of binaries is built from a released Go module."""

    name: str
    version: str
    module: str
    packages: tuple[str, ...]
    binaries: tuple[str, ...]
    #: ``-X`` assignments, so the binaries report the release they were built from.
    ldflags: tuple[str, ...] = ()
    #: Source of a scratch ``main`` package, for modules that do not ship one we can import.
    main_go: str | None = None
    #: Replace the ``./staging`` modules of ``k8s.io/kubernetes`` by their published versions.
    replace_staging: bool = False
    #: The version the binaries print, when the module's tag differs from the release's.
    release: str | None = None
    #: Go build tags (they change the binary, so they are part of its cache key).
    tags: tuple[str, ...] = ()

    @property
    def dirname(self) -> str:
        suffix = "".join(f"+{tag}" for tag in self.tags)
        return f"{self.name}-{self.version}{suffix}"


def _kubernetes_ldflags(version: str) -> tuple[str, ...]:
    major, minor, _ = version.removeprefix("v").split(".")
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": BUILD_DATE,
    }
    return tuple(
        f"{package}.{key}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in values.items()
    )


def _helm_ldflags(version: str, kubernetes: str) -> tuple[str, ...]:
    # Helm's offline capabilities (``helm template``, lint) default to this Kubernetes version.
    major, minor, _ = kubernetes.removeprefix("v").split(".")
    flags = [
        f"helm.sh/helm/v3/internal/version.version={version}",
        "helm.sh/helm/v3/internal/version.metadata=",
        "helm.sh/helm/v3/internal/version.gitTreeState=clean",
    ]
    for package in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        flags += [f"{package}.k8sVersionMajor={major}", f"{package}.k8sVersionMinor={minor}"]
    return tuple(flags)


ETCD_MAIN = """\
// Scratch main for etcd: the release's own main lives in the go.etcd.io/etcd/v3 root module,
// whose replace directives make it unbuildable as a dependency; the server module is not.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""

RECIPES: tuple[Recipe, ...] = (
    Recipe(
        name="kubernetes",
        version=versions.KUBERNETES,
        module="k8s.io/kubernetes",
        packages=tuple(
            f"k8s.io/kubernetes/cmd/{cmd}"
            for cmd in ("kube-apiserver", "kube-scheduler", "kube-controller-manager", "kubectl")
        ),
        binaries=("kube-apiserver", "kube-scheduler", "kube-controller-manager", "kubectl"),
        ldflags=_kubernetes_ldflags(versions.KUBERNETES),
        replace_staging=True,
    ),
    Recipe(
        name="etcd",
        version=versions.ETCD,
        module="go.etcd.io/etcd/server/v3",
        packages=(".",),
        binaries=("etcd",),
        main_go=ETCD_MAIN,
    ),
    Recipe(
        name="kwok",
        version=versions.KWOK,
        module="sigs.k8s.io/kwok",
        packages=("sigs.k8s.io/kwok/cmd/kwok", "sigs.k8s.io/kwok/cmd/kwokctl"),
        binaries=("kwok", "kwokctl"),
        ldflags=(
            f"sigs.k8s.io/kwok/pkg/consts.Version={versions.KWOK}",
            f"sigs.k8s.io/kwok/pkg/consts.KubeVersion={versions.KUBERNETES.removeprefix('v')}",
        ),
    ),
    Recipe(
        name="helm",
        version=versions.HELM,
        module="helm.sh/helm/v3",
        packages=("helm.sh/helm/v3/cmd/helm",),
        binaries=("helm",),
        ldflags=_helm_ldflags(versions.HELM, versions.KUBERNETES),
    ),
    Recipe(
        name="kubeconform",
        version=versions.KUBECONFORM,
        module="github.com/yannh/kubeconform",
        packages=("github.com/yannh/kubeconform/cmd/kubeconform",),
        binaries=("kubeconform",),
        ldflags=(f"main.version={versions.KUBECONFORM}",),
    ),
)

#: Binaries the control plane does not need, built by ``kubedrf dev provision`` and on demand.
PROMETHEUS = Recipe(
    name="prometheus",
    version=versions.PROMETHEUS,
    module="github.com/prometheus/prometheus",
    packages=("github.com/prometheus/prometheus/cmd/prometheus",),
    binaries=("prometheus",),
    ldflags=(
        f"github.com/prometheus/common/version.Version={versions.prometheus_release()}",
        "github.com/prometheus/common/version.Branch=HEAD",
        f"github.com/prometheus/common/version.BuildDate={BUILD_DATE}",
    ),
    release=versions.prometheus_release(),
    # The tests scrape static targets only: without the bundled service discoveries (cloud
    # SDKs, Kubernetes client...) the cold build is several times shorter.
    tags=("remove_all_sd",),
)
ADDONS: tuple[Recipe, ...] = (PROMETHEUS,)

#: A real node for ``make test-kind``: the kubelet and kube-proxy of the same pinned Kubernetes
#: build, kept apart from ``RECIPES`` so that ``make test`` never waits for their compilation.
#: Most of their packages are the control plane's too, so a warm Go build cache shortens this.
KUBE_NODE = Recipe(
    name="kube-node",
    version=versions.KUBERNETES,
    module="k8s.io/kubernetes",
    packages=("k8s.io/kubernetes/cmd/kubelet", "k8s.io/kubernetes/cmd/kube-proxy"),
    binaries=("kubelet", "kube-proxy"),
    ldflags=_kubernetes_ldflags(versions.KUBERNETES),
    replace_staging=True,
)

#: Arguments that make each binary print its version.
VERSION_ARGS: Mapping[str, tuple[str, ...]] = {
    "kubectl": ("version", "--client"),
    "helm": ("version", "--short"),
    "kubeconform": ("-v",),
}


def cache_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/kubedrf``: binaries, build logs and dev-cluster state."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubedrf"


def bin_dir() -> Path:
    return cache_dir() / "bin"


def log(line: str) -> None:
    """The default progress sink: one line on stderr."""
    print(line, file=sys.stderr, flush=True)


def reports_version(path: Path, binary: str, version: str) -> bool:
    """Whether ``path --version`` (or the binary's equivalent) reports ``version``."""
    args = VERSION_ARGS.get(binary, ("--version",))
    try:
        result = subprocess.run(
            [str(path), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    bare = re.escape(version.removeprefix("v"))
    return re.search(rf"(?<![\w.])v?{bare}(?![\w.-])", result.stdout + result.stderr) is not None


def _candidates(binary: str) -> Iterator[Path]:
    """Binaries provided by the environment, in order of preference."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        yield Path(assets) / binary
    on_path = shutil.which(binary)
    if on_path:
        yield Path(on_path)


def locate(recipe: Recipe) -> dict[str, Path] | None:
    """The recipe's binaries from the environment or the cache; ``None`` if any is missing.

    A binary in ``$KUBEBUILDER_ASSETS`` or on ``PATH`` wins when it reports the pinned version;
    the cache is trusted by its version-keyed directory name, which keeps a warm run fast.
    """
    cached = bin_dir() / recipe.dirname
    found: dict[str, Path] = {}
    for binary in recipe.binaries:
        provided = (
            candidate
            for candidate in _candidates(binary)
            if candidate.is_file()
            and candidate.resolve().parent != cached.resolve()
            and reports_version(candidate, binary, recipe.release or recipe.version)
        )
        path = next(provided, cached / binary)
        if not path.is_file():
            return None
        found[binary] = path
    return found


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ProvisionError(
            "`go` is not on PATH: the control-plane binaries are built from source with Go "
            "(>= 1.26); install it, or point KUBEBUILDER_ASSETS at prebuilt binaries"
        )
    return go


def _go_env() -> dict[str, str]:
    # -mod=mod lets the scratch module resolve the released module's requirements itself;
    # CGO is off as in Kubernetes' own release builds (static binaries, no C toolchain).
    goflags = f"{os.environ.get('GOFLAGS', '')} -mod=mod".strip()
    return {**os.environ, "GOFLAGS": goflags, "CGO_ENABLED": "0", "GOWORK": "off"}


def _run(cmd: list[str], cwd: Path, env: Mapping[str, str]) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip())[-4000:]
        raise ProvisionError(
            f"command failed (exit {result.returncode}) in {cwd}:\n  {' '.join(cmd)}\n{output}"
        )
    return result.stdout


def _module_gomod(module: str, version: str, workdir: Path, env: Mapping[str, str]) -> str:
    """The released go.mod of ``module@version``, fetched through the module proxy."""
    out = _run([_go(), "mod", "download", "-json", f"{module}@{version}"], workdir, env)
    info = json.loads(out)
    if info.get("Error"):
        raise ProvisionError(f"cannot download {module}@{version}: {info['Error']}")
    return Path(info["GoMod"]).read_text()


def _go_directive(gomod: str) -> str:
    match = re.search(r"^go\s+(\S+)", gomod, re.MULTILINE)
    return match.group(1) if match else "1.22"


def _godebug_directives(gomod: str) -> list[str]:
    """The release's ``godebug`` lines: they set runtime defaults only the main module can."""
    return re.findall(r"^godebug\s+(?:\([^)]*\)|.*)$", gomod, re.MULTILINE)


def staging_modules(gomod: str) -> list[str]:
    """Modules that ``k8s.io/kubernetes``'s go.mod replaces with its ``./staging`` copies."""
    return re.findall(r"^\s*(?:replace\s+)?(\S+)\s+=>\s+\./staging/", gomod, re.MULTILINE)


def scratch_gomod(recipe: Recipe, released_gomod: str) -> str:
    """A go.mod that builds the recipe's packages at its pinned version."""
    lines = [
        f"module kubedrf.local/build/{recipe.name}",
        "",
        f"go {_go_directive(released_gomod)}",
        "",
        *_godebug_directives(released_gomod),
        "",
        f"require {recipe.module} {recipe.version}",
    ]
    if recipe.replace_staging:
        staging = versions.staging_version(recipe.version)
        lines += ["", "replace ("]
        lines += [f"\t{module} => {module} {staging}" for module in staging_modules(released_gomod)]
        lines += [")"]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """One build at a time per cache, so concurrent callers reuse instead of racing."""
    bin_dir().mkdir(parents=True, exist_ok=True)
    with (bin_dir() / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Heartbeat:
    """Prints ``status`` with the elapsed time every ``PROGRESS_INTERVAL`` seconds."""

    def __init__(self, label: str, progress: Progress) -> None:
        self.label = label
        self.status = "resolving and downloading modules"
        self._progress = progress
        self._started = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._done.wait(PROGRESS_INTERVAL):
            self._progress(f"  {self.label}: {self.status}, {self.elapsed()}")

    def elapsed(self) -> str:
        seconds = int(time.monotonic() - self._started)
        return f"{seconds // 60}m{seconds % 60:02d}s"

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()


def _count_packages(recipe: Recipe, workdir: Path, env: Mapping[str, str]) -> int:
    try:
        out = _run([_go(), "list", "-deps", *recipe.packages], workdir, env)
    except ProvisionError:
        return 0
    return len(out.split())


def _go_build(recipe: Recipe, workdir: Path, out: Path, log_path: Path, beat: _Heartbeat) -> None:
    """Run ``go build -v``, counting the packages it compiles into the heartbeat's status."""
    env = _go_env()
    total = _count_packages(recipe, workdir, env)
    of_total = f"/~{total}" if total else ""
    ldflags = "-s -w " + " ".join(f"-X '{flag}'" for flag in recipe.ldflags)
    tags = ["-tags", ",".join(recipe.tags)] if recipe.tags else []
    cmd = [_go(), "build", "-v", *tags, "-ldflags", ldflags, "-o", f"{out}/", *recipe.packages]
    compiled = 0
    beat.status = f"compiling, {compiled}{of_total} packages"
    tail: deque[str] = deque(maxlen=40)
    with log_path.open("w") as log_file:
        log_file.write(f"$ cd {workdir} && {' '.join(cmd)}\n")
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log_file.write(line)
            tail.append(line.rstrip())
            # ``-v`` prints each package's import path as it is compiled.
            if not line.startswith(("go: ", "#")) and " " not in line.strip():
                compiled += 1
                beat.status = f"compiling, {compiled}{of_total} packages"
        code = proc.wait()
    if code != 0:
        errors = "\n".join(line for line in tail if not line.startswith("go: downloading"))
        raise ProvisionError(
            f"building {recipe.dirname} failed (exit {code}); full log: {log_path}\n"
            f"  cd {workdir} && {' '.join(cmd)}\n{errors}"
        )


def build(recipe: Recipe, progress: Progress = log) -> dict[str, Path]:
    """Build the recipe's binaries into the cache (atomically) and return their paths."""
    _go()  # fail before announcing a build that cannot start
    with _lock():
        dest = bin_dir() / recipe.dirname
        if all((dest / binary).is_file() for binary in recipe.binaries):
            return {binary: dest / binary for binary in recipe.binaries}
        logs = cache_dir() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{recipe.dirname}.log"
        progress(f"building {recipe.dirname} from the Go module proxy (log: {log_path})")
        with (
            _Heartbeat(recipe.dirname, progress) as beat,
            tempfile.TemporaryDirectory(prefix=f".build-{recipe.name}-", dir=bin_dir()) as tmp,
        ):
            workdir = Path(tmp) / "src"
            out = Path(tmp) / recipe.dirname
            workdir.mkdir()
            out.mkdir()
            released = _module_gomod(recipe.module, recipe.version, workdir, _go_env())
            (workdir / "go.mod").write_text(scratch_gomod(recipe, released))
            if recipe.main_go is not None:
                (workdir / "main.go").write_text(recipe.main_go)
            # A scratch main builds to its module's last element, which is the binary's name.
            _go_build(recipe, workdir, out, log_path, beat)
            missing = [binary for binary in recipe.binaries if not (out / binary).is_file()]
            if missing:
                raise ProvisionError(f"{recipe.dirname}: go build did not produce {missing}")
            if dest.exists():
                shutil.rmtree(dest)
            out.rename(dest)
            progress(f"built {recipe.dirname} in {beat.elapsed()}")
        return {binary: dest / binary for binary in recipe.binaries}


def ensure(recipe: Recipe, progress: Progress = log) -> dict[str, Path]:
    """The recipe's binaries, located if possible, built otherwise."""
    return locate(recipe) or build(recipe, progress)


def ensure_all(progress: Progress = log) -> dict[str, Path]:
    """Every binary by name: etcd, kube-*, kubectl, kwok, kwokctl, helm, kubeconform."""
    paths: dict[str, Path] = {}
    for recipe in RECIPES:
        paths.update(ensure(recipe, progress))
    return paths
