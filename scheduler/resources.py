"""Requests and limits from a service's resources and the cluster's overcommit ratios (SPEC.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from scheduler.base import ExecutorError, Overcommit

MIN_CPU_REQUEST = 0.1  # cores (100m)
MIN_MEM_REQUEST = 10  # MiB


class OvercommitRefused(ExecutorError):
    """Memory overcommit in PROD without the cluster's explicit permission."""


@dataclass(frozen=True)
class Allocation:
    cpu_request: float  # cores
    cpu_limit: float
    mem_request: int  # MiB
    mem_limit: int

    def envs(self) -> dict[str, str]:
        """The DICE_CPU_*/DICE_MEM_* variables a service sees (cores and MiB, as text)."""
        return {
            "DICE_CPU_REQUEST": _fmt_cpu(self.cpu_request),
            "DICE_CPU_LIMIT": _fmt_cpu(self.cpu_limit),
            "DICE_MEM_REQUEST": str(self.mem_request),
            "DICE_MEM_LIMIT": str(self.mem_limit),
        }

    def kubernetes(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": cpu_quantity(self.cpu_request), "memory": f"{self.mem_request}Mi"},
            "limits": {"cpu": cpu_quantity(self.cpu_limit), "memory": f"{self.mem_limit}Mi"},
        }


def _fmt_cpu(cores: float) -> str:
    return f"{cores:.3f}".rstrip("0").rstrip(".")


def cpu_quantity(cores: float) -> str:
    """Kubernetes CPU quantity in millicores (at least 1m)."""
    return f"{max(1, round(cores * 1000))}m"


def check_overcommit(workspace: str, overcommit: Overcommit) -> None:
    if overcommit.cpu_ratio < 1 or overcommit.mem_ratio < 1:
        raise ExecutorError(f"overcommit ratios must be >= 1 (cpu {overcommit.cpu_ratio}, mem {overcommit.mem_ratio})")
    if workspace.upper() == "PROD" and overcommit.mem_ratio > 1 and not overcommit.allow_prod_mem_overcommit:
        raise OvercommitRefused(
            f"memory overcommit (ratio {overcommit.mem_ratio}) is refused in PROD unless the cluster "
            "explicitly allows it"
        )


def allocate(
    cpu: float, mem: int, max_cpu: float | None, max_mem: int | None, overcommit: Overcommit, workspace: str
) -> Allocation:
    """Without max_*: request = value / ratio, limit = value. With max_*: request = value,
    limit = max (no ratio). Requests never go below 100m CPU and 10 MiB."""
    check_overcommit(workspace, overcommit)
    if max_cpu is None:
        cpu_request, cpu_limit = cpu / overcommit.cpu_ratio, cpu
    else:
        cpu_request, cpu_limit = cpu, max_cpu
    if max_mem is None:
        mem_request, mem_limit = mem / overcommit.mem_ratio, mem
    else:
        mem_request, mem_limit = mem, max_mem
    cpu_request = max(MIN_CPU_REQUEST, round(cpu_request, 3))
    mem_request = max(MIN_MEM_REQUEST, int(mem_request))
    return Allocation(
        cpu_request=cpu_request,
        cpu_limit=max(cpu_limit, cpu_request),
        mem_request=mem_request,
        mem_limit=max(int(mem_limit), mem_request),
    )


def allocate_resources(resources, overcommit: Overcommit, workspace: str) -> Allocation:
    """allocate() for a dice.yml Resources model."""
    return allocate(resources.cpu, resources.mem, resources.max_cpu, resources.max_mem, overcommit, workspace)


_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal("1e3"),
            "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18")}


def parse_quantity(text: object) -> Decimal:
    """A Kubernetes quantity ("500m", "2Gi", "1e3", "4") as a number; ValueError when it is not one."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a quantity")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a quantity") from None
    suffix = match.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        return number * (Decimal(10) ** int(suffix[1:]))
    return number * _DECIMAL[suffix]
