"""Chaos soak: the design's invariants hold while the control plane, the masters, the nodes and
the frameworks fail at random (see ``tests/chaos/harness.py`` for the faults and
``tests/chaos/checker.py`` for what is checked).

    python benchmarks/chaos.py --minutes 30 --seed 1 --json chaos.json

It starts its own local control plane (``kubedrf-chaos-<pid>``, torn down at the end) with
``--nodes`` nodes of 8 CPU / 32 GiB, two master replicas under leader election and ten
frameworks, and prints the JSON report (``minutes``, ``seed``, ``faults``, ``breaches``,
``lost``, ``stuck_offers``, ``recovery_s``, ``master_rss_mb``). The exit status is 1 when a
breach, a lost task or a stuck offer was found. ``--master-checkout DIR`` runs the masters
from another checkout (e.g. ``git worktree add /tmp/old COMMIT``) with its CRDs, while the
workload, the faults and the checker stay current: to show what an older master breaks.
``--spare leader_kill,standby_kill,clock_skew`` injects every fault but those: one master
replica then lives the whole soak, and ``master_rss_mb`` follows its memory from start to end.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos.harness import FAULTS, Run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--json", type=Path, metavar="FILE")
    parser.add_argument("--master-checkout", type=Path, metavar="DIR")
    parser.add_argument("--spare", default="", metavar="KIND,...", help="faults not injected")
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes: must be > 0")
    spare = frozenset(kind for kind in args.spare.split(",") if kind)
    if unknown := sorted(spare - set(FAULTS)):
        parser.error(f"--spare: no fault {', '.join(unknown)}; the faults are {', '.join(FAULTS)}")
    checkout = args.master_checkout
    if checkout is not None and not (checkout / "operator" / "kubedrf").is_dir():
        parser.error(
            f"--master-checkout: {checkout} is not a kubedrf checkout (no operator/kubedrf)"
        )
    report = Run(args.minutes, args.seed, args.nodes, checkout, spare=spare).execute()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    failed = report["breaches"]["count"] or report["lost"]["count"]
    return 1 if failed or report["stuck_offers"]["count"] else 0


if __name__ == "__main__":
    sys.exit(main())
