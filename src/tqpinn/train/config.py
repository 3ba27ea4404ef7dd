"""Typed run configuration, validated once at the edge: unknown keys and bad values are rejected."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from tqpinn.errors import UserError
from tqpinn.nn.tt.spec import TTSpec
from tqpinn.pdes.loader import resolved_reference
from tqpinn.quant.config import QuantConfig


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


# Numbers: a YAML boolean (true/yes/on) is not a count or a rate, though pydantic would read
# it as 1; NaN and ±Inf are rejected for every float (allow_inf_nan below).
NotBool = BeforeValidator(_not_bool)
PositiveInt = Annotated[int, NotBool, Field(gt=0)]
NonNegativeInt = Annotated[int, NotBool, Field(ge=0)]
PositiveFloat = Annotated[float, NotBool, Field(gt=0)]
NonNegativeFloat = Annotated[float, NotBool, Field(ge=0)]


def _false_is_off(value: Any) -> Any:
    return "off" if value is False else value


# YAML 1.1 reads an unquoted ``off`` as false, and the docs write ``diffquant: off``; only
# false maps to "off" (true stays an error: it names no variant).
OffIfFalse = BeforeValidator(_false_is_off)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ProblemConfig(Strict):
    name: Annotated[str, AfterValidator(resolved_reference)] = "poisson"
    """A registered problem (``tqpinn problems``) or ``module:object`` / ``file.py:object``; the
    path of an existing file is made absolute (relative to the working directory), so that the
    run directory's config names the same file from anywhere."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the problem, e.g. ``{dim: 20}``."""


class TTConfig(Strict):
    """Which layers are TT-matrices and how (see tqpinn.nn.tt.TTLinear, docs/tt.md)."""

    layers: list[NonNegativeInt]
    """0-based indices of the layers to make TT (0 is the input layer)."""
    ranks: PositiveInt | list[PositiveInt] = 2
    shapes: list[tuple[list[PositiveInt], list[PositiveInt]] | None] | None = None
    """Per TT layer: [out factors, in factors] or null (automatic); null for all automatic."""
    n_cores: PositiveInt | None = None
    plan: Literal["sequential", "reconstruct", "partial"] = "sequential"
    groups: PositiveInt | list[PositiveInt] | None = None
    """Plan "partial" (PRS) only: a number of groups or the group sizes."""
    merge: Literal["fp32", "quantized"] = "fp32"
    """Precision of the core merges of partial/reconstruct (fp32: merged cores quantized once)."""
    init: Literal["torch", "xavier", "he"] = "torch"
    recompute: bool = True
    """Quantized TT layers keep only their input for backward and recompute each later
    contraction's input there (less memory; about +19% on a Poisson full-pipeline step); false
    stores every intermediate (docs/tt.md)."""

    def spec(self) -> TTSpec:
        """These options as the one frozen spec that the model factory and each layer take."""
        return TTSpec(
            layers=tuple(self.layers),
            ranks=self.ranks if isinstance(self.ranks, int) else tuple(self.ranks),
            shapes=None if self.shapes is None else tuple(map(_factor_pair, self.shapes)),
            n_cores=self.n_cores,
            plan=self.plan,
            groups=self.groups if not isinstance(self.groups, list) else tuple(self.groups),
            merge=self.merge,
            init=self.init,
            recompute=self.recompute,
        )


