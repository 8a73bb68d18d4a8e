"""The one place for hooks into Keras/TensorFlow behaviour beyond their documented API.

Each function says what it relies on and the versions it was verified on.
"""

from __future__ import annotations

import contextlib

__all__ = ["intercept_layer_output"]


# --------------------------------------------------------------------------
# Inner-layer perturbation (text helper). Verified on Keras 3.15 / TF 2.21.
# Relies on: `Layer.__call__` running the layer through the attribute
# `self.call` (keras/src/ops/operation.py `Operation.__call__` and
# keras/src/layers/layer.py), for eager, traced and functional execution,
# and on an instance attribute shadowing the class's `call`. Masks are still
# computed by `Layer.__call__` around it, so downstream masking is unchanged.
# --------------------------------------------------------------------------
@contextlib.contextmanager
def intercept_layer_output(layer, hook):
    """While active, `layer`'s output `out` becomes `hook(out, args, kwargs)`.

    Works for layers of Sequential, functional and subclassed models, in
    eager mode and while a `tf.function` traces (the hook is then part of
    that trace only). Not re-entrant per layer: nested use raises.
    """
    if "call" in vars(layer):
        raise RuntimeError(
            f"Layer {layer.name!r} is already intercepted (or has an instance-level `call`); "
            "inner-layer perturbations cannot be nested."
        )
    original = layer.call

    def call(*args, **kwargs):
        return hook(original(*args, **kwargs), args, kwargs)

    object.__setattr__(layer, "call", call)
    try:
        yield
    finally:
        object.__delattr__(layer, "call")
