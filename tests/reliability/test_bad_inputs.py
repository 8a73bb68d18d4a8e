"""One table of bad inputs, each with the error it must raise (naming the argument) or its documented behaviour.

Every case runs on a fresh tiny model and asserts, besides the error, that the
weights are unchanged and that no file (checkpoint, partial file) was written.
In-memory data is checked before the first step; streamed data (`tf.data`) is
checked per batch in the graph, and a failing batch in the *middle* of an epoch
leaves the weights as they were before `fit` (see keras_adv/utils/data_checks.py).
"""

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from keras_adv.models import FreeAdversarialModel

D, K, N = 8, 3, 64
RNG = np.random.default_rng(0)
X = RNG.uniform(0.1, 0.9, size=(N, D)).astype("float32")
Y = RNG.integers(0, K, N).astype("int32")
SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _base(nan=False):
    base = keras.Sequential([keras.Input((D,)), keras.layers.Dense(K)])
    if nan:
        w = base.get_weights()
        base.set_weights([np.full_like(w[0], np.nan), w[1]])
    return base


def _model(attack=None, cls=ka.AdversarialModel, loss=SPARSE, base=None, **kw):
    base = base or _base()
    model = cls(base, attack=attack or ka.attacks.FGSM(epsilon=0.1), **kw)
    model.compile(keras.optimizers.SGD(0.1), loss=loss)
    return model


def _ds(x, y, sw=None, batch=16):
    items = (x, y) if sw is None else (x, y, sw)
    return tf.data.Dataset.from_tensor_slices(items).batch(batch)


def _with(arr, index, value):
    arr = arr.copy()
    arr[index] = value
    return arr


class _Ckpt:
    """A ModelCheckpoint in the case's folder: no file may appear when fit fails."""

    def __init__(self, folder):
        self.cb = keras.callbacks.ModelCheckpoint(os.path.join(folder, "ckpt.weights.h5"), save_weights_only=True)


# ------------------------------------------------------------------- cases
# Each case: (id, fn(model_factory, tmp) -> model used, expected exception or None, regex of the message).
# fn returns the model whose weights must be unchanged (or None when no model is involved).

def fit(model, *args, tmp, **kw):
    kw.setdefault("verbose", 0)
    kw.setdefault("batch_size", 16)
    kw.setdefault("callbacks", [_Ckpt(tmp).cb])
    if isinstance(args[0], tf.data.Dataset):
        kw.setdefault("shuffle", False)  # a pipeline shuffles itself (Keras warns otherwise)
    model.fit(*args, **kw)


def c_nan_first(tmp):
    m = _model(); fit(m, _with(X, (0, 0), np.nan), Y, tmp=tmp); return m


def c_nan_mid_epoch(tmp):
    m = _model(); fit(m, _with(X, (40, 3), np.nan), Y, tmp=tmp); return m


def c_inf(tmp):
    m = _model(); fit(m, _with(X, (63, 0), np.inf), Y, tmp=tmp); return m


def c_nan_later_batch_dataset(tmp):
    m = _model(); fit(m, _ds(_with(X, (50, 1), np.nan), Y), tmp=tmp, batch_size=None); return m


def c_0_16_later_batch_dataset(tmp):
    m = _model(); fit(m, _ds(np.concatenate([X[:32], X[32:] * 16]), Y), tmp=tmp, batch_size=None); return m


def c_labels_out_of_range(tmp):
    m = _model(); fit(m, X, _with(Y, 5, 12), tmp=tmp); return m


def c_negative_label(tmp):
    m = _model(); fit(m, X, _with(Y, 5, -1), tmp=tmp); return m


def c_label_out_of_range_later_batch_dataset(tmp):
    m = _model(); fit(m, _ds(X, _with(Y, 60, 12)), tmp=tmp, batch_size=None); return m


def c_float_labels_sparse(tmp):
    m = _model(); fit(m, X, Y.astype("float32") + 0.5, tmp=tmp); return m


def c_one_hot_with_sparse_loss(tmp):
    m = _model(); fit(m, X, np.eye(K, dtype="float32")[Y], tmp=tmp); return m


def c_int_labels_with_categorical_loss(tmp):
    m = _model(loss=keras.losses.CategoricalCrossentropy(from_logits=True)); fit(m, X, Y, tmp=tmp); return m


def c_length_mismatch(tmp):
    m = _model(); fit(m, X, Y[:-3], tmp=tmp); return m


