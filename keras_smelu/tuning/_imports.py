"""Lazy guard for the tuner's optional dependencies (Optuna, keras-tuner, matplotlib).

`keras_smelu.tuning` must import without them, so modules that need one either call
`import_optional` where they use it, or wrap a module-level import in `try_import()` and call
`check()` before first use (the pattern of `optuna/_imports.py`)::

    with try_import() as _optuna_import:
        import optuna

    def run(...):
        _optuna_import.check()
"""

from __future__ import annotations

import importlib
from types import ModuleType, TracebackType

INSTALL_HINT = 'pip install "keras-smelu[tuning]"'


def _message(name: str, purpose: str | None, cause: BaseException | None) -> str:
    what = f"{purpose} needs" if purpose else "This feature needs"
    detail = f" ({cause})" if cause is not None else ""
    return (
        f"{what} the optional dependency {name!r}, which could not be imported{detail}. "
        f"Install the tuning extras with: {INSTALL_HINT}"
    )


def import_optional(name: str, purpose: str | None = None) -> ModuleType:
    """Import an optional module, or raise an `ImportError` that says how to install it.

    Args:
        name: The module to import, for example `"optuna"` or `"matplotlib.figure"`.
        purpose: What needs it, for the message (for example `"Plotting the frontier"`).

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        top = name.split(".")[0]
        raise ImportError(_message(top, purpose, exc)) from exc


class DeferredImport:
    """Context manager that catches an `ImportError` and re-raises it, explained, on `check()`."""

    def __init__(self, purpose: str | None = None) -> None:
        self._purpose = purpose
        self._error: ImportError | None = None

    def __enter__(self) -> DeferredImport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if isinstance(exc_value, ImportError):
            self._error = exc_value
            return True
        return False

    def is_successful(self) -> bool:
        """Whether every import inside the block succeeded."""
        return self._error is None

    def check(self) -> None:
        """Raise an `ImportError` with the install hint if an import in the block failed."""
        if self._error is not None:
            name = self._error.name or "an optional dependency"
            raise ImportError(
                _message(name.split(".")[0], self._purpose, self._error)
            ) from self._error


def try_import(purpose: str | None = None) -> DeferredImport:
    """Return a `DeferredImport` for a `with` block of optional imports."""
    return DeferredImport(purpose)
