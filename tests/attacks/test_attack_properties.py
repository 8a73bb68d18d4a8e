"""Each new attack's own properties: exact cases on tiny models, plus one digits check each."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_adv import attacks as A
from keras_adv import layers as L
from keras_adv import norms
from keras_adv.attacks.fab import _project_l2, _project_linf
from tests.attacks.conftest import accuracy, graph_fn, run_graph
from tests.conftest import linear_model


def _two_class_linear(d=4, shape=(2, 2, 1)):
    # logit_0 = 0, logit_1 = w·x + b: the boundary is a hyperplane with known distances.
    w = np.zeros((d, 2), "float32")
    w[:, 1] = np.array([1.0, -2.0, 0.5, 1.5][:d], "float32")
    return linear_model(w, [0.0, -0.9], shape), w[:, 1]


# ------------------------------------------------------------------ C&W
def test_cw_matches_the_analytic_minimal_l2_distance_on_a_linear_model():
    model, w = _two_class_linear()
    x = np.full((3, 2, 2, 1), 0.4, "float32")
    x[1] += 0.05
    x[2] -= 0.05
    y = np.zeros(3, "int64")
    margin = -(x.reshape(3, -1) @ w - 0.9)  # class 0 wins by this margin
    assert (margin > 0).all()
    exact = margin / np.linalg.norm(w)  # far from the bounds, so the box is inactive
    attack = A.CarliniWagnerL2(steps=300, binary_search_steps=8, learning_rate=0.01, initial_const=1.0,
                               abort_early=False)
    x_adv = run_graph(attack, model, x, y)
    dist = np.linalg.norm((x_adv - x).reshape(3, -1), axis=1)
    assert (model.predict(x_adv, verbose=0).argmax(1) == 1).all()
    assert (dist >= exact * (1 - 1e-3)).all() and (dist <= exact * 1.05).all(), (dist, exact)


def test_cw_returns_the_input_when_it_finds_nothing_and_respects_a_cap(digits_cnn):
    model, x, y, _ = digits_cnn
    weak = A.CarliniWagnerL2(steps=2, binary_search_steps=1, initial_const=1e-6, learning_rate=1e-4)
    np.testing.assert_array_equal(run_graph(weak, model, x[:8], y[:8]), x[:8])
    capped = A.CarliniWagnerL2(0.5, steps=20, binary_search_steps=2, learning_rate=0.1)
    x_adv = run_graph(capped, model, x[:16], y[:16])
    assert norms.L2().distance(x_adv, x[:16]).numpy().max() <= 0.5 + 1e-5


def test_cw_finds_smaller_perturbations_than_pgd_at_the_same_success(digits_cnn):
    model, x, y, _ = digits_cnn
    cw = A.CarliniWagnerL2(steps=50, binary_search_steps=4, learning_rate=0.05)
    x_cw = run_graph(cw, model, x, y)
    ok = model.predict(x_cw, verbose=0).argmax(1) != y
    d_cw = np.linalg.norm((x_cw - x).reshape(len(x), -1), axis=1)
    assert ok.mean() >= 0.95
    # PGD given C&W's median distance as its budget.
    pgd = A.PGD(float(np.median(d_cw[ok])), steps=20, norm="l2")
    x_pgd = run_graph(pgd, model, x, y)
    ok_pgd = model.predict(x_pgd, verbose=0).argmax(1) != y
    d_pgd = np.linalg.norm((x_pgd - x).reshape(len(x), -1), axis=1)
    # Where both succeed, C&W's perturbation is smaller.
    both = ok & ok_pgd
    assert both.any() and d_cw[both].mean() < d_pgd[both].mean()


def test_cw_targeted_reaches_the_target(digits_cnn):
    model, x, y, _ = digits_cnn
    target = (y[:16] + 3) % 10
    x_adv = run_graph(A.CarliniWagnerL2(steps=40, binary_search_steps=4, learning_rate=0.1, targeted=True),
                      model, x[:16], target)
    assert np.mean(model.predict(x_adv, verbose=0).argmax(1) == target) >= 0.9


# -------------------------------------------------------------- spatial
def test_spatial_transform_layer_exact_cases_and_serialization(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 5, 5, 2)).astype("float32")
    layer = L.SpatialTransform()

    def p(*v):
        return tf.constant([v] * 2, tf.float32)

    np.testing.assert_allclose(layer(x, p(0, 0, 0, 1)), x, atol=1e-6)
    shifted = layer(x, p(0, 2, -1, 1)).numpy()  # 2 right, 1 up
    np.testing.assert_allclose(shifted[:, :4, 2:], x[:, 1:, :3], atol=1e-6)
    assert np.all(shifted[:, :, :2] == 0) and np.all(shifted[:, 4] == 0)
    np.testing.assert_allclose(layer(x, p(90, 0, 0, 1)), np.rot90(x, 1, axes=(1, 2)), atol=1e-5)
    # Scale 2 about the centre: the centre pixel is unchanged.
    np.testing.assert_allclose(layer(x, p(0, 0, 0, 2))[:, 2, 2], x[:, 2, 2], atol=1e-6)
    with pytest.raises(ValueError, match="height, width, channels"):
        layer(x.reshape(2, -1), p(0, 0, 0, 1))
    with pytest.raises(ValueError, match=r"`params` of shape \(batch, 4\).*got shape \(2, 3\)"):
        layer(x, tf.zeros((2, 3)))  # once a raw StridedSlice error
    # Inside a saved model.
    img = keras.Input((5, 5, 2))
    prm = keras.Input((4,))
    model = keras.Model([img, prm], L.SpatialTransform(fill_value=0.5)(img, prm))
    path = str(tmp_path / "m.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    xt = tf.constant(x)
    np.testing.assert_allclose(restored([xt, p(10, 1, 0, 1.1)]), model([xt, p(10, 1, 0, 1.1)]), atol=1e-6)


def _pixel_model(row, col, threshold):
    # logit_1 = image[row, col] − (sum of the other pixels), logit_0 = threshold.
    w = np.zeros((25, 2), "float32")
    w[:, 1] = -1.0
    w[row * 5 + col, 1] = 1.0
    return linear_model(w, [threshold, 0.0], (5, 5, 1))


@pytest.mark.parametrize("threshold", [0.5, 2.0])
def test_spatial_grid_finds_the_exact_worst_transformation(threshold):
    x = np.zeros((1, 5, 5, 1), "float32")
    x[0, 2, 2, 0] = 1.0  # one bright pixel in the centre
    # Only the shift (+1 right, 1 up) without rotation puts all the light on pixel (1, 3).
    model = _pixel_model(1, 3, threshold)
    attack = A.SpatialTransformation(20.0, 1.0, n_rotations=5, n_translations=3, grid_batch_size=7)
    x_adv = run_graph(attack, model, x, np.zeros(1, "int64"))
    expected = L.transform_images(x, tf.constant([[0.0, 1.0, -1.0, 1.0]])).numpy()
    np.testing.assert_allclose(x_adv, expected, atol=1e-6)
    assert (model.predict(x_adv, verbose=0).argmax(1) == 1).item() == (threshold < 1.0)


def test_spatial_modes_on_digits_and_errors(digits_cnn):
    model, x, y, _ = digits_cnn
    for method in ("random", "first_order"):
        attack = A.SpatialTransformation(30.0, 1.0, method=method, k=10, steps=10)
        assert accuracy(model, run_graph(attack, model, x, y), y) <= 0.3, method
    # First-order ascent increases the loss over the identity.
    fo = A.SpatialTransformation(10.0, 0.5, method="first_order", steps=5)
    x_fo = run_graph(fo, model, x, y)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert ce(y, model(x_fo)).numpy() > ce(y, model(x)).numpy()
    with pytest.raises(ValueError, match="image inputs"):
        A.SpatialTransformation()(linear_model(np.ones((4, 2)), [0, 0], (4,)), np.zeros((2, 4), "float32"), [0, 1])
    with pytest.raises(ValueError, match="method"):
        A.SpatialTransformation(method="bogus")


# ----------------------------------------------------------------- APGD
def test_apgd_finds_the_worst_point_of_a_linear_model():
    model, w = _two_class_linear()
    x = np.full((2, 2, 2, 1), 0.5, "float32")
    y = np.zeros(2, "int64")
    eps = 0.05
    x_adv = run_graph(A.APGD(eps, steps=20), model, x, y)
    # The CE of class 0 is maximised at the corner x + ε·sign(w).
    np.testing.assert_allclose(x_adv, x + eps * np.sign(w).reshape(1, 2, 2, 1), atol=1e-6)


def test_apgd_targeted_and_apgd_t(digits_cnn):
    model, x, y, _ = digits_cnn
    target = (y + 5) % 10
    for loss in ("ce", "dlr"):
        x_adv = run_graph(A.APGD(0.3, loss=loss, steps=20, targeted=True), model, x, target)
        assert np.mean(model.predict(x_adv, verbose=0).argmax(1) == target) >= 0.9, loss
    # APGD-T (runner-up targets) is at least as strong as its single-target run.
    one = accuracy(model, run_graph(A.APGD(0.15, loss="dlr", steps=10, n_target_classes=1), model, x, y), y)
    three = accuracy(model, run_graph(A.APGD(0.15, loss="dlr", steps=10, n_target_classes=3), model, x, y), y)
    assert three <= one
    with pytest.raises(ValueError, match="n_target_classes"):
        A.APGD(0.1, targeted=True, n_target_classes=3)
    with pytest.raises(ValueError, match="loss"):
        A.APGD(0.1, loss="hinge")
    binary, _ = _two_class_linear()
    with pytest.raises(ValueError, match="at least 3 classes"):
        A.APGD(0.1, loss="dlr", steps=2)(binary, np.full((1, 2, 2, 1), 0.5, "float32"), [0])


# --------------------------------------------------------------- Square
def _no_gradient_model(model):
    inputs = keras.Input((8, 8, 1))
    rounded = keras.layers.Lambda(lambda t: tf.stop_gradient(tf.round(t * 16.0) / 16.0))(inputs)
    return keras.Model(inputs, model(rounded))


def test_square_never_asks_for_a_gradient(digits_cnn, monkeypatch):
    model, x, y, _ = digits_cnn
    blind = _no_gradient_model(model)
    with pytest.raises(ValueError, match="no gradient"):
        A.PGD(0.3, steps=1)(blind, x[:4], y[:4])

    class NoTape:
        def __init__(self, *a, **k):
            raise AssertionError("Square asked for a gradient")

    monkeypatch.setattr(tf, "GradientTape", NoTape)
    for norm, eps in (("linf", 0.3), ("l2", 2.0)):
        x_adv = run_graph(A.Square(eps, queries=150, norm=norm), blind, x, y)
        assert accuracy(blind, x_adv, y) <= 0.3, norm


def test_square_errors_and_early_stop(digits_cnn):
    model, x, y, _ = digits_cnn
    one_unit = linear_model(np.ones((64, 1)), [0.0], (8, 8, 1))
    with pytest.raises(ValueError, match="class scores"):
        A.Square(0.1, queries=5)(one_unit, x[:2], [0, 1])
    with pytest.raises(ValueError, match="image inputs"):
        A.Square(0.1, queries=5)(linear_model(np.ones((4, 3)), [0, 0, 0], (4,)), np.zeros((2, 4), "float32"), [0, 1])
    # More queries never hurt (same seed: the longer run extends the shorter one's path).
    few = accuracy(model, run_graph(A.Square(0.15, queries=20), model, x, y), y)
    many = accuracy(model, run_graph(A.Square(0.15, queries=200), model, x, y), y)
    assert many <= few


# ------------------------------------------------------------------ FAB
def test_fab_projections_are_minimal_and_feasible():
    rng = np.random.default_rng(0)
    t = rng.uniform(size=(6, 10)).astype("float32")
    w = rng.normal(size=(6, 10)).astype("float32")
    r = np.abs(rng.normal(size=6)).astype("float32") * 0.5
    for project, p in ((_project_linf, np.inf), (_project_l2, 2)):
        d = project(tf.constant(t), tf.constant(w), tf.constant(r), 0.0, 1.0).numpy()
        assert (t + d >= -1e-6).all() and (t + d <= 1 + 1e-6).all()
        feasible = (w * d).sum(1) >= r - 1e-4
        # A shrunk d violates the constraint: d is minimal along its direction, and any
        # feasible random direction is longer.
        assert ((w * d * 0.99).sum(1) < r).all()
        for _ in range(200):
            e = rng.normal(size=d.shape).astype("float32")
            cand = np.clip(t + d + 0.05 * e, 0, 1) - t
            ok = ((w * cand).sum(1) >= r) & feasible
            assert (np.linalg.norm(cand[ok], p, axis=1) >= np.linalg.norm(d[ok], p, axis=1) - 1e-5).all()


def test_fab_finds_the_minimal_linf_distance_on_a_linear_model():
    model, w = _two_class_linear()
    x = np.full((2, 2, 2, 1), 0.4, "float32")
    x[1] -= 0.02
    y = np.zeros(2, "int64")
    exact = -(x.reshape(2, -1) @ w - 0.9) / np.abs(w).sum()  # Linf distance to the hyperplane
    x_adv = run_graph(A.FAB(steps=30, n_target_classes=1), model, x, y)
    dist = np.abs(x_adv - x).reshape(2, -1).max(1)
    assert (model.predict(x_adv, verbose=0).argmax(1) == 1).all()
    assert (dist >= exact * (1 - 1e-3)).all() and (dist <= exact * 1.02).all(), (dist, exact)


def test_fab_targeted_and_l2(digits_cnn):
    model, x, y, _ = digits_cnn
    target = (y[:16] + 1) % 10
    x_adv = run_graph(A.FAB(steps=30, targeted=True), model, x[:16], target)
    assert np.mean(model.predict(x_adv, verbose=0).argmax(1) == target) >= 0.8
    x_l2 = run_graph(A.FAB(norm="l2", steps=20, n_target_classes=2), model, x[:16], y[:16])
    assert accuracy(model, x_l2, y[:16]) <= 0.1


# ------------------------------------------------------------ AutoAttack
def test_autoattack_runs_members_only_on_robust_points(digits_cnn):
    model, x, y, _ = digits_cnn
    seen = []

    class Recording(A.PGD):
        def perturb(self, model, x, y, epsilon, seed, loss_fn):
            seen.append(int(x.shape[0]))
            return super().perturb(model, x, y, epsilon, seed, loss_fn)

    first, second = Recording(0.1, steps=5, name="a"), Recording(0.1, steps=5, name="b")
    aa = A.AutoAttack(0.15, attacks=[first, second, "apgd-dlr"], steps=5)
    x_adv = aa(model, x, y)  # eager: batch sizes are concrete
    assert seen[0] == len(x)
    after_first = accuracy(model, first(model, x, y, epsilon=0.15, seed=tf.constant([0, 0])), y)
    assert seen[1] < len(x) and seen[1] >= 1
    assert accuracy(model, x_adv, y) <= after_first + 1e-9
    assert np.abs(x_adv - x).max() <= 0.15 + 1e-6


def test_autoattack_l2_and_bad_arguments(digits_cnn):
    model, x, y, _ = digits_cnn
    aa = A.AutoAttack(1.5, norm="l2", attacks=["apgd-ce", "square"], steps=10, queries=50)
    x_adv = run_graph(aa, model, x, y)
    assert norms.L2().distance(x_adv, x).numpy().max() <= 1.5 + 1e-5
    assert accuracy(model, x_adv, y) <= 0.3
    with pytest.raises(ValueError, match="member"):
        A.AutoAttack(0.1, attacks=["pgd"])
    with pytest.raises(ValueError, match="untargeted"):
        A.AutoAttack(0.1, targeted=True)


# ---------------------------------------------------------------- L1 PGD
def test_l1_pgd_budget_sparsity_and_strength(digits_cnn):
    model, x, y, _ = digits_cnn
    eps = 4.0
    one_step = run_graph(A.PGD(eps, steps=1, norm="l1", random_start=False, step_size=1.0), model, x, y)
    step = np.abs(one_step - x).reshape(len(x), -1)
    # A sparse step (the top 1% of 64 pixels, plus as many as their room towards the bounds needs
    # to hold the step) that spends its whole length of 1.
    assert (step > 1e-7).sum(1).max() <= 4
    np.testing.assert_allclose(step.sum(1), 1.0, atol=1e-5)
    x_adv = run_graph(A.PGD(eps, steps=30, norm="l1", step_size=1.0), model, x, y)
    assert np.abs(x_adv - x).reshape(len(x), -1).sum(1).max() <= eps * (1 + 1e-5)
    assert 0.0 <= x_adv.min() and x_adv.max() <= 1.0
    assert accuracy(model, x_adv, y) <= 0.5


def test_generate_runs_new_attacks_over_numpy_batches(digits_cnn):
    model, x, y, _ = digits_cnn
    attack = A.Square(0.2, queries=30, seed=3)
    out = attack.generate(model, x[:20], y[:20], batch_size=8, verbose=0)
    assert isinstance(out, np.ndarray) and out.shape == x[:20].shape
    assert np.abs(out - x[:20]).max() <= 0.2 + 1e-6
    np.testing.assert_array_equal(out, A.Square(0.2, queries=30, seed=3).generate(model, x[:20], y[:20], batch_size=8, verbose=0))
