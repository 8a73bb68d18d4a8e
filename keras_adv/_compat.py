"""The one module where keras_adv depends on version-specific Keras/TensorFlow behaviour.

Everything else in the package uses the public Keras 3 and TensorFlow API only
(`grep -rn "keras.src" keras_adv` lists this module or nothing). What lives here:

* `MIN_KERAS` / `MIN_TENSORFLOW` and `check_versions()`: `import keras_adv` on an
  older release fails with one line naming the version it needs. The floors
  were measured with `scripts/check_min_versions.sh` (results in
  `docs/compatibility.md`).
* Loss scaling under `tf.distribute`: from Keras 3.8 on, a compiled Keras loss
  divides its value by the number of replicas (so that the optimizer's SUM
  all-reduce yields the global mean gradient); before 3.8 it did not. The
  wrapper computes *true* per-replica losses from either and scales its total
  itself, so the logged values and gradients are the same on every version.
  Public API only (`keras.__version__`, `tf.distribute`), but version-specific.
* `replica_id()`, `replica_seed(seed)`: the replica's index, and a seed folded with it
  (per-replica random starts in training and in `strategy=` evaluation).
* `multi_worker_fit(model)`: the one private hook, a version-guarded
  workaround for keras-team/keras#20585 so that Keras' own `fit` runs under
  `MultiWorkerMirroredStrategy` (see its docstring).
* `intercept_layer_output()`: adds a perturbation to an inner layer's output
  while a model runs (text models: `perturb_layer="embedding"`).

Other modules may add a clearly separated function here, with the versions it
was verified on.
"""

from __future__ import annotations

import contextlib
import os
import re

import keras
import tensorflow as tf

__all__ = [
    "MIN_KERAS",
    "MIN_TENSORFLOW",
    "check_versions",
    "has_accelerator",
    "num_replicas",
    "replica_id",
    "replica_seed",
    "keras_loss_scale",
    "multi_worker_fit",
    "version_tuple",
    "intercept_layer_output",
]

# Measured floors (scripts/check_min_versions.sh; docs/compatibility.md).
MIN_KERAS = "3.8.0"
MIN_TENSORFLOW = "2.16.1"


def version_tuple(version: str) -> tuple:
    """`"3.15.1"` -> `(3, 15, 1)`; pre-release suffixes are ignored."""
    parts = []
    for piece in str(version).split(".")[:3]:
        match = re.match(r"\d+", piece)
        parts.append(int(match.group()) if match else 0)
    return tuple(parts + [0] * (3 - len(parts)))


KERAS_VERSION = version_tuple(keras.__version__)
TF_VERSION = version_tuple(tf.__version__)


def check_versions() -> None:
    """Raises `ImportError` (one line) when Keras or TensorFlow is older than the floor.

    `KERAS_ADV_SKIP_VERSION_CHECK=1` skips it (used by scripts/check_min_versions.sh
    to measure the floor on older releases).
    """
    if os.environ.get("KERAS_ADV_SKIP_VERSION_CHECK") == "1":
        return
    if KERAS_VERSION < version_tuple(MIN_KERAS):
        raise ImportError(
            f"keras_adv needs keras>={MIN_KERAS}, found keras {keras.__version__}: "
            f"pip install -U 'keras>={MIN_KERAS}'"
        )
    if TF_VERSION < version_tuple(MIN_TENSORFLOW):
        raise ImportError(
            f"keras_adv needs tensorflow>={MIN_TENSORFLOW}, found tensorflow {tf.__version__}: "
            f"pip install -U 'tensorflow>={MIN_TENSORFLOW}'"
        )


def has_accelerator() -> bool:
    """Whether TensorFlow sees a GPU or TPU (public `tf.config`)."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


# ------------------------------------------------------------ tf.distribute
def num_replicas() -> int:
    """Replicas in sync under the current strategy (1 outside any strategy)."""
    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def replica_id():
    """This replica's index in its sync group (an int or scalar tensor; 0 outside a strategy)."""
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context
        return 0
    return context.replica_id_in_sync_group


def replica_seed(seed):
    """`seed` folded with the replica id under a strategy with several replicas; unchanged otherwise.

    Replicas of one step then draw *different* random starts (multi-worker
    training, `strategy=` evaluation) while one replica keeps the plain seed.
    """
    if num_replicas() > 1:
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(replica_id(), tf.int32))
    return seed


def keras_loss_scale() -> float:
    """The factor a compiled Keras loss applies to its value under the current strategy.

    Keras >= 3.8 divides by the replica count (`keras.losses.Loss.__call__`
    calls `scale_loss_for_distribution`); 3.0-3.7 did not (read in the sources of
    3.0.0, 3.5.0, 3.7.0, 3.8.0; run on 3.15.1 in tests/models/test_distribute.py and
    tests/models/test_multi_worker.py).
    """
    replicas = num_replicas()
    if replicas > 1 and KERAS_VERSION >= (3, 8, 0):
        return 1.0 / replicas
    return 1.0


# ------------------------------------------- multi-worker fit (keras#20585)
def _is_multi_worker(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


@contextlib.contextmanager
def multi_worker_fit(model):
    """Lets Keras' own `fit`/`evaluate` run under `MultiWorkerMirroredStrategy`.

    Keras' TensorFlow trainer fails there even for a plain `keras.Sequential`
    (keras-team/keras#20585, open since TF 2.16): (1) `_maybe_symbolic_build`
    reduces a `PerReplica` batch eagerly with `strategy.reduce("MEAN", ...)`,
    which cannot convert it to a tensor; (2) `reduce_per_replica` reduces the
    step's scalar logs with `strategy.reduce("MEAN", v, axis=0)`, an invalid axis
    for a scalar. For the duration of one `fit`/`evaluate` call of `model` (and
    only under that strategy), this (1) builds the model symbolically from this
    worker's first local batch (only its shapes matter) and (2) reduces the logs
    with `axis=None` (a mean across replicas; the metric variables are already
    aggregated across replicas, so the values agree). Nothing else changes.

    Private hooks, hence here: `keras.src.backend.tensorflow.trainer`'s
    `reduce_per_replica` and `TensorFlowTrainer._maybe_symbolic_build` /
    `_symbolic_build`. Verified on Keras 3.15.1 with TF 2.21 (two workers on
    localhost, tests/models/test_multi_worker.py). Where those names do not
    exist (a Keras that restructured its trainer) nothing is patched. Remove
    when keras-team/keras#20585 is fixed.
    """
    strategy = model.distribute_strategy
    if not _is_multi_worker(strategy):
        yield
        return
    import importlib

    trainer_module = importlib.import_module("keras.src.backend.tensorflow.trainer")
    original_reduce = getattr(trainer_module, "reduce_per_replica", None)
    symbolic_build = getattr(model, "_symbolic_build", None)
    if original_reduce is None or symbolic_build is None or not hasattr(model, "_maybe_symbolic_build"):
        yield
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and _is_multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues) else v,
                    batch,
                )
                break
        with strategy.scope():
            symbolic_build(data_batch=data_batch)

    trainer_module.reduce_per_replica = reduce_per_replica
    model.__dict__["_maybe_symbolic_build"] = maybe_symbolic_build
    try:
        yield
    finally:
        trainer_module.reduce_per_replica = original_reduce
        model.__dict__.pop("_maybe_symbolic_build", None)
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
