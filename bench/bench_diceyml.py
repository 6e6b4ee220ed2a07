"""Bench: parse + validate a platform-sized dice.yml of our own (tests/data/diceyml/platform.yml, the
size and shape of Erda's erda.yml) and a generated 200-service dice.yml; median time and peak memory.
With --file, any other dice.yml (for example ../shared/conformance/erda/dice/erda.yml)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diceyml import parse_dice_yml  # noqa: E402

PLATFORM = ROOT / "tests" / "data" / "diceyml" / "platform.yml"


def generated(count: int = 200) -> str:
    """A dice.yml with `count` services, each with ports, envs, resources, binds, a health check."""
    out = ['version: "2.0"', "envs:", "  LOG_LEVEL: info", "services:"]
    for i in range(count):
        dep = f"\n    depends_on: [svc-{i - 1}]" if i else ""
        out.append(
            f"""  svc-{i}:
    image: registry.example.com/app/svc-{i}:1.0.{i}
    cmd: /app/bin --port 8080
    ports:
      - 8080
      - port: 9090
        protocol: HTTP
    envs: {{INDEX: {i}, DEBUG: false, RATIO: 0.5}}
    resources:
      cpu: ${{cpu:0.5}}
      max_cpu: 1
      mem: 512
      max_mem: 1024
    deployments:
      replicas: ${{replicas:2}}
      labels: {{group: g{i % 10}}}
    binds:
      - /netdata/svc-{i}:/data:rw
    health_check:
      http: {{port: 8080, path: /health, duration: 120}}{dep}"""
        )
    out += [
        "addons:",
        "  db:",
        '    plan: "mysql:professional"',
        "values:",
        "  production:",
        "    replicas: 3",
    ]
    return "\n".join(out) + "\n"


def measure(name: str, text: str, runs: int, workspace: str | None) -> None:
    parse_dice_yml(text, workspace=workspace)  # warm up (imports, caches)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        parse_dice_yml(text, workspace=workspace)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    parse_dice_yml(text, workspace=workspace)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size = len(text.encode())
    print(
        f"{name:<28} {size / 1024:7.1f} KiB  median {statistics.median(times) * 1000:7.2f} ms  "
        f"min {min(times) * 1000:7.2f} ms  peak {peak / 2**20:6.2f} MiB  ({runs} runs, workspace={workspace})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--runs", type=int, default=50)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--file", type=Path, default=PLATFORM, help="the real-world-sized file (default: %(default)s)")
    args = parser.parse_args()
    text = args.file.read_text(encoding="utf-8")
    measure(args.file.name, text, args.runs, None)
    measure(f"{args.file.name} (TEST)", text, args.runs, "TEST")
    measure(f"generated {args.services} services", generated(args.services), args.runs, None)
    measure(f"generated {args.services} (PROD)", generated(args.services), args.runs, "PROD")


if __name__ == "__main__":
    main()
