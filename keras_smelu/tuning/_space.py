"""The search space: activation families and their shared "width" axis.

Every family is placed on one axis, the *width*, in SmeLU's units (its half-width `beta`):

- `"smelu"`: `width = beta`.
- `"generalized_smelu"`: `alpha = beta = width` (a symmetric band) and `slope_right = 1`, with a
  searched left slope `slope_left` in `[slope_left_low, slope_left_high]` (default `[0, 0.3]`,
  from SmeLU to a leaky SmeLU). Keeping the band symmetric keeps the one width axis meaningful;
  the left slope is the only extra parameter.
- `"gelu"`, `"swish"`, `"softplus"`: the comparators `x * Phi(s x)`, `x * sigmoid(s x)`,
  `softplus(s x) / s`, whose scale `s` (larger is closer to ReLU) is mapped to a width by
  matching the curvature at the origin with SmeLU's, `y''(0) = 1 / (2 beta)`:

      softplus: y''(0) = s / 4            ->  s = 2 / width
      swish:    y''(0) = s / 2            ->  s = 1 / width
      gelu:     y''(0) = s * sqrt(2 / pi) ->  s = sqrt(pi / 2) / 2 / width  (~0.627 / width)

  (`keras_smelu.activations.beta_to_scale` / `scale_to_beta` hold this mapping.)

- `"relu"` is the reference (width 0); it is not searched but evaluated once per model.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import keras
import numpy as np

from keras_smelu._settings import SettingError
from keras_smelu.activations import COMPARATORS, beta_to_scale, check_width

REFERENCE_FAMILY = "relu"
FAMILIES = ("smelu", "generalized_smelu", *COMPARATORS)

# Extra searched parameters per family (their ranges are SearchSpace fields).
FAMILY_PARAMS: dict[str, tuple[str, ...]] = {
    "smelu": (),
    "generalized_smelu": ("slope_left",),
    "gelu": (),
    "swish": (),
    "softplus": (),
    REFERENCE_FAMILY: (),
}


def _check_family(family: str) -> None:
    known = (*FAMILIES, REFERENCE_FAMILY)
    if family not in known:
        raise ValueError(f"unknown activation family {family!r}; expected one of {known}")


def make_activation(family: str, width: float = 0.0, **params: float):
    """Build the Keras activation layer for a point of the search space.

    Args:
        family: `"relu"` or one of `FAMILIES`.
        width: The width on the shared axis (SmeLU's `beta`); ignored for `"relu"`.
        **params: Family-specific extras: `slope_left` (and optionally `alpha`, `slope_right`)
            for `"generalized_smelu"`; none for the others.

    Returns:
        A Keras layer: `keras.layers.ReLU()`, `keras_smelu.SmeLU(beta=width)`,
        `keras_smelu.GeneralizedSmeLU(alpha, beta, slope_left, slope_right)`, or, for the
        comparators, `ScaledActivation(family, beta_to_scale(family, width))` (serialisable,
        so the models' builders can clone it from its config).
    """
    _check_family(family)
    allowed = set(FAMILY_PARAMS[family])
    if family == "generalized_smelu":
        allowed |= {"alpha", "slope_right"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for family {family!r}; expected {sorted(allowed)}"
        )
    if family == REFERENCE_FAMILY:
        return keras.layers.ReLU()
    width = check_width(width, "width", allow_zero=False)
    if family == "smelu":
        from keras_smelu import SmeLU

        return SmeLU(beta=width)
    if family == "generalized_smelu":
        from keras_smelu import GeneralizedSmeLU

        return GeneralizedSmeLU(
            alpha=float(params.get("alpha", width)),
            beta=width,
            slope_left=float(params.get("slope_left", 0.0)),
            slope_right=float(params.get("slope_right", 1.0)),
        )
    from keras_smelu.layers import ScaledActivation

    return ScaledActivation(family, beta_to_scale(family, width))


@dataclass(frozen=True)
class SearchPoint:
    """One point of the search space: a family, a width and the family's extra parameters."""

    family: str
    width: float
    params: Mapping[str, float] = field(default_factory=dict)

    def make_activation(self):
        """The Keras activation layer for this point (see `make_activation`)."""
        return make_activation(self.family, self.width, **dict(self.params))


@dataclass(frozen=True)
class SearchSpace:
    """The families and width range the tuner searches.

    Attributes:
        families: Families to search, from `FAMILIES` (ReLU is the reference, not listed).
        width_low: Smallest width (SmeLU `beta` units); positive when `log` is true.
        width_high: Largest width; above `width_low`.
        log: Sample the width on a log scale (the useful range spans decades, docs/findings.md).
        slope_left_low: Lower bound of g-SmeLU's left slope.
        slope_left_high: Upper bound of g-SmeLU's left slope (below 1).
        reference: Evaluate one ReLU reference trial per model.
    """

    families: tuple[str, ...] = ("smelu",)
    width_low: float = 0.01
    width_high: float = 10.0
    log: bool = True
    slope_left_low: float = 0.0
    slope_left_high: float = 0.3
    reference: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.families, list):
            object.__setattr__(self, "families", tuple(self.families))
        if not isinstance(self.families, tuple):
            raise SettingError(
                "families", detail=f"expected a list of family names; got {self.families!r}"
            )
        if len(self.families) == 0:
            raise SettingError("families", detail=f"expected at least one of {FAMILIES}; got none")
        for family in self.families:
            if family == REFERENCE_FAMILY:
                raise SettingError(
                    "families",
                    detail=f"unknown family {family!r}; expected one of {FAMILIES} (ReLU is the "
                    "reference, set reference=True)",
                )
            if family not in FAMILIES:
                close = difflib.get_close_matches(str(family), FAMILIES, n=1)
                raise SettingError(
                    "families",
                    expected=f"one of {list(FAMILIES)}",
                    received=family,
                    detail=f"unknown family {family!r}; expected one of {FAMILIES}",
                    hint=f"did you mean {close[0]!r}?" if close else None,
                )
        if len(set(self.families)) != len(self.families):
            raise SettingError("families", detail=f"duplicate names in {list(self.families)}")
        for name in ("width_low", "width_high", "slope_left_low", "slope_left_high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingError(name, detail=f"expected a number; got {value!r}")
            if not math.isfinite(value):
                raise SettingError(name, detail=f"expected a finite number; got {value!r}")
        if not isinstance(self.log, bool):
            raise SettingError("log", detail=f"expected true or false; got {self.log!r}")
        if not isinstance(self.reference, bool):
            raise SettingError(
                "reference", detail=f"expected true or false; got {self.reference!r}"
            )
        if self.width_low <= 0:
            # Width 0 is ReLU (the reference), and a log scale needs a positive bound.
            scale = " on a log scale" if self.log else ""
            raise SettingError(
                "width_low",
                detail=f"expected a positive number{scale} (width 0 is the ReLU reference); "
                f"got {self.width_low!r}",
            )
        if not self.width_low < self.width_high:
            raise SettingError(
                "width_low",
                detail=f"expected a positive number below width_high ({self.width_high!r}), "
                f"got {self.width_low!r}",
            )
        if not 0.0 <= self.slope_left_low <= self.slope_left_high < 1.0:
            raise SettingError(
                "slope_left_high",
                detail="expected 0 <= slope_left_low <= slope_left_high < 1; got "
                f"{self.slope_left_low!r} and {self.slope_left_high!r}",
            )

    def validate(self) -> SearchSpace:
        """Every field is checked when the space is made; kept for callers. Returns `self`."""
        return self

    def widths(self, n: int) -> np.ndarray:
        """`n` widths spread over the range (geometrically when `log`), both ends included."""
        if n < 1:
            raise ValueError(f"n must be at least 1; got {n=}")
        if n == 1:
            middle = (
                math.sqrt(self.width_low * self.width_high)
                if self.log
                else (self.width_low + self.width_high) / 2.0
            )
            return np.array([middle])
        if self.log:
            return np.geomspace(self.width_low, self.width_high, n)
        return np.linspace(self.width_low, self.width_high, n)

    def grid_widths(self, trials: int) -> list[float]:
        """The widths of the "grid" sampler (both backends): `ceil(trials / len(families))`
        widths spread over the range, so that `trials` points cover every family."""
        per_family = max(1, math.ceil(trials / len(self.families)))
        return [float(w) for w in self.widths(per_family)]
