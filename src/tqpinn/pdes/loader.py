"""Load a user object named "pkg.module:Object" or "path/to/file.py:Object"."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tqpinn.errors import UserError


def is_object_reference(name: str) -> bool:
    """Whether ``name`` has the "module:object" or "file.py:object" form."""
    return ":" in name


def load_object(reference: str) -> object:
    """The object named by ``reference``; a relative file path is relative to the working dir."""
    source, _, attribute = reference.rpartition(":")
    if not source or not attribute:
        raise UserError(f"{reference!r}: expected 'pkg.module:Object' or 'path/to/file.py:Object'")
    module = _load_file(source) if _is_path(source) else _import_module(source)
    try:
        return getattr(module, attribute)
    except AttributeError:
        public = sorted(n for n in vars(module) if not n.startswith("_"))
        raise UserError(
            f"{reference!r}: {source!r} defines no {attribute!r}; it defines {public}"
        ) from None


def _is_path(source: str) -> bool:
    return source.endswith(".py") or "/" in source or "\\" in source


def _import_module(source: str) -> ModuleType:
    if not all(part.isidentifier() for part in source.split(".")):
        raise UserError(f"{source!r} is not a module name (dotted Python identifiers)")
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as err:
        # Only a missing module named by the user is a user error; a missing dependency inside
        # that module is a real failure and keeps its traceback.
        if err.name is not None and (source == err.name or source.startswith(err.name + ".")):
            raise UserError(f"no module named {err.name!r} (from {source!r})") from None
        raise


def _load_file(source: str) -> ModuleType:
    path = Path(source).resolve()
    if not path.is_file():
        raise UserError(f"problem file {source!r} not found (resolved to {str(path)!r})")
    # A stable, unique module name per file, registered in sys.modules so that dataclasses and
    # pickling inside the user module can find it.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_name = f"tqpinn_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"problem file {source!r} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
