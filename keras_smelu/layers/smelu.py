"""The SmeLU layer: a configured, or learnable, width."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras

from keras_smelu import activations
from keras_smelu.activations import DEFAULT_BETA, check_width
from keras_smelu.layers._parametric import ParametricActivation

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


@keras.saving.register_keras_serializable(package="keras_smelu")
class SmeLU(ParametricActivation):
    """Smooth reLU activation layer, with a fixed or a learnable half-width.

    Formula:
    ``` python
    f(x) = 0                          if x <= -beta
    f(x) = (x + beta)**2 / (4 * beta) if -beta < x < beta
    f(x) = x                          if x >= beta
    ```

    Use it as a layer or as the `activation` of `Dense`/`Conv*`:
    `keras.layers.Dense(64, activation=keras_smelu.SmeLU(beta=0.5))`.

    Args:
        beta: Half-width of the quadratic band, `>= 0` (`0` is ReLU; a learnable width must
            be `> 0`): a number, or a 0-d NumPy array or tensor (stored as a float). Defaults
            to `keras_smelu.activations.DEFAULT_BETA` (0.5). Widths at the edges of the
            input's dtype behave as in `keras_smelu.activations.smelu`.
        learnable: If True, `beta` is a weight trained with the model, stored as `log(beta)` so
            that it stays positive at every step. `trainable` keeps Keras's meaning.
        per_unit: With `learnable`, one width per unit (as in `keras.layers.PReLU`) instead
            of one per layer.
        shared_axes: With `per_unit`, the axes that share a width (e.g. `[1, 2]` for one per
            channel after a `Conv2D`).
        beta_initializer: Initializer of the width, in width units. Defaults to
            `Constant(beta)`.
        beta_regularizer: Regularizer applied to the width (not its logarithm).
        beta_constraint: Constraint applied to the width after each update; results below
            1e-6 are raised to 1e-6.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Example:

    >>> layer = keras_smelu.SmeLU(beta=0.5)
    >>> layer(keras.ops.convert_to_tensor([-1.0, 0.0, 1.0]))  # doctest: +SKIP
    [0.0, 0.125, 1.0]

    Reference:
        - [Shamir et al., 2020](https://arxiv.org/abs/2010.09931)
    """

    PARAMETERS = (("beta", True),)

    def __init__(
        self,
        beta: float | ArrayLike = DEFAULT_BETA,
        learnable: bool = False,
        per_unit: bool = False,
        shared_axes: int | Sequence[int] | None = None,
        beta_initializer: str | keras.initializers.Initializer | None = None,
        beta_regularizer: str | keras.regularizers.Regularizer | None = None,
        beta_constraint: str | keras.constraints.Constraint | None = None,
        **kwargs: Any,
    ) -> None:
        beta = check_width(beta, "beta", allow_zero=not learnable)
        super().__init__(
            {"beta": beta},
            learnable=learnable,
            per_unit=per_unit,
            shared_axes=shared_axes,
            beta_initializer=beta_initializer,
            beta_regularizer=beta_regularizer,
            beta_constraint=beta_constraint,
            **kwargs,
        )

    def activation(self, inputs: ArrayLike, beta: float | ArrayLike) -> ArrayLike:
        return activations.smelu(inputs, beta)
