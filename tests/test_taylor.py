"""Taylor streams: exact forward-mode derivatives, equal to autodiff's to float64 rounding."""

import pytest
import torch

from tqpinn.derivatives import DT, GRAD, LAP, Autodiff, Taylor, U
from tqpinn.nn import MLP, Linear
from tqpinn.nn.streams import TaylorStreams
from tqpinn.nn.tt.layer import TTLinear
from tqpinn.pdes import get_problem
from tqpinn.qops import observe_gemms
from tqpinn.train import trainer
from tqpinn.train.config import config_from_dict
from tqpinn.train.loss import solution_fields

EPS64 = torch.finfo(torch.float64).eps
WIDTH, DEPTH = 16, 3  # GEMM layers of the test networks


def dense(a: int, b: int, i: int) -> Linear:
    return Linear(a, b)


def tt_then_dense(a: int, b: int, i: int) -> Linear | TTLinear:
    return TTLinear(a, b, ranks=2, n_cores=2, plan="partial", groups=1) if i < 2 else Linear(a, b)


def network(dims: int, activation: str, factory=dense, seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    sizes = [dims, *[WIDTH] * (DEPTH - 1), 1]
    return MLP(sizes, activation=activation, linear_factory=factory).double()


def rounding_tolerance(reference: torch.Tensor) -> float:
    """Both estimators evaluate the same chain rule, in another order: every output is a sum
    of at most DEPTH·WIDTH rounded products per path (the second-order term a few times that),
    so they agree to a few times DEPTH·WIDTH·eps relative to the field's magnitude."""
    return 4 * DEPTH * WIDTH * EPS64 * max(1.0, reference.abs().max().item())


@pytest.mark.parametrize("factory", [dense, tt_then_dense], ids=["dense", "tt"])
@pytest.mark.parametrize("activation", ["tanh", "sin"])
@pytest.mark.parametrize("n_time", [0, 1])
def test_fields_equal_autodiff_to_rounding(factory, activation, n_time):
    n_space = 3
    net = network(n_space + n_time, activation, factory)
    x = torch.rand(9, n_space + n_time, dtype=torch.float64)
    needs = frozenset({U, GRAD, LAP} | ({DT} if n_time else set()))
    exact = Autodiff().fields(net, x, needs, n_space)
    taylor = Taylor().fields(net, x, needs, n_space)
    for name in needs:
        ref = getattr(exact, name)
        tol = rounding_tolerance(ref)
        torch.testing.assert_close(getattr(taylor, name), ref, rtol=0, atol=tol, msg=name)


@pytest.mark.parametrize(
    ("needs", "streams"),
    [
        ({U}, 1),  # a plain forward
        ({GRAD}, 2),  # value and the spatial first-order terms
        ({DT}, 2),  # value and the time column only
        ({U, LAP}, 3),  # plus the collapsed second-order term
        ({U, GRAD, LAP, DT}, 3),
    ],
)
def test_only_the_needed_streams_are_carried(needs, streams):
    """One forward GEMM per stream per layer, and in backward one weight-gradient GEMM per
    stream per layer (the input's streams need no gradient, so layer 0 has no dgrad); an output
    stream that no requested field reads (the value without u, the first-order terms without
    ∇u or u_t) has no backward GEMMs in the output layer."""
    net = network(4, "tanh")
    x = torch.rand(6, 4, dtype=torch.float64)
    events = []
    with observe_gemms(events.append):
        f = Taylor().fields(net, x, frozenset(needs), 3)
        sum(getattr(f, name).sum() for name in needs).backward()
    phases = [e.phase for e in events]
    assert phases.count("forward") == streams * DEPTH
    read = (U in needs) + bool(needs & {GRAD, DT}) + (LAP in needs)
    unused = streams - read
    assert phases.count("wgrad") == streams * DEPTH - unused
    assert phases.count("dgrad") == streams * (DEPTH - 1) - unused
    for name in {U, GRAD, LAP, DT} - needs:
        assert getattr(f, name) is None
    columns = 0 if needs == {U} else 3 * bool(needs & {GRAD, LAP}) + (DT in needs)
    first_layer_rows = sorted(e.m for e in events if e.phase == "forward" and e.k == 4)
    expected = [6] if needs == {U} else sorted([6, 6 * columns] + [6] * (LAP in needs))
    assert first_layer_rows == expected


@pytest.mark.parametrize("factory", [dense, tt_then_dense], ids=["dense", "tt"])
def test_parameter_gradients_pass_gradcheck(factory):
    torch.manual_seed(3)
    net = MLP([3, 5, 5, 1], activation="sin", linear_factory=factory).double()
    x = torch.rand(4, 3, dtype=torch.float64)
    params = tuple(net.parameters())
    needs = frozenset({U, GRAD, LAP, DT})

    def fields(*weights):
        # ``weights`` are the network's own parameter tensors: gradcheck perturbs them in place
        # for its finite differences and differentiates with respect to them.
        f = Taylor().fields(net, x, needs, 2)
        return torch.cat([f.u, f.grad.flatten(), f.lap, f.dt])

    assert torch.autograd.gradcheck(fields, params, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_hjb_hard_constraint_fields_equal_autodiff():
    """The HJB transform u = a + b·f maps the network's fields by the product rule; taylor
    gives it the same raw fields as autodiff, so u's fields agree to rounding too."""
    problem = get_problem("hjb", dim=4)
    net = network(problem.input_dim, "tanh")
    for cond in problem.conditions():
        x = cond.sample(7, torch.Generator().manual_seed(0)).double()
        exact = solution_fields(problem, net, Autodiff(), x, cond.needs, None)
        taylor = solution_fields(problem, net, Taylor(), x, cond.needs, None)
        for name in cond.needs:
            ref = getattr(exact, name)
            tol = rounding_tolerance(ref)
            torch.testing.assert_close(getattr(taylor, name), ref, rtol=0, atol=tol)


def test_a_shard_gets_the_whole_batch_rows():
    net = network(4, "sin")
    x = torch.rand(10, 4, dtype=torch.float64)
    needs = frozenset({U, GRAD, LAP, DT})
    whole = Taylor().fields(net, x, needs, 3)
    shard = Taylor().fields_of_rows(net, x, slice(3, 7), needs, 3)
    for name in needs:
        # Rows are independent in FP64 (no quantization blocks across points): equal values.
        torch.testing.assert_close(getattr(shard, name), getattr(whole, name)[3:7])


def test_a_plain_function_is_refused_with_the_reason():
    net = network(3, "tanh")
    with pytest.raises(TypeError, match="the taylor estimator needs a network that takes stream"):
        Taylor().fields(lambda x: net(x), torch.rand(4, 3).double(), frozenset({LAP}), 3)


def test_taylor_streams_have_no_row_form():
    bundle = TaylorStreams.from_input(torch.rand(4, 3), [0, 1, 2], 3)
    with pytest.raises(TypeError, match="no form as plain rows"):
        MLP([3, 8, 8, 1])(bundle, stream_layers=1)


def test_a_short_poisson_run_decreases_the_loss():
    config = config_from_dict(
        {
            "seed": 0,
            "problem": {"name": "poisson", "options": {"dim": 2}},
            "model": {"widths": [16, 16]},
            "estimator": {"name": "taylor"},
            "train": {"steps": 30, "lr": 1e-2, "points": {"interior": 32, "boundary": 32}},
        }
    )
    run = trainer.build_run(config)
    losses = [trainer.train_step(run, step)["loss"] for step in range(30)]
    # Plain Adam on a smooth problem: the last steps sit well below the first ones.
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
