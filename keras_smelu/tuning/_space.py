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

With `width_range="auto"` the searched range is not given but measured: after the ReLU
reference is trained, `keras_smelu.diagnostics.auto_width_range` reads the scales of its
pre-activations (`_auto_range.AUTO_RULE`) and the search runs over that range, clamped to
`[width_low, width_high]`. The measured range is stored with the study (a resume reuses it)
and set on the space with `with_measured_range`.
"""

from __future__ import annotations

import dataclasses
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
AUTO_RANGE = "auto"
"""`SearchSpace.width_range` that measures the range from the ReLU reference."""

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
        width_low: Smallest width (SmeLU `beta` units); positive when `log` is true. With
            `width_range="auto"`, the least width the measured range may start at.
        width_high: Largest width; above `width_low`. With `width_range="auto"`, the most
            the measured range may reach (then at least ten times `width_low`).
        width_range: `None` (default): search `[width_low, width_high]`. `"auto"`: search
            the range measured from the ReLU reference's pre-activation scales (its first
            pair's two replicas on at most 4,096 evaluation rows): from the smallest width at
            which some hidden layer has 1% of its pre-activations inside SmeLU's band to the
            largest at which every hidden layer has 90% inside
            (`keras_smelu.diagnostics.auto_width_range`), clamped to `[width_low,
            width_high]`, at least one decade wide.
        measured_range: The measured `(low, high)` of an auto range once known (set by the
            tuner with `with_measured_range`; not a job file field).
        log: Sample the width on a log scale (the useful range spans decades, docs/findings.md).
        slope_left_low: Lower bound of g-SmeLU's left slope.
        slope_left_high: Upper bound of g-SmeLU's left slope (below 1).
        reference: Evaluate one ReLU reference trial per model.
        ensembles: Sizes `k >= 2` of ReLU ensembles evaluated as reference points beside the
            ReLU reference (default none; `(2, 4)` is the usual pair): each replica of such a
            point averages k ReLU models (`ReplicaSettings.ensemble`), at k times the training
            and serving compute, trained with the reference's pair seeds so that they compare
            with ReLU and the widths pair by pair. Shown in the table, files and plot with
            their cost; never searched, recommended or on the frontier. Needs `reference`.
    """

    families: tuple[str, ...] = ("smelu",)
    width_low: float = 0.01
    width_high: float = 10.0
    width_range: str | None = None
    log: bool = True
    slope_left_low: float = 0.0
    slope_left_high: float = 0.3
    reference: bool = True
    measured_range: tuple[float, float] | None = None
    ensembles: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self._check_ensembles()
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
        if self.width_range is not None:
            if self.width_range != AUTO_RANGE:
                raise SettingError(
                    "width_range",
                    expected=f"{AUTO_RANGE!r} (omit it to search [width_low, width_high])",
                    received=self.width_range,
                )
            if self.width_high < 10.0 * self.width_low:
                raise SettingError(
                    "width_high",
                    detail='with width_range = "auto", width_low and width_high bound the '
                    "measured range and must span at least a decade; expected width_high >= "
                    f"{10.0 * self.width_low:g}, got {self.width_high!r}",
                )
        if self.measured_range is not None:
            self._check_measured_range()
        if not 0.0 <= self.slope_left_low <= self.slope_left_high < 1.0:
            raise SettingError(
                "slope_left_high",
                detail="expected 0 <= slope_left_low <= slope_left_high < 1; got "
                f"{self.slope_left_low!r} and {self.slope_left_high!r}",
            )

    def _check_ensembles(self) -> None:
        value = self.ensembles
        if isinstance(value, list):
            value = tuple(value)
            object.__setattr__(self, "ensembles", value)
        ok = isinstance(value, tuple) and all(
            isinstance(k, int) and not isinstance(k, bool) and k >= 2 for k in value
        )
        if not ok:
            raise SettingError(
                "ensembles", expected="a list of ensemble sizes >= 2 (e.g. [2, 4])", received=value
            )
        if len(set(value)) != len(value):
            raise SettingError("ensembles", detail=f"duplicate sizes in {list(value)}")
        if value and not self.reference:
            raise SettingError(
                "ensembles",
                detail=f"ReLU ensembles {list(value)} are compared with the ReLU reference; "
                "expected reference = true (or ensembles = [])",
            )
        object.__setattr__(self, "ensembles", tuple(sorted(value)))

    def _check_measured_range(self) -> None:
        value = self.measured_range
        if isinstance(value, list):
            value = tuple(value)
            object.__setattr__(self, "measured_range", value)
        if self.width_range != AUTO_RANGE:
            raise SettingError(
                "measured_range",
                detail=f"a measured range needs width_range = {AUTO_RANGE!r}; got "
                f"width_range={self.width_range!r}",
            )
        ok = (
            isinstance(value, tuple)
            and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            and 0.0 < value[0] < value[1] < math.inf
        )
        if not ok:
            raise SettingError(
                "measured_range", expected="(low, high) with 0 < low < high", received=value
            )

    def validate(self) -> SearchSpace:
        """Every field is checked when the space is made; kept for callers. Returns `self`."""
        return self

    @property
    def is_auto(self) -> bool:
        """Whether the range is measured from the ReLU reference (`width_range="auto"`)."""
        return self.width_range == AUTO_RANGE

    @property
    def needs_range(self) -> bool:
        """Whether the range is still to be measured: auto, and not measured yet."""
        return self.is_auto and self.measured_range is None

    @property
    def low(self) -> float:
        """The smallest searched width: the measured one for an auto range."""
        return float(self.measured_range[0] if self.measured_range else self.width_low)

    @property
    def high(self) -> float:
        """The largest searched width: the measured one for an auto range."""
        return float(self.measured_range[1] if self.measured_range else self.width_high)

    def with_measured_range(self, low: float, high: float) -> SearchSpace:
        """This auto space with its measured range `(low, high)` set."""
        if not self.is_auto:
            raise ValueError(
                f"Only a space with width_range={AUTO_RANGE!r} takes a measured range; "
                f"received: width_range={self.width_range!r}"
            )
        return dataclasses.replace(self, measured_range=(float(low), float(high)))

    def describe_range(self) -> str:
        """The searched range in words, e.g. `"widths 0.05-3.2 (auto: from ReLU's
        pre-activation scales)"`."""
        text = f"widths {self.low:.3g}-{self.high:.3g}"
        if self.is_auto:
            where = "from ReLU's pre-activation scales" if self.measured_range else "not measured"
            text += f" (auto: {where})"
        return text

    def widths(self, n: int) -> np.ndarray:
        """`n` widths spread over the range (geometrically when `log`), both ends included."""
        if n < 1:
            raise ValueError(f"n must be at least 1; got {n=}")
        if self.needs_range:
            raise ValueError(
                "The widths of an auto range are known once it is measured from the ReLU "
                "reference (with_measured_range); received: an auto range not yet measured"
            )
        low, high = self.low, self.high
        if n == 1:
            middle = math.sqrt(low * high) if self.log else (low + high) / 2.0
            return np.array([middle])
        if self.log:
            return np.geomspace(low, high, n)
        return np.linspace(low, high, n)

    def grid_widths(self, trials: int) -> list[float]:
        """The widths of the "grid" sampler (both backends): `ceil(trials / len(families))`
        widths spread over the range, so that `trials` points cover every family."""
        per_family = max(1, math.ceil(trials / len(self.families)))
        return [float(w) for w in self.widths(per_family)]
