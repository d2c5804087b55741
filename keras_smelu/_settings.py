"""Field checks for settings dataclasses, with one error type that names the field.

Settings objects (`ReplicaSettings`, the tuner's `SearchSpace` and `Objective`, the job file's
sections) validate each field once, in `__post_init__`, with these checks. A failed check
raises `SettingError`, which knows the field, so that each caller words the error its own way
without parsing a message: Python calls say "`pairs` must be an integer >= 1; received:
pairs=0", job files say "[training] pairs: expected an integer >= 1, got 0".
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

_UNSET = object()


class SettingError(ValueError):
    """A settings field holds a bad value.

    Attributes:
        field: The field's name.
        expected: What the field takes (e.g. `"an integer >= 1"`), or `None` when `detail`
            says it all.
        received: The value given.
        detail: A free-form explanation (e.g. a relation between two fields); when given, the
            Python message is `"field: detail"`, and job files use it unless `expected` is set.
        hint: A suggestion appended to the message (e.g. "did you mean 'tpe'?").
    """

    def __init__(
        self,
        field: str,
        *,
        expected: str | None = None,
        received: Any = _UNSET,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.field = field
        self.expected = expected
        self.received = received
        self.detail = detail
        self.hint = hint
        super().__init__(self._python_message())

    def _suffix(self) -> str:
        return f" ({self.hint})" if self.hint else ""

    def _python_message(self) -> str:
        if self.detail is not None:
            return f"{self.field}: {self.detail}{self._suffix()}"
        return (
            f"`{self.field}` must be {self.expected}; received: {self.field}={self.received!r}"
            + self._suffix()
        )

    def field_message(self) -> str:
        """The message without the field's name: `"expected X, got Y"`, else the detail."""
        if self.expected is not None:
            return f"expected {self.expected}, got {self.received!r}{self._suffix()}"
        return self.detail + self._suffix()


def check_int(field: str, value: Any, minimum: int | None = None) -> None:
    """An integer (not a bool), at least `minimum`."""
    import numbers

    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise SettingError(field, expected="an integer", received=value)
    if minimum is not None and value < minimum:
        raise SettingError(field, expected=f"an integer >= {minimum}", received=value)


def check_choice(field: str, value: Any, choices: Sequence[Any]) -> None:
    """One of `choices`; a close misspelling gets a "did you mean" hint."""
    if isinstance(value, bool) or value not in tuple(choices):
        close = (
            difflib.get_close_matches(value, [c for c in choices if isinstance(c, str)], n=1)
            if isinstance(value, str)
            else []
        )
        raise SettingError(
            field,
            expected=f"one of {list(choices)}",
            received=value,
            hint=f"did you mean {close[0]!r}?" if close else None,
        )


def check_str(field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise SettingError(field, expected="a string", received=value)


def check_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise SettingError(field, expected="true or false", received=value)


def check_number(
    field: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """A finite number (not a bool) in the interval given by `low`/`high`."""
    import numbers

    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
    ):
        raise SettingError(field, expected="a finite number", received=value)
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}"
        raise SettingError(field, expected=f"a number in {interval}{right}", received=value)
