"""Plain-text descriptions of problems (what ``tqpinn problems`` prints)."""

from __future__ import annotations

import inspect
from typing import Any

from tqpinn.pdes.loader import is_object_reference, load_object
from tqpinn.pdes.registry import PROBLEMS, get_problem, option_defaults


def describe_problem(name: str, **options: Any) -> str:
    """Summary, options with defaults, input columns, conditions and test set of one problem."""
    problem = get_problem(name, **options)
    factory = load_object(name) if is_object_reference(name) else PROBLEMS[name]
    defaults = {**option_defaults(factory), **options}
    summary = (inspect.getdoc(type(problem)) or "").split("\n", 1)[0]
    columns = f"x_1..x_{problem.dim}" + (", t" if problem.time_dependent else "")
    has_exact = problem.exact(problem.test_points(1)) is not None
    lines = [
        f"{name}: {summary}",
        "  options: " + (", ".join(f"{k}={v!r}" for k, v in defaults.items()) or "none"),
        f"  input: {problem.input_dim} columns ({columns})",
        f"  exact solution: {'yes' if has_exact else 'no'}; "
        f"test set: {problem.test_size} points (seeded)",
        "  conditions (points a step, loss weight, domain):",
    ]
    for c in problem.conditions():
        needs = ",".join(sorted(c.needs))
        lines.append(
            f"    {c.name:<10} needs {needs:<14} {c.points:>5} pts  w={c.weight:<8g} {c.sample}"
        )
    return "\n".join(lines)


def describe_registry() -> str:
    """Descriptions of every registered problem with default options, blank-line separated."""
    return "\n\n".join(describe_problem(name) for name in PROBLEMS)
