"""Overcommit (SPEC.md): each rule, the floors, the PROD refusal, and the variables they produce."""

from __future__ import annotations

import pytest

from diceyml import Resources
from scheduler.base import ExecutorError, Overcommit
from scheduler.resources import (
    OvercommitRefused,
    allocate,
    allocate_resources,
    check_overcommit,
    cpu_quantity,
)


def test_without_max_request_is_value_over_ratio_and_limit_is_value():
    a = allocate(2, 1024, None, None, Overcommit(cpu_ratio=4, mem_ratio=2), "DEV")
    assert (a.cpu_request, a.cpu_limit, a.mem_request, a.mem_limit) == (0.5, 2, 512, 1024)


def test_with_max_request_is_value_and_limit_is_max_no_ratio():
    a = allocate(1, 512, 3, 2048, Overcommit(cpu_ratio=4, mem_ratio=2), "DEV")
    assert (a.cpu_request, a.cpu_limit, a.mem_request, a.mem_limit) == (1, 3, 512, 2048)


def test_cpu_and_memory_rules_are_independent():
    a = allocate(1, 512, 2, None, Overcommit(cpu_ratio=4, mem_ratio=2), "DEV")
    assert (a.cpu_request, a.cpu_limit, a.mem_request, a.mem_limit) == (1, 2, 256, 512)


def test_floors():
    a = allocate(0.2, 16, None, None, Overcommit(cpu_ratio=10, mem_ratio=4), "DEV")
    assert a.cpu_request == 0.1 and a.mem_request == 10
    # A limit never ends below its request.
    b = allocate(0.01, 5, None, None, Overcommit(), "DEV")
    assert (b.cpu_request, b.cpu_limit, b.mem_request, b.mem_limit) == (0.1, 0.1, 10, 10)


def test_ratio_of_one_is_no_overcommit():
    a = allocate(1.5, 300, None, None, Overcommit(), "PROD")
    assert (a.cpu_request, a.cpu_limit, a.mem_request, a.mem_limit) == (1.5, 1.5, 300, 300)


def test_prod_memory_overcommit_is_refused_unless_allowed():
    with pytest.raises(OvercommitRefused, match="PROD"):
        allocate(1, 512, None, None, Overcommit(mem_ratio=2), "PROD")
    with pytest.raises(OvercommitRefused):
        check_overcommit("prod", Overcommit(mem_ratio=1.01))
    a = allocate(1, 512, None, None, Overcommit(mem_ratio=2, allow_prod_mem_overcommit=True), "PROD")
    assert a.mem_request == 256


def test_prod_cpu_overcommit_is_fine():
    a = allocate(1, 512, None, None, Overcommit(cpu_ratio=2), "PROD")
    assert a.cpu_request == 0.5


@pytest.mark.parametrize("workspace", ["DEV", "TEST", "STAGING"])
def test_memory_overcommit_outside_prod(workspace):
    assert allocate(1, 512, None, None, Overcommit(mem_ratio=2), workspace).mem_request == 256


def test_ratios_below_one_are_errors():
    with pytest.raises(ExecutorError, match=">= 1"):
        check_overcommit("DEV", Overcommit(cpu_ratio=0.5))


def test_variables_and_quantities():
    a = allocate(1, 1024, None, None, Overcommit(cpu_ratio=3, mem_ratio=3), "DEV")
    assert a.envs() == {
        "DICE_CPU_REQUEST": "0.333",
        "DICE_CPU_LIMIT": "1",
        "DICE_MEM_REQUEST": "341",
        "DICE_MEM_LIMIT": "1024",
    }
    assert a.kubernetes() == {
        "requests": {"cpu": "333m", "memory": "341Mi"},
        "limits": {"cpu": "1000m", "memory": "1024Mi"},
    }
    assert cpu_quantity(0.0001) == "1m"


def test_allocate_resources_from_model_defaults():
    a = allocate_resources(Resources(), Overcommit(), "DEV")
    assert (a.cpu_request, a.mem_request) == (0.1, 128)
