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

    def __init__(self, *, epsilon: Optional[float], domain: FeatureSpace, norm="linf", **kwargs):
        kwargs.pop("bounds", None)  # the domain holds the per-feature bounds
        super().__init__(epsilon=epsilon, norm=norm, **kwargs)
        self.domain = _get_domain(domain)
        if self.norm.name not in ("linf", "l2"):
            raise ValueError(f"{type(self).__name__} supports norm 'linf' or 'l2', got {self.norm.name!r}.")

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

    @_no_autograph
    def _validate_x(self, x):
        if not tf.is_tensor(x):
            x = tf.convert_to_tensor(x)
        if not x.dtype.is_floating:
            raise TypeError(f"`x` must hold floating-point records, got dtype {x.dtype.name}; "
                            "cast the table first, e.g. `x.astype('float32')`.")
        x = tf.cast(x, tf.float32)
        if x.shape.rank != 2 or x.shape[-1] != self.domain.n_features:
            raise ValueError(
                f"`x` must have shape (batch, {self.domain.n_features}) to match the attack's `domain` "
                f"({self.domain.n_features} features), got shape {x.shape}."
            )
        if self.check_inputs:
            x = self.domain.check(x, argument="x")
        return x

    @_no_autograph
    def enforce_budget(self, x, x_adv, epsilon):
        """Projects and repairs into the domain; any record still invalid falls back to `x`."""
        x_adv = self.domain.budget_project(x, tf.cast(x_adv, x.dtype), epsilon, self.norm)
        valid = self.domain.is_valid(x_adv, x, epsilon, self.norm)
        return tf.where(valid[:, None], x_adv, x)

    def clip(self, x):
        lo = tf.constant(self.domain.lower, x.dtype)
        hi = tf.constant(self.domain.upper, x.dtype)
        return tf.clip_by_value(x, lo, hi)

    def is_valid_success(self, x_adv, x, y, outputs, epsilon):
        """Per example: the attack succeeded *and* the record is valid in the domain."""
        return self.is_successful(outputs, y) & self.domain.is_valid(x_adv, x, epsilon, self.norm)

    def get_config(self):
        config = super().get_config()
        config.pop("bounds")
        config["domain"] = keras.saving.serialize_keras_object(self.domain)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["domain"] = _get_domain(config["domain"])
        return super().from_config.__func__(cls, config)