def c_empty_arrays(tmp):
    m = _model(); fit(m, X[:0], Y[:0], tmp=tmp); return m


def c_empty_dataset(tmp):
    m = _model(); fit(m, _ds(X[:0], Y[:0]), tmp=tmp, batch_size=None); return m


def c_outside_bounds_0_16(tmp):
    m = _model(); fit(m, X * 16, Y, tmp=tmp); return m


def c_wrong_feature_shape(tmp):
    m = _model(); fit(m, X[:, :5], Y, tmp=tmp); return m


def c_string_inputs(tmp):
    m = _model(); fit(m, np.array([["a"] * D] * N), Y, tmp=tmp); return m


def c_integer_images(tmp):
    m = _model(); fit(m, (X * 255).astype("uint8"), Y, tmp=tmp); return m


def c_unbatched_x(tmp):
    m = _model(); fit(m, np.float32(0.5), Y[:1], tmp=tmp); return m


def c_nan_sample_weight(tmp):
    m = _model(); fit(m, X, Y, sample_weight=_with(np.ones(N, "float32"), 7, np.nan), tmp=tmp); return m


def c_negative_sample_weight(tmp):
    m = _model(); fit(m, X, Y, sample_weight=_with(np.ones(N, "float32"), 7, -1.0), tmp=tmp); return m


def c_nan_sample_weight_dataset(tmp):
    sw = _with(np.ones(N, "float32"), 50, np.nan)
    m = _model(); fit(m, _ds(X, Y, sw), tmp=tmp, batch_size=None); return m


def c_nan_validation_data(tmp):
    m = _model(); fit(m, X, Y, validation_data=(_with(X, (0, 0), np.nan), Y), tmp=tmp); return m


def c_evaluate_nan(tmp):
    m = _model(); m.evaluate(_with(X, (3, 3), np.nan), Y, verbose=0); return m


def c_evaluate_labels_out_of_range(tmp):
    m = _model(); m.evaluate(X, _with(Y, 0, 7), verbose=0); return m


def c_train_on_batch_0_255(tmp):
    m = _model(); m.train_on_batch(X * 255, Y); return m


def c_train_on_batch_label_7(tmp):
    m = _model(); m.train_on_batch(X, _with(Y, 0, 7)); return m


def c_test_on_batch_nan(tmp):
    m = _model(); m.test_on_batch(_with(X, (3, 3), np.nan), Y); return m


def c_model_returning_nan(tmp):
    m = _model(base=_base(nan=True)); fit(m, X, Y, tmp=tmp); return m


def c_targeted_training_attack(tmp):
    _model(attack=ka.attacks.PGD(epsilon=0.1, steps=2, targeted=True))


def c_targeted_eval_attack(tmp):
    _model(eval_attack=ka.attacks.PGD(epsilon=0.1, steps=2, targeted=True))


def c_unknown_objective(tmp):
    _model(objective="tradez")


def c_unknown_attack_name(tmp):
    _model(attack="pgdd")


def c_unknown_norm(tmp):
    ka.attacks.PGD(epsilon=0.1, norm="l3")


def c_negative_epsilon(tmp):
    ka.attacks.PGD(epsilon=-0.1)


def c_negative_call_epsilon_np32(tmp):
    ka.attacks.FGSM(epsilon=0.1)(_base(), X[:4], Y[:4], epsilon=np.float32(-0.1))


def c_negative_call_epsilon_tensor(tmp):
    ka.attacks.FGSM(epsilon=0.1)(_base(), X[:4], Y[:4], epsilon=tf.constant(-0.1))


def c_negative_epsilon_schedule(tmp):
    m = _model(); fit(m, X, Y, tmp=tmp, callbacks=[ka.callbacks.EpsilonSchedule(lambda e: -0.1)]); return m


def c_negative_adv_weight_schedule(tmp):
    m = _model(); fit(m, X, Y, tmp=tmp, callbacks=[ka.callbacks.AdvWeightSchedule(lambda e: -1.0)]); return m


def c_negative_ramp(tmp):
    ka.callbacks.EpsilonRamp(epsilon=-0.3)


def c_negative_delay(tmp):
    ka.callbacks.DelayedStart(-1)


def c_callback_on_plain_model(tmp):
    base = _base()
    base.compile("sgd", SPARSE)
    base.fit(X, Y, verbose=0, callbacks=[ka.callbacks.EpsilonRamp(0.1)])
    return base


