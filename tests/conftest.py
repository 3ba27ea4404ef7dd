"""Strict numerics for every test: fixed seeds, IEEE FP32 matmuls (no TF32); the kernel builds
this CPU can run, one test each."""

import random

import numpy as np
import pytest
import torch

from tqpinn.quant import fastpath


@pytest.fixture(autouse=True)
def _strict_numerics():
    torch.set_float32_matmul_precision("highest")
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    yield


RUNNABLE_BUILDS = {isa.name for isa in fastpath.runnable_isas()}


@pytest.fixture(params=[isa.name for isa in fastpath.ISAS])
def kernel_build(request, monkeypatch):
    """Each kernel build in turn (the name is in the test id), skipped where it cannot run."""
    if request.param not in RUNNABLE_BUILDS:
        pytest.skip(f"this CPU cannot run the {request.param} build")
    monkeypatch.setenv(fastpath.ENV_ISA, request.param)
    if not fastpath.available():
        pytest.skip(f"the {request.param} build did not compile (no C compiler?)")
    return request.param
