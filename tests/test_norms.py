import numpy as np
import pytest
import tensorflow as tf

from keras_adv import norms

ALL = [norms.Linf(), norms.L2(), norms.L1()]


def _np_norm(norm, v):
    v = v.reshape(len(v), -1)
    if isinstance(norm, norms.Linf):
        return np.abs(v).max(1)
    if isinstance(norm, norms.L2):
        return np.sqrt((v**2).sum(1))
    return np.abs(v).sum(1)


@pytest.mark.parametrize("norm", ALL, ids=lambda n: n.name)
def test_projection_lands_in_ball_and_is_idempotent(norm):
    rng = np.random.default_rng(0)
    delta = rng.normal(size=(16, 4, 4, 2)).astype("float32") * 3
    eps = 0.7
    p = norm.project(tf.constant(delta), eps).numpy()
    assert np.all(_np_norm(norm, p) <= eps * (1 + 1e-5))
    # Points outside end on the sphere; projecting again changes nothing.
    np.testing.assert_allclose(_np_norm(norm, p), eps, rtol=1e-5)
    np.testing.assert_allclose(norm.project(tf.constant(p), eps).numpy(), p, atol=1e-6)


@pytest.mark.parametrize("norm", ALL, ids=lambda n: n.name)
def test_projection_keeps_points_inside(norm):
    rng = np.random.default_rng(1)
    delta = rng.normal(size=(8, 10)).astype("float32")
    delta *= (0.5 / _np_norm(norm, delta))[:, None]  # norm 0.5 < eps
    np.testing.assert_allclose(norm.project(tf.constant(delta), 1.0).numpy(), delta, atol=1e-6)


@pytest.mark.parametrize("norm", ALL, ids=lambda n: n.name)
def test_projection_is_the_closest_point_of_the_ball(norm):
    # Optimality: no random point of the ball is closer (in L2) to z than proj(z).
    rng = np.random.default_rng(2)
    z = rng.normal(size=(1, 6)).astype("float32") * 2
    eps = 1.0
    p = norm.project(tf.constant(z), eps).numpy()
    others = norm.random_start(tf.constant([4000, 6]), eps, tf.constant([3, 4])).numpy()
    best_other = np.sqrt(((others - z) ** 2).sum(1)).min()
    assert np.sqrt(((p - z) ** 2).sum()) <= best_other + 1e-6


def test_l1_projection_matches_sort_based_reference():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(5, 7)).astype("float64")
    eps = 1.3

    def ref(x):  # Duchi et al. 2008 on |x|
        u = np.sort(np.abs(x))[::-1]
        css = np.cumsum(u)
        rho = np.nonzero(u * np.arange(1, len(u) + 1) > (css - eps))[0][-1]
        theta = (css[rho] - eps) / (rho + 1.0)
        return np.sign(x) * np.maximum(np.abs(x) - theta, 0)

    expected = np.stack([ref(r) for r in v])
    np.testing.assert_allclose(norms.L1().project(tf.constant(v), eps).numpy(), expected, atol=1e-6)


def test_normalize_unit_norms_and_directions():
    g = tf.constant([[3.0, -4.0, 0.0, 1.0]])
    np.testing.assert_array_equal(norms.Linf().normalize(g).numpy(), [[1, -1, 0, 1]])
    np.testing.assert_allclose(norms.L2().normalize(g).numpy(), [[3 / 26**0.5, -4 / 26**0.5, 0, 1 / 26**0.5]], rtol=1e-6)
    # L1 with sparsity 0.5 moves the top 2 of 4 coordinates, half each.
    np.testing.assert_allclose(norms.L1(sparsity=0.5).normalize(g).numpy(), [[0.5, -0.5, 0, 0]])


