"""Pre-activation diagnostics: how the inputs of a model's activations compare with a width.

SmeLU's width only means something relative to the scale of the pre-activations it receives:
where nearly every pre-activation of a layer lies inside the quadratic band `|x| < beta`, the
layer is nearly linear, and where nearly none does, SmeLU is ReLU. `inspect_activations`
measures, per activation, the quantiles of `|x|` and the share of values inside the band for a
set of widths; `auto_width_range` turns them into the span of widths worth searching.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import keras
import numpy as np

from keras_smelu import activations as _activations
from keras_smelu import surgery
from keras_smelu.layers import SmeLU

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "DEFAULT_QUANTILES",
    "DEFAULT_WIDTHS",
    "OUTPUT_ACTIVATIONS",
    "ActivationDiagnostics",
    "ActivationStats",
    "auto_width_range",
    "inspect_activations",
]

DEFAULT_QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.99)
"""Levels of the `|x|` quantiles recorded per activation."""
DEFAULT_WIDTHS = (0.01, 0.1, 0.5, 1.0, 2.0, 10.0)
"""Widths at which the share of pre-activations inside the band is counted."""
OUTPUT_ACTIVATIONS = ("sigmoid", "softmax", "log_softmax", "linear")
"""Activations `auto_width_range` leaves out by default: outputs, not hidden units."""
_WIDTH_BOUNDS = (1e-3, 1e2)
# The least span auto_width_range returns, as a ratio high / low: one decade.
_MIN_SPAN = 10.0


@dataclasses.dataclass(frozen=True)
class ActivationStats:
    """The pre-activations of one activation.

    Attributes:
        layer: Path of the layer in the model (`"tower/dense_1"`).
        activation: Name of the activation (`keras_smelu.surgery.activation_name`).
        kind: `"argument"` (a layer's `activation=`) or `"layer"` (an activation layer).
        count: Number of pre-activation values seen (examples times units).
        mean: Their mean.
        std: Their standard deviation.
        abs_quantiles: `{level: quantile of |x|}`, from a uniform sample of at most
            `max_values` values (exact when fewer were seen).
        band_share: `{width: share of values with |x| < width}`, exact.
        width: The layer's own SmeLU width when it has one fixed width (a `SmeLU` layer, or
            `"smelu"` with its default width), else None.
        width_share: The share inside the band of its own width, or None.
    """

    layer: str
    activation: str
    kind: Literal["argument", "layer"]
    count: int
    mean: float
    std: float
    abs_quantiles: dict[float, float]
    band_share: dict[float, float]
    width: float | None = None
    width_share: float | None = None


def _fmt(value: float) -> str:
    return f"{value:.3g}"


@dataclasses.dataclass(frozen=True)
class ActivationDiagnostics:
    """The `ActivationStats` of every activation of a model, in model order.

    Iterate over it, index it by position or by layer path, and `print` it for a table.
    """

    layers: tuple[ActivationStats, ...]

    def __iter__(self) -> Iterator[ActivationStats]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, key: int | str) -> ActivationStats:
        if isinstance(key, str):
            for stats in self.layers:
                if stats.layer == key:
                    return stats
            raise KeyError(
                f"No activation at layer {key!r}; layers: {[s.layer for s in self.layers]}"
            )
        return self.layers[key]

    def __str__(self) -> str:
        if not self.layers:
            return "no activations"
        first = self.layers[0]
        header = ["layer", "activation", "std"]
        header += [f"|x| q{level:g}" for level in first.abs_quantiles]
        header += [f"band {width:g}" for width in first.band_share]
        header.append("own width")
        rows = [header]
        for s in self.layers:
            row = [s.layer, s.activation, _fmt(s.std)]
            row += [_fmt(v) for v in s.abs_quantiles.values()]
            row += [f"{v:.0%}" for v in s.band_share.values()]
            row.append("" if s.width is None else f"{s.width:g}: {s.width_share:.0%} in band")
            rows.append(row)
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [
            "  ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
            for row in rows
        ]
        return "\n".join(lines)


def _own_width(activation: Callable[..., Any] | keras.layers.Layer) -> float | None:
    """A single fixed SmeLU width of an activation, when it has one."""
    if isinstance(activation, keras.layers.Activation):
        activation = activation.activation
    if isinstance(activation, SmeLU):
        if not activation.learnable:
            return float(activation.values["beta"])
        beta = keras.ops.convert_to_numpy(activation.parameter_values()["beta"])
        return float(beta) if np.size(beta) == 1 else None
    if activation is _activations.smelu:
        return float(_activations.DEFAULT_BETA)
    return None


class _Accumulator:
    """Running statistics of one site's pre-activations, batch by batch."""

    def __init__(self, widths: np.ndarray, max_values: int, rng: np.random.Generator) -> None:
        self.widths = widths
        self.max_values = max_values
        self.rng = rng
        self.count = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.in_band = np.zeros(widths.shape, dtype=np.int64)
        self.sample = np.empty(0)
        self.keys = np.empty(0)

    def add(self, values: np.ndarray) -> None:
        x = np.asarray(values, dtype=np.float64).ravel()
        magnitude = np.abs(x)
        self.count += x.size
        self.total += float(x.sum())
        self.total_sq += float(np.square(x).sum())
        # One sort, then each width's count is a binary search.
        ordered = np.sort(magnitude)
        self.in_band += np.searchsorted(ordered, self.widths, side="left")
        # Bottom-k sampling on uniform keys: a uniform sample without replacement of all values.
        sample = np.concatenate([self.sample, magnitude])
        keys = np.concatenate([self.keys, self.rng.random(magnitude.size)])
        if sample.size > self.max_values:
            keep = np.argpartition(keys, self.max_values)[: self.max_values]
            sample, keys = sample[keep], keys[keep]
        self.sample, self.keys = sample, keys


