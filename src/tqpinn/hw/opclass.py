"""Cost classes of ATen operators, so that hardware models can price element-wise work.

Each non-GEMM kernel of a trace gets one class; a hardware description gives each class a cost
per element (cycles on a vector unit, FLOPs on a roofline). The table is by operator base name:
in-place and foreach variants (``add_``, ``_foreach_add_``) share the class of ``add``. ``pow`` is
simple: in a training step it squares (residuals, Adam's second moment), a multiply.
"""

from __future__ import annotations

TRANSCENDENTAL, DIVIDE, REDUCTION, MEMORY, RNG, SIMPLE = (
    "transcendental",
    "divide",
    "reduction",
    "memory",
    "rng",
    "simple",
)
OP_CLASSES = (SIMPLE, TRANSCENDENTAL, DIVIDE, REDUCTION, MEMORY, RNG)

_CLASS_OF: dict[str, str] = {
    **dict.fromkeys(
        (
            "tanh",
            "sin",
            "cos",
            "tan",
            "sinh",
            "cosh",
            "exp",
            "exp2",
            "expm1",
            "log",
            "log2",
            "log10",
            "log1p",
            "sigmoid",
            "erf",
            "frexp",
        ),
        TRANSCENDENTAL,
    ),
    **dict.fromkeys(("div", "reciprocal", "sqrt", "rsqrt", "addcdiv", "remainder", "fmod"), DIVIDE),
    **dict.fromkeys(
        (
            "sum",
            "mean",
            "amax",
            "amin",
            "max",
            "min",
            "norm",
            "linalg_vector_norm",
            "prod",
            "var",
            "std",
            "var_mean",
            "cumsum",
            "aminmax",
            "argmax",
            "argmin",
            "all",
            "any",
        ),
        REDUCTION,
    ),
    **dict.fromkeys(
        (
            "copy",
            "clone",
            "_to_copy",
            "fill",
            "zero",
            "zeros",
            "ones",
            "full",
            "zeros_like",
            "ones_like",
            "full_like",
            "new_zeros",
            "new_ones",
            "new_full",
            "scalar_tensor",
            "cat",
            "stack",
            "index_select",
            "gather",
            "scatter",
            "scatter_add",
            "index",
            "index_put",
            "repeat",
            "constant_pad_nd",
            "slice_scatter",
            "select_scatter",
            "masked_fill",
            "_copy_from",
            "_copy_from_and_resize",
            "arange",
            "linspace",
            "select_backward",
            "slice_backward",
            "index_select_backward",
        ),
        MEMORY,
    ),
    **dict.fromkeys(
        ("normal", "uniform", "randn", "rand", "randint", "random", "bernoulli", "randperm"),
        RNG,
    ),
}

NO_WORK = frozenset(
    {
        "empty",
        "empty_like",
        "empty_strided",
        "new_empty",
        "new_empty_strided",
        "resize",
        "detach",
        "lift_fresh",
        "alias",
        "_local_scalar_dense",
        "is_nonzero",
        "equal",
        "set",
        "_has_compatible_shallow_copy_type",
        "sym_size",
        "sym_stride",
        "sym_numel",
        "sym_storage_offset",
        "item",
        "_assert_tensor_metadata",
        "_record_function_enter",
        "_record_function_enter_new",
        "_record_function_exit",
        "_unsafe_view",
        "_reshape_alias",
    }
)
"""Operators that allocate, alias, read a scalar or mark a profiler range: no data work."""


def base_name(op: str) -> str:
    """``_foreach_addcdiv_`` -> ``addcdiv``; ``mul_`` -> ``mul``; ``tanh`` -> ``tanh``."""
    return op.removeprefix("_foreach_").rstrip("_") or op


def op_class(op: str) -> str:
    """The cost class of an ATen operator name (``simple`` unless listed)."""
    return _CLASS_OF.get(base_name(op), SIMPLE)


def does_work(op: str) -> bool:
    return base_name(op) not in NO_WORK and op not in NO_WORK
