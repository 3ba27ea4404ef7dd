"""Load a user object named "pkg.module:Object" or "path/to/file.py:Object".

Whatever goes wrong while importing the user's code (a syntax error, a missing import, an
exception at import time) is a UserError naming the file and line, in one line.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType

from tqpinn.errors import UserError
from tqpinn.pdes.base import Problem


def is_object_reference(name: str) -> bool:
    """Whether ``name`` has the "module:object" or "file.py:object" form."""
    return ":" in name


def load_object(reference: str) -> object:
    """The object named by ``reference``; a relative file path is relative to the working dir."""
    source, _, attribute = reference.rpartition(":")
    if not source or not attribute:
        raise UserError(f"{reference!r}: expected 'pkg.module:Object' or 'path/to/file.py:Object'")
    module = _load_file(source) if is_path(source) else _import_module(source)
    try:
        return getattr(module, attribute)
    except AttributeError:
        choices = problem_objects(module)
        close = difflib.get_close_matches(attribute, choices, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(
            f"{reference!r}: {source!r} defines no {attribute!r}{hint} "
            f"(its Problem subclasses and functions: {choices})"
        ) from None


def problem_objects(module: ModuleType) -> list[str]:
    """Names in ``module`` that can name a problem: concrete Problem subclasses (imported ones
    included) and the functions the module itself defines (factories)."""
    names = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        is_problem = (
            inspect.isclass(value) and issubclass(value, Problem) and not inspect.isabstract(value)
        )
        own_function = inspect.isfunction(value) and value.__module__ == module.__name__
        if is_problem or own_function:
            names.append(name)
    return sorted(names)


def is_path(source: str) -> bool:
    """Whether the part before ":" of a reference names a file rather than a module."""
    return source.endswith(".py") or "/" in source or "\\" in source


def resolved_reference(reference: str) -> str:
    """``reference`` with the path of an existing file made absolute, so that it names the
    same file from any working directory; anything else unchanged."""
    source, _, attribute = reference.rpartition(":")
    if not (is_object_reference(reference) and is_path(source) and Path(source).is_file()):
        return reference
    return f"{Path(source).resolve()}:{attribute}"


def where_in(err: BaseException, file: str | None = None) -> str:
    """ "path:line" where ``err`` arose in the user's code: a syntax error's own position, else
    the innermost traceback frame in ``file`` (the innermost frame of all without it)."""
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}:{err.lineno}"
    frames = traceback.extract_tb(err.__traceback__)
    own = [f for f in frames if file is not None and Path(f.filename) == Path(file)]
    frame = (own or frames or [None])[-1]
    return "<unknown>" if frame is None else f"{frame.filename}:{frame.lineno}"


def describe_exception(err: BaseException, file: str | None = None) -> str:
    """One line: where (path:line), the exception type and its message."""
    message = f"{type(err).__name__}: {err.msg if isinstance(err, SyntaxError) else err}"
    return f"{where_in(err, file)}: {message}"


def _import_module(source: str) -> ModuleType:
    if not all(part.isidentifier() for part in source.split(".")):
        raise UserError(f"{source!r} is not a module name (dotted Python identifiers)")
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as err:
        if err.name is not None and (source == err.name or source.startswith(err.name + ".")):
            raise UserError(f"no module named {err.name!r} (from {source!r})") from None
        raise UserError(f"module {source!r} failed to import: {describe_exception(err)}") from None
    except Exception as err:
        raise UserError(f"module {source!r} failed to import: {describe_exception(err)}") from None


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
    except BaseException as err:
        del sys.modules[module_name]
        if not isinstance(err, Exception):  # Ctrl-C and exits are not the file's mistake
            raise
        raise UserError(
            f"problem file {source!r} failed to import: {describe_exception(err, str(path))}"
        ) from None
    return module
