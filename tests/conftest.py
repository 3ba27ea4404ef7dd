"""Strict numerics for every test: fixed seeds, IEEE FP32 matmuls (no TF32)."""

import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _strict_numerics():
    torch.set_float32_matmul_precision("highest")
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    yield