def _factor_pair(
    pair: tuple[list[int], list[int]] | None,
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    return None if pair is None else (tuple(pair[0]), tuple(pair[1]))


class ModelConfig(Strict):
    widths: Annotated[list[PositiveInt], Field(min_length=1)] = Field(
        default_factory=lambda: [256, 256, 256]
    )
    """Hidden layer widths: at least one (no hidden layer would be a linear model)."""
    activation: Literal["tanh", "sin"] = "tanh"
    tt: TTConfig | None = None
    """Tensor-train layers; None: all layers dense."""


class AutodiffConfig(Strict):
    name: Literal["autodiff"] = "autodiff"
    directions_per_pass: PositiveInt = 10
    """Spatial directions whose second derivatives share one backward pass (speed only)."""


class SteinConfig(Strict):
    name: Literal["stein"] = "stein"
    sigma: PositiveFloat = 0.01
    pairs: PositiveInt = 512
    value: Literal["center", "smoothed"] = "center"
    """Value used for conditions and prediction: g(x) or the Monte-Carlo mean of g(x ± δ)."""
    diffquant: Annotated[Literal["off", "input", "full"], OffIfFalse] = "off"
    """DiffQuant (docs/diffquant.md): "off" evaluates x ± δ as values; "full" carries the
    perturbation differences through every layer, each quantized with its own block scales;
    "input" through the first layer only (an ablation)."""
    directions: Literal["cpu", "device"] = "cpu"
    """Where the Gaussian directions are drawn: "cpu" (the run's sampling generator: CPU and GPU
    runs of one config draw the same directions) or "device" (a generator on the run's device,
    seeded by the run: faster on a GPU)."""


class StencilConfig(Strict):
    name: Literal["stencil"] = "stencil"
    h: PositiveFloat = 0.01
    """Central-difference step along each needed input column (input units)."""
    diffquant: Annotated[Literal["off", "input", "full"], OffIfFalse] = "off"
    """As Stein's: how the differences x ± h·e_i reach the output (docs/diffquant.md)."""


class TaylorConfig(Strict):
    name: Literal["taylor"] = "taylor"


EstimatorConfig = Annotated[
    AutodiffConfig | SteinConfig | StencilConfig | TaylorConfig, Field(discriminator="name")
]


class TrainConfig(Strict):
    steps: PositiveInt = 1000
    lr: PositiveFloat = 1e-3
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    """Learning rate over the run: linear decay to 0 (the prior recipe), cosine, or constant."""
    points: dict[str, PositiveInt] = Field(default_factory=dict)
    """Collocation points per step, per condition name; unset conditions use the problem's."""
    weights: dict[str, NonNegativeFloat] = Field(default_factory=dict)
    """Loss weight per condition name; unset conditions use the problem's."""
    log_every: PositiveInt = 10
    eval_every: PositiveInt = 100
    eval_points: PositiveInt | None = None
    """Size of the fixed test set; None uses the problem's default."""
    checkpoint_every: PositiveInt = 100
    on_nonfinite: Literal["stop", "skip", "rollback"] = "stop"
    """A NaN/Inf loss or gradient: stop (the last checkpoint is kept), skip the update, or roll
    back to the last checkpoint and multiply the learning rate by ``rollback_lr_factor``."""
    rollback_lr_factor: Annotated[float, NotBool, Field(gt=0, lt=1)] = 0.5
    nonfinite_patience: PositiveInt = 10
    """Non-finite steps in a row that skip/rollback tolerate before the run stops."""
    max_rollbacks: PositiveInt = 10
    """Rollbacks in the whole run before it stops (each lowers the rate by rollback_lr_factor,
    so 10 of 0.5 end a thousand times below train.lr)."""
    explode_factor: Annotated[float, NotBool, Field(gt=1)] | None = 1e3
    """A loss above this multiple of its running minimum counts as diverged and is handled
    like a non-finite step (train.on_nonfinite); null turns the check off."""


class Config(Strict):
    seed: Annotated[int, NotBool, Field(ge=0, lt=2**63)] = 0
    problem: ProblemConfig = Field(default_factory=ProblemConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    estimator: EstimatorConfig = Field(default_factory=AutodiffConfig)
    quant: QuantConfig = Field(default_factory=lambda: QuantConfig.model_validate("fp32"))
    """A preset (fp32, smx_paper, mx_int8, ...) or changes to a ``base`` preset by role
    (tqpinn.quant.config); serialized as given."""
    train: TrainConfig = Field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON of :meth:`to_dict`: equal for equal configs, so
        results saved with it can be matched to the config that made them."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


TAGGED_UNIONS = ("estimator",)
"""Sections whose pydantic error locations carry the variant tag, e.g. ('estimator', 'stein')."""


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    if len(loc) > 2 and loc[0] in TAGGED_UNIONS:
        del loc[1]  # 'estimator.stein.sigma' reads better as 'estimator.sigma'
    key = ".".join(loc) or "<config>"
    msg = first["msg"].removeprefix("Value error, ")  # our own messages name what is wrong
    if first["type"] == "extra_forbidden":
        return f"unknown config key {key!r}"
    if "input" in first and first["type"] != "missing" and repr(first["input"]) not in msg:
        return f"config key {key!r}: {msg} (got {first['input']!r})"
    return f"config key {key!r}: {msg}"


def config_from_dict(data: Any) -> Config:
    """Validate a plain dict; raises UserError naming the first bad key."""
    if not isinstance(data, dict):
        raise UserError(f"a config must be a mapping of keys to values, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise UserError(_describe(err)) from None


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, unreadable or malformed file is a UserError naming it."""
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"config file {path} is not UTF-8 text") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"config file {path} is not valid YAML{where}") from None
    if data is None:
        raise UserError(
            f"config file {path} holds no keys (it is empty or only comments); "
            "leave out --config to train the defaults"
        )
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


EXTENDS = "extends"
"""Config-file key naming a base config file (relative to the file's folder) that the file
changes: mappings merge key by key, any other value (a list, null) replaces the base's."""


def read_config_file(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file with its ``extends`` chain resolved into one plain mapping."""
    data = read_yaml(path)
    parent = data.pop(EXTENDS, None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise UserError(f"config file {path}: '{EXTENDS}' must name a YAML file, got {parent!r}")
    base_path = (path.parent / parent).resolve()
    chain = (*_chain, path.resolve())
    if base_path in chain:
        loop = " -> ".join(str(p) for p in (*chain, base_path))
        raise UserError(f"config file {path}: '{EXTENDS}' makes a loop: {loop}")
    if not base_path.is_file():
        raise UserError(f"config file {path} extends {parent!r}, which is not a file: {base_path}")
    return merge_config(read_config_file(base_path, chain), data)


def merge_config(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied: nested mappings merge, other values replace."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = value
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a nested dict copy."""
    out = yaml.safe_load(yaml.safe_dump(data))  # deep copy of plain data
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise UserError(f"--set {key}: value {raw!r} is not valid YAML") from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"--set {key}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def load_config(
    path: Path | None, overrides: list[str] = (), resume_dir: Path | None = None
) -> Config:
    """The resolved config: defaults, then the YAML file (its ``extends`` chain first), then
    ``--set`` overrides.

    Without a file, a resumed run starts from its own saved ``config.yaml``.
    """
    if path is not None:
        data = read_config_file(path)
    elif resume_dir is not None:
        data = read_yaml(resume_dir / "config.yaml")
    else:
        data = {}
    return config_from_dict(apply_overrides(data, list(overrides)))
