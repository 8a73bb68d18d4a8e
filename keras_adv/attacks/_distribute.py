"""Attacking one batch under a `tf.distribute` strategy (`strategy=` of `generate` and `evaluate_robustness`).

The evaluator and `Attack.generate` attack a stream batch by batch through
`Attack.batch_function`. With `strategy=`, that one function is replaced by
the one built here: each batch is split into contiguous per-replica parts
(`strategy.experimental_distribute_values_from_function`), every replica
attacks its part inside one `tf.function` (`strategy.run`) with the batch's
seed folded with its replica id (`keras_adv._compat.replica_seed`, the fold
multi-worker training uses), and the parts are gathered back in order
(`strategy.gather`), so everything downstream (AutoAttack's still-robust
bookkeeping, the report) is the very code of a run without a strategy.

Why per batch and not `strategy.experimental_distribute_dataset`: the stream
already arrives as numbered batches (the global batch index fixes the seed and
the shard), and must stay one stream for `shard=`, `max_examples` and the
report's example keys. Splitting each batch keeps that bookkeeping in one
place; distributing the dataset would duplicate it per replica.
"""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

from keras_adv import _compat
from keras_adv.attacks._tracing import _compile

__all__ = ["check_strategy", "batch_function"]

# attack -> model -> {strategy: compiled step}; weak, so nothing here keeps an attack or a model alive.
_STEPS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def check_strategy(strategy):
    """Validates `strategy=`: None or a `tf.distribute.Strategy` whose `run` executes replicas in sync."""
    if strategy is None:
        return None
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(
            "`strategy` must be a tf.distribute.Strategy (e.g. tf.distribute.MirroredStrategy() or "
            f"MultiWorkerMirroredStrategy()) or None, got {type(strategy).__name__}: {strategy!r:.80}."
        )
    if isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy):
        raise ValueError(
            "`strategy` cannot be a ParameterServerStrategy: attacks run in sync on every replica; use "
            "MirroredStrategy / MultiWorkerMirroredStrategy, or `shard=(index, count)` per worker."
        )
    return strategy


def batch_function(attack, model, strategy):
    """`fn(x, y, epsilon, seed) -> x_adv` like `Attack.batch_function`, run across `strategy`'s replicas.

    Replica `r` of `R` attacks examples `[r·n//R, (r+1)·n//R)` of a batch of
    `n` with `replica_seed(seed)`; a replica whose part is empty (n < R)
    returns it unchanged. With one replica the seed is not folded, so the
    result is that of the plain batch function.
    """
    strategy = check_strategy(strategy)
    per_model = _STEPS.setdefault(attack, weakref.WeakKeyDictionary())
    steps = per_model.setdefault(model, {})
    step = steps.get(strategy)
    if step is None:
        step = steps[strategy] = _step(weakref.ref(attack), weakref.ref(model), strategy)
    replicas = int(strategy.num_replicas_in_sync)
    own = attack.epsilon

    def call(xb, yb, epsilon, seed):
        # Inputs checked eagerly (clear errors) before they are split.
        x = attack._validate_x(xb if tf.is_tensor(xb) else np.asarray(xb))
        y = attack._validate_y(yb, x)
        x, y = x.numpy(), y.numpy()
        eps = own if epsilon is None else epsilon
        eps = None if eps is None else tf.constant(float(eps), tf.float32)
        edges = [r * len(x) // replicas for r in range(replicas + 1)]

        def split(v):
            return strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.constant(v[edges[ctx.replica_id_in_sync_group]:
                                          edges[ctx.replica_id_in_sync_group + 1]]))

        return step(split(x), split(y), eps, tf.convert_to_tensor(seed))

    return call


def _step(attack_ref, model_ref, strategy):
    def replica(x, y, epsilon, seed):
        attack = attack_ref()
        seed = _compat.replica_seed(seed)

        def run():
            return tf.cast(attack(model_ref(), x, y, epsilon=epsilon, seed=seed), x.dtype)

        return tf.cond(tf.shape(x)[0] > 0, run, lambda: tf.identity(x))

    def step(x, y, epsilon, seed):
        return strategy.gather(strategy.run(replica, args=(x, y, epsilon, seed)), axis=0)

    return _compile(step)
