"""Bench: parse + plan generated 1,000-task pipeline.yml files; prints median times (figures, not pass/fail).

Run: .venv/bin/python bench/bench_pipeline_plan.py [--tasks 1000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelineyml import parse_pipeline_yml, plan
from speckit import load_yaml


def _action(alias: str, *, needs: list[str] | None = None, command: str = "make") -> str:
    lines = [
        "      - custom-script:",
        f"          alias: {alias}",
        "          image: registry.example.com/build:1.0",
        "          resources: {cpu: 0.5, mem: 512}",
        f'          commands: ["{command}"]',
    ]
    if needs is not None:
        lines.append(f"          needs: [{', '.join(needs)}]")
    return "\n".join(lines)


def wide(n: int) -> str:
    """One stage of n parallel actions."""
    body = "\n".join(_action(f"t{i}") for i in range(n))
    return f'version: "1.1"\nstages:\n  - stage:\n{body}\n'


def deep(n: int) -> str:
    """One stage, n actions chained through `needs` (listed last-first) and output references."""
    items = []
    for i in reversed(range(n)):
        needs = [f"t{i - 1}"] if i else []
        command = f"echo ${{{{ outputs.t{i - 1}.image }}}}" if i else "make"
        items.append(_action(f"t{i}", needs=needs, command=command))
    return 'version: "1.1"\nstages:\n  - stage:\n' + "\n".join(items) + "\n"


def layered(n: int, width: int = 100) -> str:
    """n/width stages of `width` actions: stage-by-stage, width x width edges between stages."""
    stages = []
    for s in range(n // width):
        body = "\n".join(
            _action(f"s{s}t{i}", command=f"cd ${{{{ dirs.s{s - 1}t{i} }}}}" if s else "make")
            for i in range(width)
        )
        stages.append(f"  - stage:\n{body}")
    return 'version: "1.1"\nstages:\n' + "\n".join(stages) + "\n"


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"{'shape':<24}{'tasks':>6}{'KiB':>7}{'yaml ms':>10}{'parse ms':>10}{'plan ms':>9}{'total ms':>10}")
    for name, make in (
        ("wide (1 stage)", wide),
        ("deep (needs chain)", deep),
        ("layered (100 wide)", layered),
    ):
        text = make(args.tasks)
        pipeline = parse_pipeline_yml(text)
        tasks = plan(pipeline)
        assert len(tasks) == args.tasks, (name, len(tasks))
        yaml_ms = median_ms(lambda t=text: load_yaml(t), args.repeat)
        parse_ms = median_ms(lambda t=text: parse_pipeline_yml(t), args.repeat)
        plan_ms = median_ms(lambda p=pipeline: plan(p), args.repeat)
        total_ms = median_ms(lambda t=text: plan(parse_pipeline_yml(t)), args.repeat)
        print(
            f"{name:<24}{len(tasks):>6}{len(text.encode()) / 1024:>7.0f}"
            f"{yaml_ms:>10.1f}{parse_ms:>10.1f}{plan_ms:>9.2f}{total_ms:>10.1f}"
        )
    print(f"median of {args.repeat} runs; parse includes yaml; total = parse + plan")
    return 0


if __name__ == "__main__":
    sys.exit(main())
