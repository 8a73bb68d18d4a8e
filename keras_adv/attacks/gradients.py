"""The one input-gradient helper of keras_adv, and its error.

Every place that differentiates a model's output with respect to an input
(attacks, gradient-masking diagnostics, ...) calls `value_and_gradient`, so the
"model has no gradient" case is detected, worded and typed in one place:
`NoInputGradientError`, a `ValueError` that evaluators catch to report
gradient masking instead of crashing.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import tensorflow as tf

__all__ = ["NoInputGradientError", "value_and_gradient"]

_DEFAULT_HINT = (
    "Use a gradient-free attack such as keras_adv.attacks.Square, or make the model "
    "differentiable (e.g. a straight-through estimator / BPDA, Athalye et al. 2018)."
)


class NoInputGradientError(ValueError):
    """The model has no gradient with respect to its input.

    Raised when a non-differentiable op (rounding, argmax, `tf.stop_gradient`,
    a cast to an integer type, ...) lies between the input and the output, so
    first-order attacks cannot run. `keras_adv.evaluate_robustness` catches it
    and reports the attack as not applicable with a `no_gradient` warning.
    """


def value_and_gradient(fn: Callable, x, *, name: Optional[str] = None, wrt: str = "its input `x`",
                       hint: Optional[str] = None, sources: Sequence = ()):
    """`(fn(x), ∇ₓ Σ fn(x))`: the value of `fn` and the gradient of its sum w.r.t. `x`.

    Args:
        fn: `fn(x)` returns a `(batch,)` tensor to differentiate (summed), or a
            tuple whose first item is that tensor (the rest is passed through).
        x: the tensor to differentiate with respect to (an input, or the
            parameters a candidate input is built from).
        name: the caller's name for the error message (e.g. the attack's class).
        wrt: what `x` is, for the error message.
        hint: what to do instead, for the error message.
        sources: more tensors/variables to differentiate in the same backward
            pass (free adversarial training takes the weight and the input
            gradients of one loss together).

    Returns:
        `(value, grad)`: what `fn(x)` returned and a gradient shaped like `x`;
        with `sources`, `(value, grad, source_grads)`.

    Raises:
        NoInputGradientError: the gradient is `None` (no differentiable path).
    """
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = fn(x)
        total = tf.reduce_sum(value[0] if isinstance(value, tuple) else value)
    sources = list(sources)
    grads = tape.gradient(total, [x] + sources)
    grad = grads[0]
    if grad is None:
        prefix = f"{name}: the model" if name else "The model"
        raise NoInputGradientError(
            f"{prefix} has no gradient with respect to {wrt} (a non-differentiable op such as "
            "rounding, argmax or stop_gradient lies between input and output). "
            + (hint or _DEFAULT_HINT)
        )
    return (value, grad, grads[1:]) if sources else (value, grad)