def c_free_nan_pixel(tmp):
    m = _model(cls=FreeAdversarialModel, replays=2); fit(m, _with(X, (9, 2), np.nan), Y, tmp=tmp); return m


def c_free_nan_pixel_dataset(tmp):
    m = _model(cls=FreeAdversarialModel, replays=2)
    fit(m, _ds(_with(X, (40, 2), np.nan), Y), tmp=tmp, batch_size=None)
    return m


def c_free_0_16_data(tmp):
    m = _model(cls=FreeAdversarialModel, replays=2); fit(m, X * 16, Y, tmp=tmp); return m


def _binary_model():
    # A one-unit sigmoid model (a fraud or spam filter); its margin metric gathers the label's class.
    base = keras.Sequential([keras.Input((D,)), keras.layers.Dense(1, activation="sigmoid")])
    return _model(base=base, loss="binary_crossentropy")


def c_binary_label_2(tmp):
    m = _binary_model(); fit(m, X, _with(Y % 2, 50, 2), tmp=tmp); return m


def c_binary_label_2_tf_data(tmp):
    m = _binary_model(); fit(m, _ds(X, _with((Y % 2).astype("float32"), 50, 2.0)), tmp=tmp); return m


def c_binary_evaluate_label_5(tmp):
    m = _binary_model(); m.evaluate(X, np.full(N, 5), verbose=0); return m


def c_evaluate_robustness_label_12(tmp):
    ka.evaluate_robustness(_base(), X[:8], _with(Y[:8], 2, 12), attacks={"fgsm": ka.attacks.FGSM(epsilon=0.1)},
                           verbose=0, diagnose=False)


# Text: token ids fed to an Embedding perturbed in embedding space (perturb_layer="embedding").
VT, TT = 12, 6
IDS = RNG.integers(1, VT, size=(N, TT)).astype("int32")
Y2 = RNG.integers(0, 2, N).astype("int32")


def _text_model(units=2, loss=SPARSE):
    base = keras.Sequential([keras.Input((TT,), dtype="int32"), keras.layers.Embedding(VT, 4, name="embedding"),
                             keras.layers.GlobalAveragePooling1D(),
                             keras.layers.Dense(units, activation="sigmoid" if units == 1 else None)])
    return _model(base=base, attack=ka.attacks.PGD(epsilon=0.3, norm="l2", steps=1), loss=loss,
                  perturb_layer="embedding")


def c_label_12_validation_tf_data(tmp):
    m = _model(); fit(m, X, Y, validation_data=_ds(X, _with(Y, 50, 12)), tmp=tmp); return m


def c_text_float_ids(tmp):
    m = _text_model(); fit(m, (IDS / VT).astype("float32"), Y2, tmp=tmp); return m


def c_text_float_ids_tf_data(tmp):
    m = _text_model(); fit(m, _ds((IDS / VT).astype("float32"), Y2), tmp=tmp, batch_size=None); return m


def c_text_float_ids_validation_tf_data(tmp):
    m = _text_model()
    fit(m, IDS, Y2, validation_data=_ds(IDS.astype("float32"), Y2), tmp=tmp)
    return m


def c_text_float_ids_evaluate(tmp):
    m = _text_model(); m.evaluate(IDS.astype("float64"), Y2, verbose=0); return m


def c_text_strings_to_an_id_model(tmp):
    m = _text_model(); fit(m, np.array(["win free cash now"] * N, dtype=object), Y2, tmp=tmp); return m


def c_text_binary_one_hot_labels(tmp):
    m = _text_model(units=1, loss="binary_crossentropy")
    fit(m, IDS, keras.utils.to_categorical(Y2, 2), tmp=tmp)
    return m


def c_text_evaluate_robustness_float_ids(tmp):
    m = _text_model()
    ka.evaluate_robustness(m.base_model, (IDS / VT).astype("float32"), Y2, attacks={"pgd": ka.attacks.PGD(epsilon=0.1)},
                           verbose=0)
    return m


def c_text_oov_id_later_batch_tf_data(tmp):
    m = _text_model(); fit(m, _ds(_with(IDS, (60, 3), VT + 7), Y2), tmp=tmp, batch_size=None); return m


def c_text_negative_id_later_batch_tf_data(tmp):
    m = _text_model(); fit(m, _ds(_with(IDS, (40, 0), -2), Y2), tmp=tmp, batch_size=None); return m


def c_text_oov_id_validation_tf_data(tmp):
    m = _text_model()
    fit(m, IDS, Y2, validation_data=_ds(_with(IDS, (60, 3), VT + 7), Y2), epochs=2, tmp=tmp)
    return m


