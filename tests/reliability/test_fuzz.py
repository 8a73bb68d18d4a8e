"""Property-based fuzzing (hypothesis) of every exported attack and norm.

For random input shapes, batch sizes, ε, bounds, seeds and input dtypes, every
attack's result has the input's shape and dtype, is finite, lies inside the
bounds and within ε of the input in the attack's norm; every norm's projection
lands in the ball and its random start inside it.

Profiles: the default run draws `KERAS_ADV_FUZZ_EXAMPLES` examples per attack
(default 5, eager calls on a random linear classifier); the slow test
`test_attack_guarantees_long_profile` draws 20× more (run it with `-m slow`,
or set the variable).
"""

import os

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_adv as ka
from keras_adv import norms

EXAMPLES = int(os.environ.get("KERAS_ADV_FUZZ_EXAMPLES", "5"))
SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
                database=None)


class Linear:
    """A random linear classifier on the flattened input (float32 inside, any float dtype outside)."""

    def __init__(self, features, classes, seed):
        rng = np.random.default_rng(seed)
        self.w = tf.constant(rng.normal(size=(features, classes)).astype("float32"))
        self.b = tf.constant(rng.normal(size=(classes,)).astype("float32"))

    def __call__(self, x, training=False):
        flat = tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1])
        return tf.matmul(flat, self.w) + self.b


def _make(name, eps, norm, bounds, seed):
    common = dict(bounds=bounds, seed=seed)
    if name == "FGSM":
        return ka.attacks.FGSM(epsilon=eps, norm=norm, random_start=bool(seed % 2), **common)
    if name == "PGD":
        return ka.attacks.PGD(epsilon=eps, norm=norm, steps=3, restarts=1 + seed % 2, **common)
    if name == "APGD":
        return ka.attacks.APGD(epsilon=eps, norm=norm, steps=3, loss=("ce", "dlr")[seed % 2], **common)
    if name == "Square":
        return ka.attacks.Square(epsilon=eps, norm=norm, queries=8, **common)
    if name == "FAB":
        return ka.attacks.FAB(epsilon=eps, norm=norm, steps=3, n_target_classes=2, **common)
    if name == "AutoAttack":
        return ka.attacks.AutoAttack(epsilon=eps, norm=norm, steps=2, queries=4, n_target_classes=2, **common)
    if name == "CarliniWagnerL2":
        return ka.attacks.CarliniWagnerL2(epsilon=eps if seed % 2 else None, steps=3, binary_search_steps=2,
                                          **common)
    if name == "SpatialTransformation":
        return ka.attacks.SpatialTransformation(max_rotation=20.0, max_translation=1.0, n_rotations=3,
                                                n_translations=3, **common)
    if name == "VirtualAdversarial":
        return ka.attacks.VirtualAdversarial(epsilon=eps, norm=norm, **common)
    if name == "EOT":  # the wrapper keeps its inner attack's guarantees
        return ka.attacks.EOT(ka.attacks.PGD(epsilon=eps, norm=norm, steps=2, **common), samples=2)
    raise AssertionError(name)


ATTACKS = ["FGSM", "PGD", "APGD", "Square", "FAB", "AutoAttack", "CarliniWagnerL2", "SpatialTransformation",
           "VirtualAdversarial", "EOT"]
NORMS = {"FGSM": ["linf", "l2", "l1"], "PGD": ["linf", "l2", "l1"], "APGD": ["linf", "l2"],
         "Square": ["linf", "l2"], "FAB": ["linf", "l2"], "AutoAttack": ["linf", "l2"],
         "CarliniWagnerL2": ["l2"], "SpatialTransformation": ["linf"],
         "VirtualAdversarial": ["l2"], "EOT": ["linf", "l2", "l1"]}


# Tabular attacks that landed with keras_adv.domains at the end of the session: they need a FeatureSpace
# strategy (mutable masks, integer and categorical features); not fuzzed yet (docs/reliability.md).
NOT_YET_FUZZED = ("CAPGD", "ConstrainedAttack", "ConstrainedAutoAttack", "Evolutionary",
                  # BPDA substitutes named layers of a Keras model (this fuzz model is a plain callable);
                  # HotFlip attacks integer token ids, not a float box: both have their own property tests.
                  "BPDA", "HotFlip")


def test_every_exported_attack_is_fuzzed():
    exported = {name for name in ka.attacks.__all__
                if isinstance(getattr(ka.attacks, name), type) and issubclass(getattr(ka.attacks, name), ka.attacks.Attack)
                and name not in ("Attack", "GradientAttack") + NOT_YET_FUZZED}
    assert exported <= set(ATTACKS), exported - set(ATTACKS)


