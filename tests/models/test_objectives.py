"""TRADES and MART objectives against hand-computed numpy values."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from keras_adv.attacks.attack import Attack
from keras_adv.models import objectives
from tests.conftest import linear_model

LOGITS_CLEAN = np.array([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2]], "float32")
LOGITS_ADV = np.array([[0.5, 1.5, -0.5], [1.0, -0.2, 0.4]], "float32")
Y = np.array([0, 2])


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _ce(z, y):
    return -np.log(_softmax(z)[np.arange(len(y)), y])


def _kl(p, q):
    return (p * (np.log(p) - np.log(q))).sum(-1)


def _compiled(from_logits=True):
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    return lambda y, p, sw: loss(y, p, sample_weight=sw)


def _run(name, clean, adv, beta, from_logits=True, sample_weight=None, compiled=None):
    obj = objectives.get(name)
    total, c, a = obj(y=tf.constant(Y), y_clean=tf.constant(clean), y_adv=tf.constant(adv),
                      sample_weight=sample_weight, compiled_loss=compiled or _compiled(from_logits),
                      adv_weight=tf.constant(beta), from_logits=from_logits)
    return float(total), float(c), float(a)


def test_registry_lists_all_objectives():
    assert {"ce", "madry", "trades", "mart"} <= set(objectives.available())
    with pytest.raises(ValueError, match="objective"):
        objectives.get("nope")


def test_trades_loss_matches_numpy():
    p, q = _softmax(LOGITS_CLEAN), _softmax(LOGITS_ADV)
    clean = _ce(LOGITS_CLEAN, Y).mean()
    kl = _kl(p, q).mean()
    total, c, a = _run("trades", LOGITS_CLEAN, LOGITS_ADV, 3.0)
    np.testing.assert_allclose([c, a, total], [clean, kl, clean + 3.0 * kl], rtol=1e-5)


def test_trades_accepts_probabilities():
    p, q = _softmax(LOGITS_CLEAN), _softmax(LOGITS_ADV)
    expected = _run("trades", LOGITS_CLEAN, LOGITS_ADV, 2.0)
    for from_logits in (False, None):  # explicit and auto-detected
        got = _run("trades", p, q, 2.0, from_logits=from_logits, compiled=_compiled(False))
        np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_trades_sample_weight():
    sw = np.array([1.0, 0.0], "float32")
    p, q = _softmax(LOGITS_CLEAN), _softmax(LOGITS_ADV)
    _, _, a = _run("trades", LOGITS_CLEAN, LOGITS_ADV, 1.0, sample_weight=tf.constant(sw))
    np.testing.assert_allclose(a, (_kl(p, q) * sw).sum() / 2, rtol=1e-5)


def test_mart_loss_matches_numpy():
    p, q = _softmax(LOGITS_CLEAN), _softmax(LOGITS_ADV)
    n = np.arange(2)
    wrong = q.copy()
    wrong[n, Y] = -1
    bce = _ce(LOGITS_ADV, Y) - np.log(1.0 - wrong.max(-1))
    reg = (_kl(p, q) * (1.0 - p[n, Y])).mean()
    total, c, a = _run("mart", LOGITS_CLEAN, LOGITS_ADV, 5.0)
    np.testing.assert_allclose(c, _ce(LOGITS_CLEAN, Y).mean(), rtol=1e-5)
    np.testing.assert_allclose(a, reg, rtol=1e-5)
    np.testing.assert_allclose(total, bce.mean() + 5.0 * reg, rtol=1e-5)


def test_mart_one_hot_labels_match_integer_labels():
    obj = objectives.get("mart")
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    got = obj(y=tf.one_hot(Y, 3), y_clean=tf.constant(LOGITS_CLEAN), y_adv=tf.constant(LOGITS_ADV),
              sample_weight=None, compiled_loss=lambda y, p, sw: loss(y, p), adv_weight=5.0,
              from_logits=True)
    np.testing.assert_allclose([float(v) for v in got], _run("mart", LOGITS_CLEAN, LOGITS_ADV, 5.0), rtol=1e-5)


class _Recorder(Attack):
    """Records the inner loss at x (zero for TRADES) and at x + 0.3."""

    records = []

    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        x_adv = tf.clip_by_value(x + 0.3, 0.0, 1.0)
        self.records.append((loss_fn(y, model(x)).numpy(), loss_fn(y, model(x_adv)).numpy(),
                             model(x).numpy(), model(x_adv).numpy()))
        return x_adv


def test_trades_inner_attack_maximises_kl_from_clean_outputs():
    rng = np.random.default_rng(0)
    base = linear_model(3 * rng.normal(size=(4, 3)), np.zeros(3), (4,))
    attack = _Recorder(epsilon=0.3)
    model = ka.AdversarialModel(base, attack=attack, objective="trades", adv_weight=2.0)
    model.compile(optimizer=keras.optimizers.SGD(0.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True)
    x = rng.uniform(0, 0.8, size=(5, 4)).astype("float32")
    y = np.array([0, 1, 2, 0, 1])
    _Recorder.records = []
    hist = model.fit(x, y, batch_size=5, epochs=1, verbose=0, shuffle=False)
    at_x, at_adv, z, z_adv = _Recorder.records[0]
    np.testing.assert_allclose(at_x, 0.0, atol=1e-6)
    kl = _kl(_softmax(z.astype("float64")), _softmax(z_adv.astype("float64")))
    np.testing.assert_allclose(at_adv, kl, rtol=1e-4)
    np.testing.assert_allclose(hist.history["adv_loss"][0], kl.mean(), rtol=1e-4)
    np.testing.assert_allclose(hist.history["clean_loss"][0], _ce(z, y).mean(), rtol=1e-4)
    np.testing.assert_allclose(hist.history["loss"][0], _ce(z, y).mean() + 2.0 * kl.mean(), rtol=1e-4)


@pytest.mark.parametrize("objective", ["trades", "mart"])
def test_objectives_train_in_graph_mode(objective):
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(32, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 32)
    from keras_adv.models.presets import small_cnn
    base = small_cnn((8, 8, 1), 10, width=4)
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=2), objective=objective,
                                adv_weight=3.0)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    for key in ("loss", "clean_loss", "adv_loss", "accuracy", "adv_accuracy"):
        assert np.all(np.isfinite(hist.history[key])), key
    assert hist.history["adv_loss"][-1] >= 0.0
    ev = model.evaluate(x, y, verbose=0, return_dict=True)
    assert np.isfinite(ev["loss"])


class _LegacyObjective(objectives.Objective):
    """A user objective written against the original signature (no `from_logits`)."""

    name = "legacy_half_ce"

    def __call__(self, *, y, y_clean, y_adv, sample_weight, compiled_loss, adv_weight):
        clean = compiled_loss(y, y_clean, sample_weight)
        adv = compiled_loss(y, y_adv, sample_weight)
        return 0.5 * clean + 0.5 * adv, clean, adv


def test_custom_objective_with_the_original_signature_still_works():
    rng = np.random.default_rng(0)
    base = linear_model(rng.normal(size=(4, 3)), np.zeros(3), (4,))
    model = ka.AdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1), objective=_LegacyObjective())
    model.compile(optimizer=keras.optimizers.SGD(0.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.uniform(0, 0.8, size=(8, 4)).astype("float32")
    hist = model.fit(x, rng.integers(0, 3, 8), batch_size=8, epochs=1, verbose=0)
    h = hist.history
    np.testing.assert_allclose(h["loss"][0], 0.5 * (h["clean_loss"][0] + h["adv_loss"][0]), rtol=1e-5)


# ------------------------------------------------------------ clean-forward reuse (TRADES, VAT)
def _trades_model(base, seed=0):
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(0.2, steps=3), objective="trades",
                                adv_weight=4.0, seed=seed)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _cnn(dropout=False):
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    h = keras.layers.Flatten()(h)
    if dropout:
        h = keras.layers.Dropout(0.5)(h)
    return keras.Model(inputs, keras.layers.Dense(10)(h))


def test_trades_takes_the_attack_target_from_the_training_forward_and_trains_the_same(monkeypatch):
    """Where training and inference outputs are the same computation, TRADES skips its separate
    clean pass: the same examples, losses and weights as the two-pass step (here over 3 steps)."""
    (x, y), _ = ka.datasets.load_digits()
    x, y = x[:96], y[:96]
    runs = {}
    for reuse in (True, False):
        keras.utils.set_random_seed(0)
        model = _trades_model(_cnn())
        assert model._reuses_clean_forward(x) is True
        if not reuse:
            monkeypatch.setattr(ka.AdversarialModel, "_reuses_clean_forward", lambda self, x: False)
        history = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
        runs[reuse] = (history.history, [w.numpy() for w in model.base_model.weights])
        monkeypatch.undo()
    for key in ("loss", "clean_loss", "adv_loss"):
        np.testing.assert_allclose(runs[True][0][key], runs[False][0][key], rtol=1e-5)
    for a, b in zip(runs[True][1], runs[False][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_the_clean_forward_is_not_reused_where_training_changes_the_outputs():
    x = np.zeros((2, 8, 8, 1), "float32")
    assert _trades_model(_cnn(dropout=True))._reuses_clean_forward(x) is False  # dropout

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.net = _cnn()

        def call(self, inputs, training=None):
            return self.net(inputs, training=training)

    assert _trades_model(Sub())._reuses_clean_forward(x) is False  # its call may use `training`
    model = ka.AdversarialModel(_cnn(), attack=ka.attacks.PGD(0.2, steps=2), objective="madry")
    assert model._reuses_clean_forward(x) is False  # no clean target to take
