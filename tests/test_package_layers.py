"""Packages import in one direction: every import of every module (function-level imports
included) names a package on a lower layer than its own, or its own package."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tqpinn"

LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(names.split())
    for names in (
        "__init__ errors",  # the version and the user-error type: everyone's
        "devices machine",  # which device, which CPU: no numerics
        "timing",  # how long, synchronising the device: no numerics
        "formats",
        "quant",
        "qops",
        "nn",
        "derivatives",
        "pdes",
        "report",
        "train",
        "hw",
        "studies",
        "cli",
        "__main__",
    )
)
"""Lowest first; names on one layer never import each other."""

LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _package(path: Path) -> str:
    """The top-level name under tqpinn of a source file: 'quant' for quant/store.py."""
    parts = path.relative_to(SRC).parts
    return parts[0].removesuffix(".py")


def _imported(path: Path, root: Path = SRC) -> set[str]:
    """Top-level tqpinn names that ``path`` (a file under ``root``, the tqpinn folder) imports,
    at any depth of its code."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package_parts = path.relative_to(root).parts[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["tqpinn", *package_parts[: len(package_parts) - node.level + 1]]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            modules = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == "tqpinn" and len(parts) > 1:
                found.add(parts[1])
            elif module == "tqpinn":
                found.add("__init__")
    return found


def package_edges() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) -> the importing files, for imports between different names."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        source = _package(path)
        for target in _imported(path) - {source}:
            edges.setdefault((source, target), []).append(str(path.relative_to(SRC)))
    return edges


def test_every_source_package_has_a_layer():
    names = {_package(p) for p in SRC.rglob("*.py")}
    assert names <= set(LAYER_OF), f"packages without a layer: {sorted(names - set(LAYER_OF))}"


def test_imports_run_downward_only():
    upward = [
        f"{a} -> {b} ({', '.join(files)})"
        for (a, b), files in package_edges().items()
        if LAYER_OF.get(b, -1) >= LAYER_OF[a]
    ]
    assert not upward, "imports that run up or sideways:\n" + "\n".join(upward)


def test_the_parser_sees_function_level_and_relative_imports(tmp_path):
    module = tmp_path / "nn" / "probe.py"
    module.parent.mkdir()
    module.write_text(
        "import torch\n"
        "def f():\n    from tqpinn.train import trainer\n    from ..studies import x\n"
        "    import tqpinn.report.plots\n"
    )
    assert _imported(module, tmp_path) == {"train", "studies", "report"}