def c_text_oov_id_evaluate_tf_data(tmp):
    m = _text_model(); m.evaluate(_ds(_with(IDS, (60, 3), VT + 7), Y2), verbose=0); return m


def c_text_oov_id_predict(tmp):
    m = _text_model(); m.predict(_with(IDS, (60, 3), VT + 7), verbose=0); return m


def c_absurd_steps_from_config(tmp):
    keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(
        ka.attacks.PGD(epsilon=0.1, steps=10)) | {"config": {"epsilon": 0.1, "steps": 10**9}})


CASES = [
    ("nan_first_example", c_nan_first, ValueError, r"`x` contains NaN"),
    ("nan_mid_epoch", c_nan_mid_epoch, ValueError, r"`x` contains NaN .*example 40"),
    ("inf_last_example", c_inf, ValueError, r"`x` contains NaN or infinite"),
    ("nan_later_batch_tf_data", c_nan_later_batch_dataset, ValueError,
     r"^fit\(\): `x` contains NaN or infinite values\. The weights .*restored"),
    ("0_16_later_batch_tf_data", c_0_16_later_batch_dataset, ValueError,
     r"`x` must lie inside bounds=\(0\.0, 1\.0\).*min/max of the batch: 1\.6\d*, 14\.36\d*\. The weights .*restored"),
    ("labels_out_of_range", c_labels_out_of_range, ValueError, r"`y` has labels outside \[0, 3\)"),
    ("negative_label", c_negative_label, ValueError, r"`y` has labels outside \[0, 3\)"),
    ("label_12_later_batch_tf_data", c_label_out_of_range_later_batch_dataset, ValueError,
     r"`y` has labels outside \[0, 3\).*in the batch: -?\d+, 12\. The weights and optimizer state were restored"),
    ("float_labels_sparse_loss", c_float_labels_sparse, ValueError, r"`y` holds non-integer"),
    ("one_hot_with_sparse_loss", c_one_hot_with_sparse_loss, ValueError, r"`y` looks one-hot"),
    ("int_labels_categorical_loss", c_int_labels_with_categorical_loss, ValueError, r"`y` must be one-hot"),
    ("x_y_length_mismatch", c_length_mismatch, ValueError, r"`x` and `y` must have the same length"),
    ("empty_arrays", c_empty_arrays, ValueError, r"`x` is empty"),
    ("empty_dataset", c_empty_dataset, ValueError, r"`x` \(a tf.data.Dataset\) is empty"),
    ("data_0_16_outside_bounds", c_outside_bounds_0_16, ValueError, r"`x` must lie inside the attack bounds"),
    ("wrong_input_shape", c_wrong_feature_shape, ValueError, r"`x` has shape \(64, 5\), but the model takes inputs of shape \(None, 8\)"),
    ("string_inputs", c_string_inputs, TypeError, r"`x` must be numeric"),
    ("uint8_images", c_integer_images, TypeError, r"`x` must be floating point"),
    ("unbatched_scalar_x", c_unbatched_x, ValueError, r"`x` must be batched"),
    ("nan_sample_weight", c_nan_sample_weight, ValueError, r"`sample_weight` contains NaN"),
    ("negative_sample_weight", c_negative_sample_weight, ValueError, r"`sample_weight` must be >= 0"),
    ("nan_sample_weight_tf_data", c_nan_sample_weight_dataset, ValueError, r"`sample_weight` contains NaN, infinite or negative values\. The weights .*restored"),
    ("nan_validation_data", c_nan_validation_data, ValueError, r"`validation_data x` contains NaN"),
    ("evaluate_nan", c_evaluate_nan, ValueError, r"`x` contains NaN"),
    ("evaluate_label_7", c_evaluate_labels_out_of_range, ValueError, r"`y` has labels outside"),
    ("train_on_batch_0_255", c_train_on_batch_0_255, ValueError, r"`x` must lie inside the attack bounds"),
    ("train_on_batch_label_7", c_train_on_batch_label_7, ValueError, r"`y` has labels outside \[0, 3\)"),
    ("test_on_batch_nan", c_test_on_batch_nan, ValueError, r"`x` contains NaN"),
    ("model_returning_nan", c_model_returning_nan, ValueError, r"loss became NaN or infinite.*restored"),
    ("targeted_training_attack", c_targeted_training_attack, ValueError, r"`attack` is targeted"),
    ("targeted_eval_attack", c_targeted_eval_attack, ValueError, r"`eval_attack` is targeted"),
    ("unknown_objective", c_unknown_objective, ValueError, r"Unknown `objective`: 'tradez'"),
    ("unknown_attack_name", c_unknown_attack_name, TypeError, r"`attack` must be a keras_adv.attacks.Attack"),
    ("unknown_norm", c_unknown_norm, ValueError, r"Unknown `norm`: 'l3'"),
    ("negative_epsilon", c_negative_epsilon, ValueError, r"`epsilon` must be >= 0"),
    ("negative_call_epsilon_np_float32", c_negative_call_epsilon_np32, ValueError, r"`epsilon`"),
    ("negative_call_epsilon_tensor", c_negative_call_epsilon_tensor, (ValueError, tf.errors.InvalidArgumentError),
     r"`epsilon`"),
    ("negative_epsilon_schedule", c_negative_epsilon_schedule, ValueError,
     r"EpsilonSchedule returned an invalid value at epoch 0.*`epsilon` must be >= 0"),
    ("negative_adv_weight_schedule", c_negative_adv_weight_schedule, ValueError,
     r"AdvWeightSchedule .*`adv_weight` must be >= 0"),
    ("negative_ramp_epsilon", c_negative_ramp, ValueError, r"`epsilon` must be >= 0"),
    ("negative_delay", c_negative_delay, ValueError, r"`epochs` must be >= 0"),
    ("schedule_on_plain_keras_model", c_callback_on_plain_model, TypeError, r"needs a keras_adv.AdversarialModel"),
    ("free_nan_pixel", c_free_nan_pixel, ValueError, r"`x` contains NaN"),
    ("free_nan_pixel_tf_data", c_free_nan_pixel_dataset, ValueError, r"`x` contains NaN or infinite values\..*restored"),
    ("free_0_16_data", c_free_0_16_data, ValueError, r"`x` must lie inside the attack bounds"),
    ("binary_label_2", c_binary_label_2, ValueError, r"`y` has labels outside \[0, 1\].*binary crossentropy"),
    ("binary_label_2_tf_data", c_binary_label_2_tf_data, ValueError,
     r"`y` has labels outside \[0, 1\].*in the batch: 0, 2\. The weights and optimizer state were restored"),
    ("binary_evaluate_label_5", c_binary_evaluate_label_5, ValueError, r"`y` has labels outside \[0, 1\]"),
    ("evaluate_robustness_label_12", c_evaluate_robustness_label_12, ValueError, r"`y`.*(12|outside|range)"),
    ("absurd_steps_in_config", c_absurd_steps_from_config, ValueError, r"`PGD.steps`=1000000000 exceeds the limit"),
    ("label_12_validation_tf_data", c_label_12_validation_tf_data, ValueError,
     r"^fit\(\): `validation_data y` has labels outside \[0, 3\).*restored"),
    ("text_float_ids", c_text_float_ids, TypeError,
     r"`x` holds floating-point values \(float32\), but the model takes integer token ids .*int32.*truncated"),
    ("text_float_ids_tf_data", c_text_float_ids_tf_data, TypeError, r"`x` holds floating-point values \(float32\)"),
    ("text_float_ids_validation_tf_data", c_text_float_ids_validation_tf_data, TypeError,
     r"`validation_data` holds floating-point values"),
    ("text_float_ids_evaluate", c_text_float_ids_evaluate, TypeError, r"`x` holds floating-point values \(float64\)"),
    ("text_strings_to_an_id_model", c_text_strings_to_an_id_model, TypeError,
     r"`x` holds strings, but the model takes token ids .*vectorizer\(texts\)"),
    ("text_binary_one_hot_labels", c_text_binary_one_hot_labels, ValueError,
     r"`y` looks one-hot \(shape \(64, 2\)\) but the model has one sigmoid output"),
    ("text_evaluate_robustness_float_ids", c_text_evaluate_robustness_float_ids, TypeError,
     r"`data` holds floating-point values.*HotFlip"),
    ("text_oov_id_later_batch_tf_data", c_text_oov_id_later_batch_tf_data, ValueError,
     r"^fit\(\): `x` holds token ids outside \[0, 12\), the vocabulary of the Embedding 'embedding'.*"
     r"in the batch: \d+, 19\. The weights and optimizer state were restored"),
    ("text_negative_id_later_batch_tf_data", c_text_negative_id_later_batch_tf_data, ValueError,
     r"`x` holds token ids outside \[0, 12\).*in the batch: -2, \d+\. The weights .*restored"),
    ("text_oov_id_validation_tf_data", c_text_oov_id_validation_tf_data, ValueError,
     r"^fit\(\): `validation_data x` holds token ids outside \[0, 12\).*restored"),
    ("text_oov_id_evaluate_tf_data", c_text_oov_id_evaluate_tf_data, ValueError,
     r"^evaluate\(\): `x` holds token ids outside \[0, 12\)"),
    ("text_oov_id_predict", c_text_oov_id_predict, ValueError, r"^predict\(\): `x` holds token ids outside \[0, 12\)"),
]