class _Sink:
    """Pre-activation batches waiting for their accumulator (not a list: Keras would copy it)."""

    def __init__(self) -> None:
        self.values: list[np.ndarray] = []


class _Recorder(keras.layers.Layer):
    """Applies an activation and hands its (concrete) input to a sink."""

    def __init__(
        self, activation: Callable[..., Any] | keras.layers.Layer, sink: _Sink, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.inner = activation
        self.sink = sink
        self.built = True

    def call(self, inputs: ArrayLike) -> ArrayLike:
        if not isinstance(inputs, keras.KerasTensor):
            self.sink.values.append(keras.ops.convert_to_numpy(inputs))
        return self.inner(inputs)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape


def _batches(
    data: ArrayLike | Mapping[str, ArrayLike] | Sequence[ArrayLike] | Iterable[Any],
    batch_size: int,
    max_rows: int | None,
) -> Iterator[Any]:
    """Model inputs in batches: from arrays (or dicts/lists of them), or a dataset's `x`."""
    if hasattr(data, "as_numpy_iterator") or (
        not isinstance(data, (np.ndarray, dict, list, tuple)) and hasattr(data, "__iter__")
    ):
        rows = 0
        for batch in data:
            x = batch[0] if isinstance(batch, tuple) else batch
            yield x
            rows += len(keras.tree.flatten(x)[0])
            if max_rows is not None and rows >= max_rows:
                return
        return
    arrays = keras.tree.map_structure(np.asarray, data)
    n = len(keras.tree.flatten(arrays)[0])
    if max_rows is not None:
        n = min(n, max_rows)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield keras.tree.map_structure(lambda a, s=start, e=stop: a[s:e], arrays)


def _check_levels(
    values: Sequence[float], name: str, *, low: float, high: float
) -> tuple[float, ...]:
    try:
        levels = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        levels = ()
    if not levels or not all(low < v < high for v in levels):
        raise ValueError(
            f"Argument `{name}` must be a non-empty sequence of numbers in ({low:g}, {high:g}); "
            f"received: {name}={values!r}"
        )
    return levels


def inspect_activations(
    model: keras.Model,
    data: ArrayLike | Mapping[str, ArrayLike] | Sequence[ArrayLike] | Iterable[Any],
    *,
    widths: Sequence[float] = DEFAULT_WIDTHS,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    batch_size: int = 256,
    max_rows: int | None = 4096,
    max_values: int = 200_000,
    seed: int = 0,
) -> ActivationDiagnostics:
    """Measures the pre-activations of every activation of a model on some data.

    For each activation layer, and each layer with a non-linear `activation=`, it records the
    pre-activations `x` (the activation's input) over `data`: their mean and standard
    deviation, quantiles of `|x|`, and for each width `beta` the share `mean(|x| < beta)` of
    values inside SmeLU's quadratic band, where SmeLU is not yet ReLU. A width at which most of
    a layer's values are in the band makes that layer nearly linear: too wide for it.

    The model is run eagerly on a rebuilt copy (with the same weights) in which each activation
    also hands its input over; `model` itself is not changed. Inference mode (`training=False`).

    Args:
        model: A built Sequential or functional `keras.Model` (nested ones included).
        data: Model inputs as `model.predict` takes them (an array, or a dict or list of
            arrays), or an iterable/`tf.data.Dataset` of batches (`x` or `(x, y, ...)`).
        widths: Widths at which to count the share of values inside the band.
        quantiles: Levels in (0, 1) of the recorded `|x|` quantiles.
        batch_size: Batch size for array inputs.
        max_rows: Use at most this many examples (None: all).
        max_values: Quantiles come from a uniform sample of at most this many values per
            activation (counts, mean, std and band shares use every value).
        seed: Seed of that sample.

    Returns:
        An `ActivationDiagnostics`: one `ActivationStats` per activation; `print` shows a table.

    Raises:
        ValueError: for invalid arguments, empty data, or a model it cannot rebuild.

    Example:

    >>> report = inspect_activations(model, x_test)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    >>> auto_width_range(report)  # doctest: +SKIP
    """
    widths_ = np.array(_check_levels(widths, "widths", low=0.0, high=math.inf))
    levels = _check_levels(quantiles, "quantiles", low=0.0, high=1.0)
    for name, value in (("batch_size", batch_size), ("max_values", max_values)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"Argument `{name}` must be an integer >= 1; received: {value!r}")
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
        raise ValueError(
            f"Argument `max_rows` must be None or an integer >= 1; received: {max_rows!r}"
        )
    rng = np.random.default_rng(seed)
    sites: list[tuple[surgery.Site, _Sink, float | None]] = []

    def choose(site: surgery.Site) -> _Recorder | None:
        if surgery.activation_name(site.activation) == "linear":
            return None
        sink = _Sink()
        sites.append((site, sink, _own_width(site.activation)))
        name = site.layer.name if site.kind == "layer" else None
        return _Recorder(site.activation, sink, name=name, dtype=site.layer.dtype_policy)

    probe, _ = surgery.rebuild(model, choose, refuse=lambda site: True)
    accumulators = []
    for _, _, own in sites:
        all_widths = widths_ if own is None else np.append(widths_, own)
        accumulators.append(_Accumulator(all_widths, max_values, rng))
    rows = 0
    for x in _batches(data, batch_size, max_rows):
        probe(x, training=False)
        rows += 1
        for (_, sink, _), acc in zip(sites, accumulators, strict=True):
            for values in sink.values:
                acc.add(values)
            sink.values.clear()
    if rows == 0:
        raise ValueError("Argument `data` holds no examples; received: an empty input")
    results = []
    for (site, _, own), acc in zip(sites, accumulators, strict=True):
        if acc.count == 0:
            continue  # an activation this data never reaches (e.g. an unused branch)
        mean = acc.total / acc.count
        std = math.sqrt(max(acc.total_sq / acc.count - mean * mean, 0.0))
        shares = acc.in_band / acc.count
        results.append(
            ActivationStats(
                layer=site.path,
                activation=surgery.activation_name(site.activation),
                kind=site.kind,
                count=acc.count,
                mean=mean,
                std=std,
                abs_quantiles={level: float(np.quantile(acc.sample, level)) for level in levels},
                band_share=dict(
                    zip(widths_.tolist(), shares[: widths_.size].tolist(), strict=True)
                ),
                width=own,
                width_share=None if own is None else float(shares[-1]),
            )
        )
    return ActivationDiagnostics(tuple(results))


def auto_width_range(
    stats: ActivationDiagnostics | Iterable[ActivationStats],
    *,
    low_share: float = 0.01,
    high_share: float = 0.9,
    bounds: tuple[float, float] = _WIDTH_BOUNDS,
    exclude: Sequence[str] = OUTPUT_ACTIVATIONS,
) -> tuple[float, float]:
    """The range of SmeLU widths worth searching, from the pre-activation scales.

    Rule: with `Q_l(s)` the quantile at level `s` of layer `l`'s `|x|` (so that a width `w`
    puts `mean(|x| < w) = s` of that layer's values inside the band at `w = Q_l(s)`):

    `low = min_l Q_l(low_share)`, `high = max_l Q_l(high_share)`.

    At `low`, no hidden layer has more than `low_share` (1%) of its pre-activations inside the
    band: SmeLU is ReLU in every layer, and smaller widths change nothing. At `high`, every
    hidden layer has at least `high_share` (90%) inside: the network is nearly linear, and
    wider is only more linear. Both are then clamped to `bounds`; if the span is below one
    decade (`high < 10 low`) it is widened to one decade around its geometric centre, so that
    a log-scale search has room.

    Args:
        stats: `inspect_activations`'s result, or `ActivationStats` rows.
        low_share: Band share that defines `low`; a recorded quantile level.
        high_share: Band share that defines `high`; a recorded quantile level.
        bounds: `(min, max)`, `0 < min < max`: the returned range stays inside it.
        exclude: Activation names left out (outputs, not hidden units).

    Returns:
        `(low, high)`, Python floats with `bounds[0] <= low < high <= bounds[1]`.

    Raises:
        ValueError: if no row is left, or a share is not a recorded quantile level.

    Example:

    >>> auto_width_range(inspect_activations(model, x))  # doctest: +SKIP
    (0.004, 1.3)
    """
    rows = [s for s in stats if s.activation not in set(exclude)]
    if not rows:
        raise ValueError(
            "auto_width_range needs the statistics of at least one hidden activation; "
            f"received: {[s.activation for s in stats]} with exclude={list(exclude)}"
        )
    if not 0.0 < low_share < high_share < 1.0:
        raise ValueError(
            "Arguments `low_share` and `high_share` must satisfy 0 < low_share < high_share "
            f"< 1; received: low_share={low_share!r}, high_share={high_share!r}"
        )
    lo_bound, hi_bound = (float(b) for b in bounds)
    if not 0.0 < lo_bound < hi_bound < math.inf or hi_bound < _MIN_SPAN * lo_bound:
        raise ValueError(
            "Argument `bounds` must be (min, max) with 0 < min and max >= 10 * min; "
            f"received: bounds={bounds!r}"
        )
    for share in (low_share, high_share):
        for s in rows:
            if share not in s.abs_quantiles:
                raise ValueError(
                    f"Layer {s.layer!r} has no |x| quantile at level {share!r}; recorded "
                    f"levels: {list(s.abs_quantiles)} (pass `quantiles=` to "
                    "inspect_activations); "
                    f"received: share={share!r}"
                )
    low = min(s.abs_quantiles[low_share] for s in rows)
    high = max(s.abs_quantiles[high_share] for s in rows)
    low = min(max(low, lo_bound), hi_bound)
    high = min(max(high, lo_bound), hi_bound)
    if high < _MIN_SPAN * low:
        centre = math.sqrt(max(low, lo_bound) * max(high, lo_bound))
        half = math.sqrt(_MIN_SPAN)
        low, high = centre / half, centre * half
        # Slide the decade back inside the bounds, keeping its span.
        if low < lo_bound:
            low, high = lo_bound, lo_bound * _MIN_SPAN
        elif high > hi_bound:
            low, high = hi_bound / _MIN_SPAN, hi_bound
    return float(low), float(high)