@pytest.mark.parametrize("norm", ALL, ids=lambda n: n.name)
def test_random_start_inside_ball_and_seeded(norm):
    shape = tf.constant([64, 5, 5])
    a = norm.random_start(shape, 0.3, tf.constant([1, 2])).numpy()
    b = norm.random_start(shape, 0.3, tf.constant([1, 2])).numpy()
    c = norm.random_start(shape, 0.3, tf.constant([1, 3])).numpy()
    assert np.all(_np_norm(norm, a) <= 0.3 * (1 + 1e-5))
    assert np.all(_np_norm(norm, a) > 0)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("name,cls", [("linf", norms.Linf), ("L2", norms.L2), (1, norms.L1), (np.inf, norms.Linf), (2, norms.L2)])
def test_get(name, cls):
    assert isinstance(norms.get(name), cls)


def test_get_unknown_norm_names_the_argument():
    with pytest.raises(ValueError, match="Unknown `norm`.*'linf', 'l2', 'l1'"):
        norms.get("l3")


def test_l1_step_moves_enough_coordinates_to_fit_the_box():
    # 64 coordinates at 0.5 in [0, 1], gradient magnitudes 64..1: a step of L1
    # length 3 must move the 6 coordinates of largest gradient by 0.5 each
    # (their room towards the bound), not one coordinate by 3 (clipped to 0.5).
    g = np.arange(64, 0, -1, dtype="float32") * np.where(np.arange(64) % 2, -1.0, 1.0).astype("float32")
    x = np.full((1, 64), 0.5, "float32")
    d = norms.L1().ascent_direction(tf.constant(g[None]), tf.constant(x), (0.0, 1.0), step_size=3.0).numpy()[0]
    np.testing.assert_allclose(d[:6], np.sign(g[:6]) / 6, atol=1e-7)
    assert np.all(d[6:] == 0)
    moved = np.clip(x[0] + 3.0 * d, 0.0, 1.0) - x[0]
    np.testing.assert_allclose(np.abs(moved).sum(), 3.0, atol=1e-6)
    # A short step keeps the sparse rule (top 1%: one coordinate), and without
    # a step size the direction is the plain sparse normalisation.
    small = norms.L1().ascent_direction(tf.constant(g[None]), tf.constant(x), (0.0, 1.0), step_size=0.2).numpy()[0]
    assert np.count_nonzero(small) == 1 and small[0] == 1.0
    np.testing.assert_array_equal(
        norms.L1().ascent_direction(tf.constant(g[None]), tf.constant(x), (0.0, 1.0)).numpy(),
        norms.L1().normalize(tf.constant(g[None])).numpy())


def test_l1_step_fills_unequal_rooms_to_one_level():
    # Rooms towards the upper bound 0.1, 0.5, 0.5, 0.5; a step of length 1 needs the top 3
    # coordinates; the first is capped at its room 0.1 and the other two share the rest (0.45 each).
    g = tf.constant([[4.0, 3.0, 2.0, 1.0]])
    x = tf.constant([[0.9, 0.5, 0.5, 0.5]])
    d = norms.L1().ascent_direction(g, x, (0.0, 1.0), step_size=1.0).numpy()
    np.testing.assert_allclose(d, [[0.1, 0.45, 0.45, 0.0]], atol=1e-6)
    # less room in total than the step: every coordinate goes to its bound, no further
    d = norms.L1().ascent_direction(tf.constant([[1.0, -2.0]]), tf.constant([[0.9, 0.2]]), (0.0, 1.0),
                                    step_size=1.0).numpy()
    np.testing.assert_allclose(d, [[0.1, -0.2]], atol=1e-6)


def test_single_step_l1_attack_grows_with_epsilon_on_small_images():
    # On 8×8 digits one L1 step used to move a single pixel, so every ε above
    # the box width gave the same, weak attack.
    import keras

    from keras_adv.attacks import FGSM
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, size=(16, 8, 8, 1)).astype("float32")
    y = np.arange(16) % 10
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    dist = []
    for eps in (0.5, 2.0, 4.0):
        x_adv = FGSM(epsilon=eps, norm="l1").generate(model, x, y, verbose=0)
        dist.append(np.abs(x_adv - x).reshape(16, -1).sum(1).mean())
    assert dist[0] <= 0.5 + 1e-5
    assert dist[1] > 1.5 and dist[2] > 3.5, dist
