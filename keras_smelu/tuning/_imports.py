"""Lazy imports of the tuner's optional dependencies (Optuna, keras-tuner, matplotlib).

`keras_smelu.tuning` must import without them: modules call `import_optional` where they use
one (or at the top of a backend module only imported when that backend runs), and a missing
package raises an ImportError that says how to install it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

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
