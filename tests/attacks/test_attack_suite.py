"""Table-driven properties of every exported attack (budget, bounds, determinism, strength)."""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv
from keras_adv import attacks as A
from keras_adv import norms
from tests.attacks.conftest import accuracy, graph_fn

@keras.saving.register_keras_serializable(package="keras_adv_tests")
def _flatten(x):
    """A differentiable stand-in for Flatten (exact here): BPDA then equals the plain attack."""
    return tf.reshape(x, [tf.shape(x)[0], -1])


# name -> (factory(epsilon), epsilon used for the budget check, norm)
TABLE = {
    "FGSM": (lambda e: A.FGSM(e), 0.3, "linf"),
    "PGD": (lambda e: A.PGD(e, steps=10), 0.3, "linf"),
    "PGD-l2": (lambda e: A.PGD(e, steps=10, norm="l2"), 1.5, "l2"),
    "PGD-l1": (lambda e: A.PGD(e, steps=20, norm="l1", step_size=e / 4), 6.0, "l1"),
    "CarliniWagnerL2": (lambda e: A.CarliniWagnerL2(e, steps=20, binary_search_steps=3, learning_rate=0.1), 1.5, "l2"),
    "SpatialTransformation": (lambda e: A.SpatialTransformation(
        30.0, 1.0, epsilon=e, norm="l2", n_rotations=5, n_translations=3), 2.5, "l2"),
    "APGD": (lambda e: A.APGD(e, steps=10), 0.3, "linf"),
    "APGD-dlr-t": (lambda e: A.APGD(e, loss="dlr", steps=10, n_target_classes=2), 0.3, "linf"),
    "Square": (lambda e: A.Square(e, queries=100), 0.3, "linf"),
    "Square-l2": (lambda e: A.Square(e, queries=100, norm="l2"), 1.5, "l2"),
    "FAB": (lambda e: A.FAB(e, steps=10, n_target_classes=2), 0.3, "linf"),
    "AutoAttack": (lambda e: A.AutoAttack(e, steps=5, queries=20, n_target_classes=1), 0.3, "linf"),
    "BPDA": (lambda e: A.BPDA(A.PGD(e, steps=10), substitutes={"Flatten": _flatten}), 0.3, "linf"),
    "EOT": (lambda e: A.EOT(A.PGD(e, steps=10), samples=2), 0.3, "linf"),
    "VirtualAdversarial": (lambda e: A.VirtualAdversarial(e, xi=1e-3), 2.0, "l2"),
}
# Token-id attacks (HotFlip: `discrete_inputs`) have their own tests (tests/attacks/test_hotflip.py).


def test_table_covers_every_exported_attack():
    exported = {
        name for name in A.__all__
        if inspect.isclass(getattr(A, name)) and issubclass(getattr(A, name), A.Attack)
        and name not in ("Attack", "GradientAttack")
        and not getattr(getattr(A, name), "discrete_inputs", False)  # token ids: tests/attacks/test_hotflip.py
        and not issubclass(getattr(A, name), A.ConstrainedAttack)  # tabular: tests/attacks/test_tabular_attacks.py
    }
    covered = {type(f(0.1)).__name__ for f, _, _ in TABLE.values()}
    assert exported <= covered, exported - covered


@pytest.mark.parametrize("name", sorted(TABLE))
def test_budget_bounds_determinism_strength(name, digits_cnn):
    model, x, y, _ = digits_cnn
    factory, eps, norm = TABLE[name]
    attack = factory(eps)
    fn = graph_fn(attack, model)
    x_adv = fn(x, y)
    # Budget and bounds.
    dist = norms.get(norm).distance(x_adv, x).numpy()
    assert dist.max() <= eps * (1 + 1e-5) + 1e-6, (name, dist.max())
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    # Determinism under a seed.
    np.testing.assert_array_equal(fn(x, y), x_adv)
    # Stronger than nothing: accuracy on these (correctly classified) points drops a lot.
    assert accuracy(model, x, y) == 1.0
    assert accuracy(model, x_adv, y) <= 0.5, name


@pytest.mark.parametrize("name", sorted(TABLE))
def test_serialization_round_trip(name):
    import keras

    attack = TABLE[name][0](0.25)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(attack))
    assert type(restored) is type(attack)
    assert restored.get_config() == attack.get_config()


@pytest.mark.parametrize("name", ["PGD", "CarliniWagnerL2", "APGD", "Square", "FAB", "SpatialTransformation"])
def test_targeted_without_targets_is_a_clear_error(name, digits_cnn):
    model, x, _, _ = digits_cnn
    cls = getattr(A, name)
    attack = cls(0.1, targeted=True) if name not in ("CarliniWagnerL2", "SpatialTransformation") else cls(targeted=True)
    with pytest.raises(ValueError, match="target"):
        attack(model, x[:2], None)


def test_top_level_exports():
    assert keras_adv.layers.SpatialTransform is not None
    for name in ("CarliniWagnerL2", "SpatialTransformation", "APGD", "Square", "FAB", "AutoAttack"):
        assert name in A.__all__


@pytest.mark.parametrize("name", sorted(TABLE))
def test_runs_eagerly_too(name, digits_cnn):
    import tensorflow as tf

    model, x, y, _ = digits_cnn
    factory, eps, norm = TABLE[name]
    x_adv = factory(eps)(model, x[:4], y[:4], seed=tf.constant([5, 6])).numpy()
    assert x_adv.shape == x[:4].shape
    assert norms.get(norm).distance(x_adv, x[:4]).numpy().max() <= eps * (1 + 1e-5) + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
