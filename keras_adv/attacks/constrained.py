"""`ConstrainedAttack`: the base of attacks on tabular records described by a `FeatureSpace`.

The feature space (`domain=`) replaces the scalar `bounds` of image attacks: it
checks the inputs (naming the offending feature), projects every result onto
the scaled ε-ball of the budgeted features, repairs it (bounds, immutable
features, integers, one-hot groups, derived features) and, as a last guard,
returns the clean record wherever a result would still break a relation.

Dict inputs (`{"name": (batch,) tensor, ...}`, as `keras.utils.FeatureSpace`
produces them for functional models with several named inputs) are attacked
through a flat view of the features the domain names; the other entries
(strings, lookups, immutable categories) pass through untouched.
"""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

_no_autograph = tf.autograph.experimental.do_not_convert  # no Python control flow on tensors here

from keras_adv.attacks.attack import Attack
from keras_adv.domains.feature_space import FeatureSpace

__all__ = ["ConstrainedAttack"]


def _get_domain(domain):
    if isinstance(domain, dict):
        domain = keras.saving.deserialize_keras_object(domain)
    if not isinstance(domain, FeatureSpace):
        raise TypeError(
            "`domain` must be a keras_adv.domains.FeatureSpace (e.g. "
            f"FeatureSpace.from_data(x_train)), got {type(domain).__name__}: {domain!r}."
        )
    return domain


class ConstrainedAttack(Attack):
    """Base class of attacks whose inputs are tabular records in a `keras_adv.domains.FeatureSpace`.

    Args:
        epsilon: budget ε on the scaled, budgeted features (see `FeatureSpace`).
        domain: the `FeatureSpace` of valid records.
        norm: `"linf"` (default) or `"l2"`.
        **kwargs: `targeted`, `loss`, `seed`, `check_inputs`, `name` (see `Attack`).
    """

    accepts_dict_inputs = True
    supported_norms = ("linf", "l2")

    def __init__(self, *, epsilon: Optional[float], domain: FeatureSpace, norm="linf", **kwargs):
        if kwargs.get("bounds") is not None:
            raise ValueError(f"{type(self).__name__} takes its per-feature bounds from `domain` (a FeatureSpace); "
                             "do not pass `bounds`.")
        kwargs.pop("bounds", None)
        super().__init__(epsilon=epsilon, norm=norm, domain=_get_domain(domain), **kwargs)

    def __call__(self, model, x, y, *, epsilon=None, seed=None, loss=None):
        if isinstance(x, dict):
            space = self.domain
            flat = space.flatten(x)
            inputs = x

            def flat_model(z, training=False):
                return model(space.unflatten(z, inputs), training=training)

            adv = super().__call__(flat_model, flat, y, epsilon=epsilon, seed=seed, loss=loss)
            return {k: tf.stop_gradient(v) for k, v in space.unflatten(adv, inputs).items()}
        return super().__call__(model, x, y, epsilon=epsilon, seed=seed, loss=loss)

    def _validate_x(self, x):
        self.domain.check_columns(x)
        if isinstance(x, np.ndarray) and not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"`x` must hold floating-point records, got dtype {x.dtype}; "
                            "cast the table first, e.g. `x.astype('float32')`.")
        x = tf.convert_to_tensor(x)
        if x.shape.rank != 2 or x.shape[-1] != self.domain.n_features:
            got = (f"records of {x.shape[-1]} features" if x.shape.rank == 2 else f"shape {x.shape}")
            raise ValueError(
                f"`x` must have shape (batch, {self.domain.n_features}) to match the attack's `domain` "
                f"({self.domain.n_features} features), got {got}."
            )
        return super()._validate_x(x)

    @_no_autograph
    def enforce_budget(self, x, x_adv, epsilon):
        """Projects and repairs into the domain; any record still invalid falls back to `x`.

        A budget of 0 leaves every record unchanged: a free one-hot switch (see
        docs/tabular.md, "Budget") needs ε > 0, so robust accuracy at ε = 0 is
        clean accuracy for every attack, as on images.
        """
        x_adv = self.domain.budget_project(x, tf.cast(x_adv, x.dtype), epsilon, self.norm)
        valid = self.domain.is_valid(x_adv, x, epsilon, self.norm)
        valid = valid & (tf.cast(epsilon, tf.float32) > 0.0)
        return tf.where(valid[:, None], x_adv, x)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["domain"] = _get_domain(config["domain"])
        return super().from_config.__func__(cls, config)
