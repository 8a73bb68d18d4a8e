"""AdversarialModel: exact updates, logs, inputs, layers' training flags, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from tests.conftest import linear_model, subclassed_dense

RNG = np.random.default_rng(0)
D, K = 5, 3


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _data(n=8):
    x = RNG.uniform(0.2, 0.8, size=(n, D)).astype("float32")
    y = RNG.integers(0, K, size=n)
    return x, y


def _hand_step(w, b, x, y, eps, lam, lr, clean_term=True):
    onehot = np.eye(K)[y]
    p = _softmax(x @ w + b)
    x_adv = np.clip(x + eps * np.sign((p - onehot) @ w.T), 0, 1)
    p_adv = _softmax(x_adv @ w + b)
    n = len(x)
    gw = lam * x_adv.T @ (p_adv - onehot) / n
    gb = lam * (p_adv - onehot).sum(0) / n
    if clean_term:
        gw += x.T @ (p - onehot) / n
        gb += (p - onehot).sum(0) / n
    return w - lr * gw, b - lr * gb


def _linear_adv_model(w, b, lam, objective="ce"):
    base = linear_model(w, b, (D,))
    model = ka.AdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1), adv_weight=lam, objective=objective)
    model.compile(keras.optimizers.SGD(0.5), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, base


@pytest.mark.parametrize("objective,lam", [("ce", 1.0), ("ce", 0.3), ("madry", 1.0)])
def test_one_sgd_step_matches_the_hand_computed_update(objective, lam):
    w = RNG.normal(size=(D, K)).astype("float32")
    b = RNG.normal(size=(K,)).astype("float32")
    x, y = _data()
    model, base = _linear_adv_model(w, b, lam, objective)
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    w_exp, b_exp = _hand_step(w, b, x, y, 0.1, lam, 0.5, clean_term=objective == "ce")
    w_got, b_got = base.get_weights()
    np.testing.assert_allclose(w_got, w_exp, atol=1e-5)
    np.testing.assert_allclose(b_got, b_exp, atol=1e-5)


def test_logged_keys_and_total_loss_identity():
    x, y = _data(64)
    base = keras.Sequential([keras.Input((D,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(K)])
    lam = 0.4
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=3), adv_weight=lam)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    hist = model.fit(x, y, epochs=2, batch_size=16, validation_data=(x, y), verbose=0).history
    expected = {"loss", "clean_loss", "adv_loss", "accuracy", "adv_accuracy", "robustness_margin"}
    assert set(hist) == expected | {"val_" + k for k in expected}
    for prefix in ("", "val_"):
        total = np.array(hist[prefix + "loss"])
        np.testing.assert_allclose(total, np.array(hist[prefix + "clean_loss"]) + lam * np.array(hist[prefix + "adv_loss"]), rtol=1e-5)
        assert np.all(total > 0)
    logs = model.evaluate(x, y, return_dict=True, verbose=0)
    assert set(logs) == expected
    assert logs["adv_accuracy"] <= logs["accuracy"]
    assert logs["loss"] == pytest.approx(logs["clean_loss"] + lam * logs["adv_loss"], rel=1e-5)


def test_callbacks_see_the_same_keys():
    x, y = _data(32)
    seen = []
    cb = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(sorted(logs)))
    model, _ = _linear_adv_model(RNG.normal(size=(D, K)), np.zeros(K), 1.0)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    assert seen == [sorted(["loss", "clean_loss", "adv_loss", "accuracy", "adv_accuracy", "robustness_margin"])]


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.out = keras.layers.Dense(K)

    def call(self, x, training=False):
        return self.out(self.hidden(x))


def _sequential():
    return keras.Sequential([keras.Input((D,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(K)])


def _functional():
    i = keras.Input((D,))
    return keras.Model(i, keras.layers.Dense(K)(keras.layers.Dense(8, activation="relu")(i)))


@pytest.mark.parametrize("make_base", [_sequential, _functional, _Subclassed], ids=["sequential", "functional", "subclassed"])
@pytest.mark.parametrize("source", ["numpy", "tf.data", "generator"])
def test_model_kinds_and_input_kinds(make_base, source):
    x, y = _data(32)
    model = ka.AdversarialModel(make_base(), attack=ka.attacks.PGD(epsilon=0.1, steps=2))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    before = [w.copy() for w in model.base_model.get_weights()] if model.base_model.built else None
    if source == "numpy":
        hist = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    elif source == "tf.data":
        hist = model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=1, verbose=0, shuffle=False)
    else:
        def gen():
            for i in range(0, 32, 8):
                yield x[i:i + 8], y[i:i + 8]
        hist = model.fit(gen(), epochs=1, steps_per_epoch=4, verbose=0, shuffle=False)
    assert np.isfinite(hist.history["loss"][0]) and hist.history["loss"][0] > 0
    if before is not None:
        assert any(not np.allclose(a, b) for a, b in zip(before, model.base_model.get_weights()))
    assert model.predict(x, verbose=0).shape == (32, K)


def test_sample_weight_weights_both_losses():
    x, y = _data(16)
    model, _ = _linear_adv_model(RNG.normal(size=(D, K)), np.zeros(K), 1.0)
    plain = model.evaluate(x, y, return_dict=True, verbose=0, batch_size=16)
    sw = np.zeros(16, "float32")
    sw[:8] = 2.0
    weighted = model.evaluate(x, y, sample_weight=sw, return_dict=True, verbose=0, batch_size=16)
    first_half = model.evaluate(x[:8], y[:8], return_dict=True, verbose=0, batch_size=8)
    # Keras' sum_over_batch_size: sum(w·l)/n = (2·sum_{first 8} l)/16 = mean over the first half.
    for key in ("clean_loss", "adv_loss", "loss"):
        assert weighted[key] == pytest.approx(first_half[key], rel=1e-5)
        assert weighted[key] != pytest.approx(plain[key], rel=1e-3)


class _FlagCounter(keras.layers.Layer):
    """Counts forward passes by their `training` flag."""

    def build(self, shape):
        self.train_calls = self.add_weight(shape=(), initializer="zeros", trainable=False, name="t")
        self.infer_calls = self.add_weight(shape=(), initializer="zeros", trainable=False, name="i")

    def call(self, x, training=None):
        (self.train_calls if training else self.infer_calls).assign_add(1.0)
        return x


def test_attack_passes_run_in_inference_mode_and_the_update_in_training_mode():
    x, y = _data(16)
    counter = _FlagCounter()
    base = keras.Sequential([
        keras.Input((D,)), counter, keras.layers.Dense(8), keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.5), keras.layers.Dense(K),
    ])
    steps = 3
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=steps))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 2 batches
    assert counter.train_calls.numpy() == 2 * 2          # clean + adversarial forward, per batch
    assert counter.infer_calls.numpy() == 2 * steps      # the attack's gradient passes
    model.evaluate(x, y, batch_size=8, verbose=0)
    assert counter.train_calls.numpy() == 4              # evaluation never trains
    assert counter.infer_calls.numpy() == 2 * steps + 2 * (steps + 2)


def test_eval_attack_is_used_by_evaluate():
    x, y = _data(64)
    base = _sequential()
    model = ka.AdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.0), eval_attack=ka.attacks.PGD(epsilon=0.3, steps=5))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=3, verbose=0)
    logs = model.evaluate(x, y, return_dict=True, verbose=0)
    # The training attack has ε = 0 (adv = clean); the eval attack is real, so the two differ.
    assert logs["adv_loss"] > logs["clean_loss"]
    hist = model.fit(x, y, epochs=1, verbose=0).history
    assert hist["adv_loss"][0] == pytest.approx(hist["clean_loss"][0], rel=1e-5)


def test_epsilon_and_adv_weight_are_settable_without_retracing():
    x, y = _data(16)
    model, _ = _linear_adv_model(RNG.normal(size=(D, K)), np.zeros(K), 1.0)
    model.fit(x, y, epochs=1, verbose=0)
    fn = model.train_function
    model.epsilon = 0.0
    model.adv_weight = 0.5
    hist = model.fit(x, y, epochs=1, verbose=0, batch_size=16).history
    assert model.train_function is fn
    assert hist["adv_loss"][0] == pytest.approx(hist["clean_loss"][0], rel=1e-5)
    assert hist["loss"][0] == pytest.approx(1.5 * hist["clean_loss"][0], rel=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(adv_weight=-1.0), r"`adv_weight` must be >= 0"),
        (dict(attack="pgd"), r"`attack` must be a keras_adv.attacks.Attack"),
        (dict(attack=keras.layers.Dense(2)), r"`attack` must be a keras_adv.attacks.Attack"),
        (dict(attack=None), r"`attack` is required"),
        (dict(objective="hinge"), r"Unknown `objective`: 'hinge'. Expected one of"),
    ],
)
def test_constructor_errors(kwargs, match):
    args = dict(attack=ka.attacks.FGSM(epsilon=0.1))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        ka.AdversarialModel(_sequential(), **args)


def test_base_model_must_be_a_keras_model():
    with pytest.raises(TypeError, match=r"`base_model` must be a keras.Model"):
        ka.AdversarialModel(lambda x: x, attack=ka.attacks.FGSM(epsilon=0.1))


def test_multi_output_base_model_fails_clearly():
    i = keras.Input((D,))
    base = keras.Model(i, [keras.layers.Dense(K)(i), keras.layers.Dense(1)(i)])
    with pytest.raises(ValueError, match=r"single-output models only"):
        ka.AdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1))


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", keras.losses.sparse_categorical_crossentropy,
                                  keras.losses.SparseCategoricalCrossentropy()], ids=["name", "function", "object"])
def test_a_probability_loss_on_a_logits_model_is_refused_at_compile(loss):
    # Keras trains such a model silently on nonsense (logits read as probabilities).
    base = linear_model(RNG.normal(size=(D, K)), np.zeros(K), (D,))
    model = ka.AdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1))
    with pytest.raises(ValueError, match=r"`loss`='sparse_categorical_crossentropy' expects probabilities "
                                         r"\(from_logits=False\).*outputs logits.*from_logits=True"):
        model.compile("sgd", loss)
    assert not model.compiled  # refused before anything was compiled
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # the matching loss is fine


def test_a_logits_loss_on_a_softmax_model_is_refused_and_unknown_outputs_pass():
    softmax = keras.Sequential([keras.Input((D,)), keras.layers.Dense(K, activation="softmax", name="probs")])
    with pytest.raises(ValueError, match=r"expects logits \(from_logits=True\).*Dense 'probs'.*probabilities"):
        ka.AdversarialModel(softmax, attack=ka.attacks.FGSM(epsilon=0.1)).compile(
            "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ka.AdversarialModel(softmax, attack=ka.attacks.FGSM(epsilon=0.1)).compile("sgd", "sparse_categorical_crossentropy")
    # a subclassed model's outputs are unknown until run: nothing to compare, nothing refused
    ka.AdversarialModel(subclassed_dense(K), attack=ka.attacks.FGSM(epsilon=0.1)).compile(
        "sgd", "sparse_categorical_crossentropy")


def test_evaluate_list_is_in_the_order_of_metrics_names():
    # Keras orders the list by metric names, and the compiled metrics and their adversarial copies share
    # theirs: the list held the clean accuracy twice and adv_accuracy last, 7 values for 6 names.
    base = linear_model(RNG.normal(size=(D, K)), np.zeros(K), (D,))
    model = ka.AdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.3))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x, y = _data(32)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    values = model.evaluate(x, y, verbose=0)
    assert model.metrics_names == ["loss", "clean_loss", "adv_loss", "accuracy", "adv_accuracy", "robustness_margin"]
    assert values == [logs[name] for name in model.metrics_names]
    assert logs["accuracy"] != logs["adv_accuracy"]  # the two accuracies are told apart


def test_integer_inputs_fail_clearly():
    model, _ = _linear_adv_model(RNG.normal(size=(D, K)), np.zeros(K), 1.0)
    with pytest.raises(TypeError, match=r"floating point"):
        model.fit(np.ones((8, D), "int32"), np.zeros(8, "int32"), verbose=0)


def test_inputs_outside_bounds_fail_and_leave_weights_untouched():
    w = RNG.normal(size=(D, K)).astype("float32")
    model, base = _linear_adv_model(w, np.zeros(K), 1.0)
    with pytest.raises(ValueError, match=r"`x` must lie inside"):  # checked before fit starts (issue 14)
        model.fit(np.full((8, D), 3.0, "float32"), np.zeros(8, "int32"), verbose=0)
    np.testing.assert_array_equal(base.get_weights()[0], w)


def test_steps_per_execution_trains_the_same_as_one_step_per_call():
    """`compile(steps_per_execution=k)` (Keras' loop of k steps in one graph call, which removes the
    per-step Python overhead on small models) gives the very same training: same random starts, weights
    and logs as one step per call."""
    x = RNG.uniform(0.2, 0.8, size=(40, D)).astype("float32")
    y = RNG.integers(0, K, size=40)

    def train(spe):
        keras.utils.set_random_seed(3)
        base = linear_model(np.random.default_rng(1).normal(size=(D, K)), np.zeros(K), (D,))
        model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=3), seed=5,
                                    objective="trades", adv_weight=2.0)
        model.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], steps_per_execution=spe)
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return [w.numpy() for w in model.base_model.weights], history.history

    (w1, h1), (w4, h4) = train(1), train(4)
    moved = max(float(np.abs(a).max()) for a in w1)
    assert moved > 0
    for a, b in zip(w1, w4):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert set(h1) == set(h4)
    for key in h1:
        np.testing.assert_allclose(h1[key], h4[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_weight_averaging_with_keras_use_ema():
    """An optimizer with `use_ema=True` averages the weights the adversarial steps produce, and `fit` ends
    with the base model holding that average: avg_1 = w_1, avg_k = m·avg_(k-1) + (1-m)·w_k."""
    x = RNG.uniform(0.2, 0.8, size=(24, D)).astype("float32")
    y = RNG.integers(0, K, size=24)
    base = linear_model(np.random.default_rng(2).normal(size=(D, K)), np.zeros(K), (D,))
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=2), objective="trades",
                                adv_weight=2.0, seed=1)
    model.compile(keras.optimizers.Adam(0.05, use_ema=True, ema_momentum=0.6),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    live = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: live.append([w.numpy() for w in base.trainable_weights]))
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[record])
    assert len(live) == 6
    average = live[0]
    for step in live[1:]:
        average = [0.6 * a + 0.4 * w for a, w in zip(average, step)]
    assert not np.allclose(average[0], live[-1][0], atol=1e-3)  # the average is not the last step's weights
    for got, expected in zip(base.trainable_weights, average):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_an_unbuilt_subclassed_base_model_trains_without_a_keras_warning():
    """Plain Keras builds a subclassed model without a build() on its first call, silently; the wrapper
    used to call Keras' default build() on it, which only warns about the model's "unbuilt state"."""
    import warnings

    model = ka.AdversarialModel(subclassed_dense(3), attack=ka.attacks.FGSM(epsilon=0.1))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).random((8, 4)).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        before = model(x).numpy()  # a first call (fit's own symbolic build never warned)
        model.fit(x, np.zeros(8, "int64"), epochs=1, verbose=0)
    assert [tuple(w.shape) for w in model.base_model.weights] == [(4, 3), (3,)]
    assert not np.allclose(model(x).numpy(), before)  # the weights made on the first call are the ones trained


@pytest.mark.parametrize("labels", ["flat", "column"])
@pytest.mark.parametrize("objective", ["ce", "madry", "mart"])
def test_a_sigmoid_model_trains_with_the_binary_crossentropy_loss_by_name(labels, objective):
    # Keras accepts loss="binary_crossentropy" for a (batch, 1) sigmoid output with (batch,) or
    # (batch, 1) labels; the attack's per-example loss once got (batch,) labels against (batch, 1)
    # outputs from the bare Keras function and failed on the rank.
    rng = np.random.default_rng(0)
    x = rng.random((64, 6)).astype("float32")
    y = (x[:, 0] > 0.5).astype("int64")
    y = y if labels == "flat" else y[:, None]
    base = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1, activation="sigmoid")])
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=2), objective=objective)
    model.compile("adam", "binary_crossentropy")
    history = model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and np.isfinite(history.history["adv_loss"][0])
    if objective != "mart":  # MART's adversarial term is its own (boosted CE + weighted KL)
        assert history.history["adv_loss"][0] > history.history["clean_loss"][0] - 1e-6


def test_validation_attacks_at_the_attacks_epsilon_whatever_the_epsilon_schedule():
    # logits (x - 0.2, 0.2 - x): class 0 iff x > 0.2. At x = 0.3 the attack's ε = 0.2 flips every
    # point; the scheduled training ε of a DelayedStart (0) flips none. val_adv_accuracy measured
    # at the scheduled ε once made a ModelCheckpoint on it pick the delayed epochs as most robust.
    x = np.full((8, 1), 0.3, np.float32)
    y = np.zeros(8, np.int64)
    base = linear_model([[1.0, -1.0]], [-0.2, 0.2], (1,))
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.2, steps=5, random_start=False))
    model.compile(keras.optimizers.SGD(learning_rate=0.0),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0,
                        callbacks=[ka.callbacks.DelayedStart(2)])
    assert history.history["epsilon"] == [0.0, 0.0]
    assert history.history["adv_accuracy"] == [1.0, 1.0]       # training: the scheduled ε = 0
    assert history.history["val_accuracy"] == [1.0, 1.0]
    assert history.history["val_adv_accuracy"] == [0.0, 0.0]   # validation: the attack's ε = 0.2
    model.epsilon = 0.0
    assert model.evaluate(x, y, verbose=0, return_dict=True)["adv_accuracy"] == 0.0