@pytest.mark.parametrize("case_id,fn,error,match", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, fn, error, match, tmp_path, monkeypatch):
    made = []
    original = ka.AdversarialModel.__init__

    def recording_init(self, base_model, *a, **kw):
        made.append((base_model, [w.copy() for w in base_model.get_weights()]))
        original(self, base_model, *a, **kw)

    monkeypatch.setattr(ka.AdversarialModel, "__init__", recording_init)
    with pytest.raises(error, match=match) as info:
        fn(str(tmp_path))
    message = str(info.value)
    assert "Graph execution error" not in message and len(message.splitlines()) <= 3, message
    for base, before in made:  # weights unchanged
        for a, b in zip(base.get_weights(), before):
            np.testing.assert_array_equal(a, b)
    assert os.listdir(tmp_path) == []  # no checkpoint, no partial file


# ------------------------------------------------------ documented behaviours
def test_batch_of_one_trains():
    m = _model()
    hist = m.fit(X[:1], Y[:1], epochs=2, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()


def test_float16_inputs_with_float32_bounds_train_and_attack_in_float32():
    m = _model()
    hist = m.fit(X.astype("float16"), Y, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    x_adv = ka.attacks.PGD(epsilon=0.1, steps=2, seed=0)(m.base_model, X[:4].astype("float16"), Y[:4])
    assert x_adv.dtype == tf.float32  # the perturbation is computed in float32 (documented in Attack)


def test_epsilon_wider_than_the_bounds_warns():
    with pytest.warns(UserWarning) as caught:  # the attack warns when built, the model when it wraps it
        _model(attack=ka.attacks.FGSM(epsilon=2.0))
    messages = [str(w.message) for w in caught]
    assert any("epsilon=2 is at least the width of its bounds" in m for m in messages), messages
    assert any("FGSM: `epsilon`=2 is larger than the width of the input domain" in m for m in messages), messages
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _model(attack=ka.attacks.FGSM(epsilon=0.5))


def test_targeted_attack_with_target_equal_to_the_true_label_is_a_no_op_in_budget():
    base = _base()
    pred = np.argmax(base.predict(X, verbose=0), -1)
    attack = ka.attacks.PGD(epsilon=0.1, steps=5, targeted=True, seed=0)
    x_adv = attack(base, X, pred).numpy()  # already "on target": the attack keeps them there
    assert np.all(np.abs(x_adv - X) <= 0.1 + 1e-6) and np.isfinite(x_adv).all()
    assert np.mean(np.argmax(base.predict(x_adv, verbose=0), -1) == pred) == 1.0


def test_model_returning_nan_gives_finite_examples_in_bounds():
    x_adv = ka.attacks.PGD(epsilon=0.1, steps=3, seed=0)(_base(nan=True), X[:8], Y[:8]).numpy()
    assert np.isfinite(x_adv).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    assert np.abs(x_adv - X[:8]).max() <= 0.1 + 1e-6


def test_mixed_precision_overflow_skips_the_step_and_keeps_weights_finite():
    """Under mixed_float16, Keras' LossScaleOptimizer skips steps whose scaled gradients overflow."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        base = keras.Sequential([keras.Input((D,)), keras.layers.Dense(K), keras.layers.Activation("linear",
                                                                                                dtype="float32")])
        base.set_weights([np.full((D, K), 1e3, "float32"), np.zeros(K, "float32")])  # float16 gradients overflow
        m = _model(base=base, attack=ka.attacks.FGSM(epsilon=0.05))
        m.fit(X, Y, batch_size=32, epochs=1, verbose=0)
        assert all(np.isfinite(w).all() for w in base.get_weights())
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_norm_given_as_a_dict_keeps_its_name():
    assert ka.attacks.PGD(epsilon=0.1, norm={"name": "linf"}).norm.name == "linf"
