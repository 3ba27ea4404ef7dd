"""Saved-for-backward bytes, measured: square blocks keep one packed copy, MX keeps two."""

import contextlib
import dataclasses

import pytest
import torch
from torch import nn

from tqpinn.formats import MX_INT8, SMX_INT8
from tqpinn.nn import MLP, DifferenceStreams, set_quant
from tqpinn.nn.precision import apply_quant
from tqpinn.quant import PRESETS, stored_activations
from tqpinn.quant.memory import OUTSIDE, saved_bytes

N, D, H, OUT = 64, 8, 16, 4  # rows, input, hidden, output widths


def _step(net: nn.Module, x: torch.Tensor):
    def step():
        net(x).square().sum().backward()

    return step


def _measure(preset: str):
    torch.manual_seed(0)
    net = apply_quant(MLP([D, H, OUT]), PRESETS[preset])
    x = torch.randn(N, D)
    return saved_bytes(_step(net, x), net)


def test_fp32_counts_each_storage_once():
    m = _measure("fp32")
    # layer 0 keeps its input x (N, D); tanh keeps its output h (N, H), the same storage that
    # layer 1 keeps as its input; layer 1's weight is a parameter reference (not counted);
    # square() outside the model keeps the output (N, OUT).
    assert m.per_module == {"layers.0": 4 * N * D, "activation": 4 * N * H, OUTSIDE: 4 * N * OUT}
    assert m.parameter_bytes == 4 * OUT * H
    assert m.packed_bytes == 0


def test_smx_keeps_one_packed_copy_per_activation():
    m = _measure("smx_paper")
    x_bits = SMX_INT8.packed_bits((N, D))
    h_bits = SMX_INT8.packed_bits((N, H))  # tanh's and layer 1's copy: the same object
    w1_bits = SMX_INT8.packed_bits((H, OUT))  # layer 1's weight, for its input gradient
    assert m.per_module == {
        "layers.0": x_bits / 8,
        "activation": h_bits / 8,
        "layers.1": w1_bits / 8,
        OUTSIDE: 4 * N * OUT,
    }
    assert h_bits / (N * H) == 8.5  # INT8 elements plus one 8-bit exponent per 16


def test_mx_keeps_a_second_transposed_copy():
    m = _measure("mx_int8")
    x_t = MX_INT8.packed_bits((D, N))  # layer 0 input, blocked along rows for dW = dYᵀX
    h = MX_INT8.packed_bits((N, H))  # tanh's copy (the forward operand of layer 1)
    h_t = MX_INT8.packed_bits((H, N))  # layer 1's copy for its weight gradient
    w1_t = MX_INT8.packed_bits((H, OUT))  # layer 1's weight blocked along the output axis
    assert m.per_module == {
        "layers.0": x_t / 8,
        "activation": h / 8,
        "layers.1": (h_t + w1_t) / 8,
        OUTSIDE: 4 * N * OUT,
    }


@pytest.mark.parametrize("preset", ["smx_paper", "mx_int8"])
def test_shared_storage_does_not_change_what_the_gemm_reads(preset):
    """Layer 1's weight gradient reads only its saved input Q(h). Whether tanh stored h first
    (one shared packed object) or not (store_activations off), the values are the same, so
    the gradients are bit-identical."""
    torch.manual_seed(0)
    spec = PRESETS[preset]
    x = torch.randn(N, D)
    shared = apply_quant(MLP([D, H, OUT]), spec)
    alone = apply_quant(MLP([D, H, OUT]), dataclasses.replace(spec, store_activations=False))
    alone.load_state_dict(shared.state_dict())
    for net in (shared, alone):
        net(x).square().sum().backward()
    assert torch.equal(shared.layers[1].weight.grad, alone.layers[1].weight.grad)


def test_streams_path_is_attributed_to_the_modules():
    """DiffQuant calls the network on a stream bundle; module hooks attribute each layer's
    saves to it as for tensor calls."""
    from tqpinn.derivatives import GRAD, LAP, Stein

    torch.manual_seed(0)
    net = apply_quant(MLP([D, H, H, 1]), PRESETS["fp32"])
    x = torch.rand(N, D)
    est = Stein(sigma=0.1, pairs=3, diffquant="full")

    def step():
        f = est.fields(net, x, frozenset({GRAD, LAP}), D, torch.Generator().manual_seed(1))
        (f.grad.square().sum() + f.lap.square().sum()).backward()

    m = saved_bytes(step, net)
    # Per layer: its GEMM keeps the odd and even input streams (N·K rows each) and the centre;
    # the activation differences keep their inputs.
    assert m.per_module["layers.0"] >= 4 * 2 * N * 3 * D
    assert m.per_module["layers.1"] >= 4 * 2 * N * 3 * H
    assert m.per_module["activation"] >= 4 * 2 * N * 3 * H
    assert m.per_module.get(OUTSIDE, 0) < 4 * N * 3 * D  # only the Stein combinations


@pytest.mark.parametrize("stream_layers", [None, 1])
def test_apply_quant_stores_the_stream_path_activations_packed(stream_layers):
    """apply_quant's hook on the model covers ``net(bundle)`` as it covers tensor calls: a
    DiffQuant forward saves, module by module, exactly what it saves inside an explicit
    stored_activations context around a network with GEMM specs only; without that storage the
    activation's saves are FP32 and larger."""
    spec = PRESETS["smx_paper"]
    x = torch.rand(N, D)
    delta = 0.01 * torch.randn(N, 3, D)
    options = {} if stream_layers is None else {"stream_layers": stream_layers}

    def measure(hooked: bool, stored: bool):
        torch.manual_seed(0)
        net = MLP([D, H, H, 1])
        if hooked:
            apply_quant(net, spec)
        else:
            set_quant(net, spec)

        def step():
            storage = stored_activations(spec.fwd_input, spec.generator)
            with storage if stored else contextlib.nullcontext():
                s = net(DifferenceStreams.from_input(x, delta), **options)
            (s.odd.square().sum() + s.even.square().sum()).backward()

        return saved_bytes(step, net)

    hooked, explicit, unstored = measure(True, False), measure(False, True), measure(False, False)
    assert hooked.as_dict() == explicit.as_dict()
    assert hooked.packed_bytes > unstored.packed_bytes
    assert hooked.per_module["activation"] < unstored.per_module["activation"]