@st.composite
def cases(draw, name):
    images = name in ("SpatialTransformation", "Square", "AutoAttack") or draw(st.booleans())  # Square: images only
    batch = draw(st.integers(1, 4))
    if images:
        shape = (batch, draw(st.integers(4, 7)), draw(st.integers(4, 7)), draw(st.sampled_from([1, 3])))
    else:
        shape = (batch, draw(st.integers(1, 12)))
    lo = draw(st.floats(-2.0, 1.0, allow_nan=False))
    width = draw(st.floats(0.1, 4.0, allow_nan=False))
    bounds = (lo, lo + width)
    norm = draw(st.sampled_from(NORMS[name]))
    eps = draw(st.floats(0.0, 1.5 * width, allow_nan=False)) * (1.0 if norm == "linf" else 3.0)
    seed = draw(st.integers(0, 2**16))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    # DLR losses (APGD-DLR, AutoAttack) need >= 4 classes and say so with a clear error.
    classes = draw(st.integers(4 if name in ("APGD", "AutoAttack") else 2, 6))
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, lo + width, size=shape).astype(dtype)
    if draw(st.booleans()):  # some inputs exactly on the bounds
        x.reshape(-1)[:: 3] = bounds[int(seed % 2)]
    y = rng.integers(0, classes, size=batch).astype("int32")
    return dict(x=x, y=y, bounds=bounds, norm=norm, eps=eps, seed=seed, classes=classes)


def _check_attack(name, case):
    x, bounds, norm_name = case["x"], case["bounds"], case["norm"]
    model = Linear(int(np.prod(x.shape[1:])), case["classes"], case["seed"])
    attack = _make(name, case["eps"], norm_name, bounds, case["seed"])
    x_adv = attack(model, x, case["y"])
    assert x_adv.shape == x.shape
    assert x_adv.dtype == tf.as_dtype(x.dtype)
    x_adv = x_adv.numpy().astype("float64")
    assert np.isfinite(x_adv).all()
    tol = 1e-5 * max(1.0, abs(bounds[0]), abs(bounds[1]))
    assert x_adv.min() >= bounds[0] - tol and x_adv.max() <= bounds[1] + tol
    if attack.epsilon is not None:
        delta = (x_adv - x.astype("float64")).reshape(len(x), -1)
        size = {"linf": np.abs(delta).max(1), "l2": np.sqrt((delta ** 2).sum(1)),
                "l1": np.abs(delta).sum(1)}[norm_name]
        assert (size <= attack.epsilon * (1 + 1e-5) + tol).all(), (size, attack.epsilon)


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_guarantees(name):
    @settings(max_examples=EXAMPLES, **SETTINGS)
    @given(cases(name))
    def run(case):
        _check_attack(name, case)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("name", ATTACKS)
def test_attack_guarantees_long_profile(name):
    @settings(max_examples=20 * EXAMPLES, **SETTINGS)
    @given(cases(name))
    def run(case):
        _check_attack(name, case)

    run()


@pytest.mark.parametrize("norm_name", ["linf", "l2", "l1"])
@settings(max_examples=4 * EXAMPLES, **SETTINGS)
@given(shape=st.lists(st.integers(1, 6), min_size=2, max_size=4), eps=st.floats(0.0, 5.0),
       scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_norm_guarantees(norm_name, shape, eps, scale, seed):
    norm = norms.get(norm_name)
    rng = np.random.default_rng(seed)
    delta = tf.constant((scale * rng.normal(size=shape)).astype("float32"))
    projected = norm.project(delta, eps).numpy()
    assert projected.shape == tuple(shape) and np.isfinite(projected).all()
    size = norm.norm(tf.constant(projected)).numpy()
    # float32 rounding of inputs of magnitude `scale` (the projection subtracts a threshold from them)
    assert (size <= eps * (1 + 1e-5) + 1e-6 * max(1.0, scale)).all(), (size, eps)
    start = norm.random_start(tf.constant(shape), eps, tf.constant([seed, 1]), tf.float32).numpy()
    assert start.shape == tuple(shape) and np.isfinite(start).all()
    assert (norm.norm(tf.constant(start)).numpy() <= eps * (1 + 1e-5) + 1e-6).all()
    direction = norm.normalize(delta).numpy()
    assert np.isfinite(direction).all()
    assert np.isfinite(norm.normalize(tf.zeros(shape)).numpy()).all()  # a zero gradient gives no NaN
