"""The tf32 setting: TF32 tensor cores only around quantized products whose operands TF32 holds.

On the CPU the setting must change nothing (PyTorch's CPU matmul has no TF32 mode here); the
switch itself is a flag that is set and restored exactly. On CUDA (skipped without a device):
products of grid values with TF32 on equal those with TF32 off up to the order of the FP32 sums,
while off-grid FP32 data differ visibly, which shows the switch took effect.
"""

import pytest
import torch

from tqpinn.errors import UserError
from tqpinn.formats import FORMATS, BlockFormat
from tqpinn.qops import gemm
from tqpinn.quant import tf32
from tqpinn.quant.config import QuantConfig
from tqpinn.train.config import config_from_dict

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_named_format_is_exact_in_tf32(name):
    assert tf32.exact_in_tf32(FORMATS[name])


def test_wider_elements_and_fp32_are_not():
    assert tf32.significant_bits(BlockFormat(12, (4, 4))) == 11
    assert not tf32.exact_in_tf32(BlockFormat(13, (4, 4)))
    assert not tf32.exact_in_tf32(None)


def test_the_switch_is_set_inside_and_restored_after_an_error():
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    with pytest.raises(RuntimeError), tf32.cuda_tf32_matmuls():
        assert matmul.fp32_precision == "tf32"
        raise RuntimeError("inside")
    assert matmul.fp32_precision == before


def test_the_config_key_reaches_the_spec():
    assert QuantConfig.model_validate({"base": "smx_paper", "tf32": True}).build().tf32
    assert not QuantConfig.model_validate("smx_paper").build().tf32
    with pytest.raises(UserError, match="tf32"):
        config_from_dict({"quant": {"base": "smx_paper", "tf32": "yes"}})


def _operands(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    x, w = torch.randn(96, 256, generator=g), torch.randn(64, 256, generator=g)
    return x.to(device), w.to(device)


def _spec(on: bool):
    return QuantConfig.model_validate({"base": "smx_paper", "tf32": on}).build()


def test_on_the_cpu_the_setting_changes_nothing():
    x, w = _operands("cpu")
    assert torch.equal(gemm(x, w, _spec(True)), gemm(x, w, _spec(False)))


@cuda
def test_on_cuda_grid_products_agree_and_off_grid_products_do_not():
    x, w = _operands("cuda")
    on, off = gemm(x, w, _spec(True)), gemm(x, w, _spec(False))
    # FP32 sums of K = 256 exact products in another order: |Δ| ≤ γ_K Σ|a_k b_k|, γ_K ≈ K·2^-24.
    bound = 256 * 2.0**-24 * (x.abs() @ w.abs().T)
    assert ((on - off).abs() <= bound).all()
    with tf32.cuda_tf32_matmuls():
        rounded = x @ w.T
    exact = x @ w.T
    assert ((rounded - exact).abs() / exact.abs().clamp_min(1e-3)).max() > 1e-4
