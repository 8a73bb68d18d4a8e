"""Schedules (read back from History, no retrace) and the catastrophic-overfitting guard."""

import keras
import numpy as np
import pytest

import keras_adv as ka
from keras_adv import callbacks
from tests.conftest import linear_model


class CountingModel(ka.AdversarialModel):
    traces = 0

    def train_step(self, data):
        type(self).traces += 1  # Python side effect: runs once per trace of the compiled step
        return super().train_step(data)


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = np.clip(0.3 + 0.4 * y[:, None] + 0.05 * rng.normal(size=(n, 4)), 0, 1).astype("float32")
    return x, y


def _model(cls=ka.AdversarialModel, objective="ce", eps=0.1, lr=0.01):
    base = linear_model(np.array([[-1.0, 1.0]] * 4) * 5, [10.0, -10.0], (4,))  # boundary: sum(x) = 2
    model = cls(base, attack=ka.attacks.PGD(epsilon=eps, steps=2), objective=objective, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def test_schedules_set_values_per_epoch_without_retrace():
    x, y = _data()
    CountingModel.traces = 0
    plain = _model(CountingModel)
    plain.fit(x, y, batch_size=16, epochs=4, verbose=0)
    baseline = CountingModel.traces

    CountingModel.traces = 0
    model = _model(CountingModel)
    ramp = callbacks.EpsilonRamp(0.2, ramp_epochs=4)
    lam = callbacks.AdvWeightSchedule(lambda epoch: 0.5 * epoch)
    hist = model.fit(x, y, batch_size=16, epochs=6, verbose=0, callbacks=[ramp, lam])
    np.testing.assert_allclose(hist.history["epsilon"], [0.05, 0.1, 0.15, 0.2, 0.2, 0.2], rtol=1e-6)
    np.testing.assert_allclose(hist.history["adv_weight"], [0.0, 0.5, 1.0, 1.5, 2.0, 2.5], rtol=1e-6)
    assert model.epsilon == pytest.approx(0.2) and model.adv_weight == pytest.approx(2.5)
    assert CountingModel.traces == baseline <= 2


def test_epsilon_change_reaches_the_compiled_step():
    # With λ = 1 and the "ce" objective, ε = 0 makes adv_loss equal clean_loss exactly.
    x, y = _data()
    model = _model(lr=0.0)
    hist = model.fit(x, y, batch_size=32, epochs=3, verbose=0, shuffle=False,
                     callbacks=[callbacks.EpsilonSchedule(lambda e: [0.0, 0.3, 0.0][e])])
    h = hist.history
    np.testing.assert_allclose(h["adv_loss"][0], h["clean_loss"][0], rtol=1e-6)
    assert h["adv_loss"][1] > h["clean_loss"][1] + 0.1
    np.testing.assert_allclose(h["adv_loss"][2], h["clean_loss"][2], rtol=1e-6)


def test_delayed_start_and_ramp_after_delay():
    x, y = _data()
    model = _model(eps=0.15)
    hist = model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[callbacks.DelayedStart(2)])
    np.testing.assert_allclose(hist.history["epsilon"], [0.0, 0.0, 0.15, 0.15], rtol=1e-6)
    ramp = callbacks.EpsilonRamp(ramp_epochs=2, start_epoch=1)  # ε from the training attack
    hist = model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[ramp])
    np.testing.assert_allclose(hist.history["epsilon"], [0.0, 0.075, 0.15, 0.15], rtol=1e-6)


def test_schedule_errors_name_the_problem():
    with pytest.raises(ValueError, match="ramp_epochs"):
        callbacks.EpsilonRamp(0.1, ramp_epochs=0)
    with pytest.raises(TypeError, match="schedule"):
        callbacks.AdvWeightSchedule(3.0)
    x, y = _data()
    model = _model()
    with pytest.raises(ValueError, match="adv_weight"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.AdvWeightSchedule(lambda e: -1.0)])
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    plain.compile("sgd", "mse")
    with pytest.raises(TypeError, match="AdversarialModel"):
        plain.fit(x, np.zeros((32, 2)), epochs=1, verbose=0, callbacks=[callbacks.EpsilonRamp(0.1)])


class _Collapse(keras.callbacks.Callback):
    """Simulates catastrophic overfitting: flips the classifier at the end of `epoch`."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch
        self.snapshots = {}

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            w, b = self.model.base_model.get_weights()
            self.model.base_model.set_weights([-w, -b])
        self.snapshots[epoch] = [np.array(v) for v in self.model.base_model.get_weights()]


@pytest.mark.parametrize("action", ["restore", "restore_and_stop"])
def test_guard_fires_on_constructed_collapse_and_restores(action):
    x, y = _data(64)
    model = _model(lr=0.0)  # frozen weights: only the constructed collapse changes robustness
    collapse = _Collapse(epoch=2)
    guard = callbacks.CatastrophicOverfittingGuard((x, y), threshold=0.3, action=action, verbose=0,
                                                   epsilon_factor=0.5)
    hist = model.fit(x, y, batch_size=32, epochs=5, verbose=0, callbacks=[collapse, guard])
    assert guard.fired_epochs == [2]
    h = hist.history
    assert h["guard_robust_accuracy"][:2] == [1.0, 1.0]
    assert h["guard_robust_accuracy"][2] == 0.0
    assert h["guard_fired"][:3] == [0.0, 0.0, 1.0]
    # The restored weights are those of the last good epoch (1), not the collapsed ones.
    restored = model.base_model.get_weights() if action == "restore_and_stop" else collapse.snapshots[3]
    for got, want in zip(restored, collapse.snapshots[1]):
        np.testing.assert_array_equal(got, want)
    assert model.epsilon == pytest.approx(0.05)
    if action == "restore_and_stop":
        assert len(h["loss"]) == 3
    else:
        assert len(h["loss"]) == 5 and h["guard_fired"][3:] == [0.0, 0.0]


def test_guard_quiet_without_collapse_and_checks_arguments():
    x, y = _data(64)
    model = _model(lr=0.0)
    guard = callbacks.CatastrophicOverfittingGuard((x, y), verbose=0)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[guard])
    assert guard.fired_epochs == [] and guard.best_accuracy == 1.0
    with pytest.raises(ValueError, match="action"):
        callbacks.CatastrophicOverfittingGuard((x, y), action="explode")
    with pytest.raises(ValueError, match="validation_data"):
        callbacks.CatastrophicOverfittingGuard((x, y[:3]))
    with pytest.raises(ValueError, match="threshold"):
        callbacks.CatastrophicOverfittingGuard((x, y), threshold=2.0)


def test_guard_checks_its_examples_before_the_first_batch():
    # Held-out digits on the 0-16 scale once trained a whole epoch before failing, blaming fit's `x`.
    x, y = _data(64)
    model = _model()
    trained = []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: trained.append(batch))
    guard = callbacks.CatastrophicOverfittingGuard((x * 16, y), verbose=0)
    with pytest.raises(ValueError, match=r"^CatastrophicOverfittingGuard: `validation_data x` must lie inside the "
                                         r"attack bounds"):
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[counter, guard])
    assert trained == []
    plain = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Flatten(), keras.layers.Dense(10)])
    plain.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="needs an `attack`"):
        plain.fit(x, y, epochs=1, verbose=0, callbacks=[counter, callbacks.CatastrophicOverfittingGuard((x, y))])
    assert trained == []
