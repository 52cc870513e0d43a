"""``kubedrf crds``: write (or check) the CRDs and the API reference generated from the models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kubedrf.api import crdgen

#: The chart's copies are not in its crds/ directory, which Helm installs once and never
#: upgrades, but where its templates/crds.yaml reads them.
DEFAULT_DIRECTORIES = ("crds", "charts/kubedrf/files/crds")


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "crds",
        help="generate the CRDs and docs/api.md from the API models",
        description=(
            "Write the kubedrf.io CRDs into crds/ and the chart, and the API reference into"
            " docs/api.md (run from the repo root)."
        ),
    )
    parser.add_argument(
        "--dir",
        dest="directories",
        action="append",
        metavar="DIR",
        help=f"where to write them (repeatable; default: {', '.join(DEFAULT_DIRECTORIES)})",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=crdgen.REFERENCE_PATH,
        metavar="FILE",
        help="where to write the API reference (default: %(default)s)",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when the files are stale"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    directories = [Path(d) for d in args.directories or DEFAULT_DIRECTORIES]
    if args.check:
        stale = crdgen.drift(directories)
        if crdgen.reference_drift(args.reference):
            stale.append(args.reference)
        for path in stale:
            print(f"error: {path} differs from the API models; run `kubedrf crds`", file=sys.stderr)
        return 1 if stale else 0
    for path in [*crdgen.write(directories), crdgen.write_reference(args.reference)]:
        print(path)
    return 0
