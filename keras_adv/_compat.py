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
* `replica_id()`: the replica's index, used to fold per-replica random starts.

Other modules may add a clearly separated function here, with the versions it
was verified on.
"""

from __future__ import annotations

import re

import keras
import tensorflow as tf

__all__ = [
    "MIN_KERAS",
    "MIN_TENSORFLOW",
    "check_versions",
    "num_replicas",
    "replica_id",
    "keras_loss_scale",
    "version_tuple",
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
    """Raises `ImportError` (one line) when Keras or TensorFlow is older than the floor."""
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


def keras_loss_scale() -> float:
    """The factor a compiled Keras loss applies to its value under the current strategy.

    Keras >= 3.8 divides by the replica count (`keras.losses.Loss.__call__`
    calls `scale_loss_for_distribution`); 3.0-3.7 did not. Verified on Keras
    3.7.0, 3.8.0 and 3.15.1 (source and tests/models/test_distribute.py).
    """
    replicas = num_replicas()
    if replicas > 1 and KERAS_VERSION >= (3, 8, 0):
        return 1.0 / replicas
    return 1.0
