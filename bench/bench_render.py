"""Bench: render a generated 200-service dice.yml to Kubernetes manifests; median time (and YAML dump)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_diceyml import generated  # noqa: E402
from dice_cli.render_command import dump_manifests  # noqa: E402
from diceyml import parse_dice_yml  # noqa: E402
from scheduler.base import ClusterRef, Overcommit, RuntimeRef, ServiceGroup  # noqa: E402
from scheduler.kubernetes.addons import generate_addon_secrets  # noqa: E402
from scheduler.kubernetes.render import render_group  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--runs", type=int, default=30)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--workspace", default="PROD")
    args = parser.parse_args()
    spec = parse_dice_yml(generated(args.services), workspace=args.workspace)
    group = ServiceGroup(
        RuntimeRef("acme", "bench", "app", args.workspace, "main"),
        spec,
        release="r1",
        overcommit=Overcommit(cpu_ratio=2),
        addon_secrets=generate_addon_secrets(spec),
    )
    cluster = ClusterRef("bench", "kubernetes", wildcard_domain="apps.example.com", ingress_class="nginx")
    manifests = render_group(group, cluster)  # warm up
    renders, dumps = [], []
    for _ in range(args.runs):
        start = time.perf_counter()
        manifests = render_group(group, cluster)
        renders.append(time.perf_counter() - start)
        start = time.perf_counter()
        text = dump_manifests(manifests)
        dumps.append(time.perf_counter() - start)
    print(
        f"render {args.services} services ({len(manifests)} objects, workspace={args.workspace}): "
        f"median {statistics.median(renders) * 1000:.1f} ms, min {min(renders) * 1000:.1f} ms; "
        f"YAML dump median {statistics.median(dumps) * 1000:.1f} ms ({len(text) / 1024:.0f} KiB); {args.runs} runs"
    )


if __name__ == "__main__":
    main()
