"""Bad input gets a clear error that names the argument."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from tests.conftest import linear_model


@pytest.fixture
def model():
    return linear_model(np.ones((4, 2)), np.zeros(2), (4,))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(epsilon=-0.1), r"`epsilon` must be >= 0"),
        (dict(epsilon=float("nan")), r"`epsilon` must be finite"),
        (dict(epsilon="big"), r"`epsilon` must be a number"),
        (dict(epsilon=0.1, steps=0), r"`steps` must be >= 1"),
        (dict(epsilon=0.1, steps=2.5), r"`steps` must be an integer"),
        (dict(epsilon=0.1, restarts=0), r"`restarts` must be >= 1"),
        (dict(epsilon=0.1, step_size=0.0), r"`step_size` must be > 0"),
        (dict(epsilon=0.1, bounds=(1.0, 0.0)), r"`bounds` must satisfy min < max"),
        (dict(epsilon=0.1, bounds=(0.0,)), r"`bounds` must be a pair"),
        (dict(epsilon=0.1, norm="l7"), r"Unknown `norm`"),
        (dict(epsilon=0.1, targeted="yes"), r"`targeted` must be a bool"),
        (dict(epsilon=0.1, loss=3), r"`loss` must be"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ka.attacks.PGD(**kwargs)


def test_inputs_outside_bounds(model):
    x = np.full((2, 4), 1.5, "float32")
    with pytest.raises(ValueError, match=r"`x` must lie inside bounds=\(0.0, 1.0\).*max=1.5"):
        ka.attacks.FGSM(epsilon=0.1)(model, x, [0, 1])


def test_inputs_outside_bounds_in_graph_mode(model):
    attack = ka.attacks.FGSM(epsilon=0.1)
    fn = tf.function(lambda a, b: attack(model, a, b, seed=tf.constant([1, 1])))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`x` must lie inside bounds"):
        fn(tf.fill((2, 4), -0.5), tf.constant([0, 1]))


def test_nan_inputs(model):
    x = np.full((2, 4), 0.5, "float32")
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"`x` contains NaN"):
        ka.attacks.FGSM(epsilon=0.1)(model, x, [0, 1])


def test_integer_images(model):
    with pytest.raises(TypeError, match=r"`x` must be a floating-point.*uint8.*/ 255"):
        ka.attacks.FGSM(epsilon=0.1)(model, np.zeros((2, 4), "uint8"), [0, 1])


def test_labels_of_the_wrong_shape(model):
    x = np.full((2, 4), 0.5, "float32")
    with pytest.raises(ValueError, match=r"`y` must have one label per example.*2 examples, y has 3"):
        ka.attacks.FGSM(epsilon=0.1)(model, x, [0, 1, 1])
    with pytest.raises(ValueError, match=r"`y` must be integer labels of shape"):
        ka.attacks.FGSM(epsilon=0.1)(model, x, np.zeros((2, 2, 2)))


def test_a_single_label_names_the_unbatched_dataset(model):
    x = np.full((2, 4), 0.5, "float32")
    with pytest.raises(ValueError, match=r"got a single label.*ds\.batch\(n\)"):
        ka.attacks.FGSM(epsilon=0.1)(model, x, 1)
    with pytest.raises(ValueError, match=r"`x` must be batched.*ds\.batch\(n\)"):
        ka.attacks.FGSM(epsilon=0.1)(model, x[0], [1])
    # An unbatched dataset of images: x looks batched (rank 3), its label is a scalar.
    cnn = ka.models.presets.small_cnn((8, 8, 1), 10, width=2)
    adv = ka.layers.AdversarialExamples(cnn, ka.attacks.FGSM(epsilon=0.1))
    ds = tf.data.Dataset.from_tensor_slices((np.full((2, 8, 8, 1), 0.5, "float32"), np.array([0, 1])))
    with pytest.raises(ValueError, match=r"got a single label.*ds\.batch\(n\)"):
        ds.map(lambda xb, yb: (adv(xb, yb), yb))
    batched = ds.batch(2).map(lambda xb, yb: (adv(xb, yb), yb))
    assert next(iter(batched))[0].shape == (2, 8, 8, 1)


def test_missing_targets_for_a_targeted_attack(model):
    with pytest.raises(ValueError, match=r"targeted attack needs target classes"):
        ka.attacks.FGSM(epsilon=0.1, targeted=True)(model, np.full((2, 4), 0.5, "float32"), None)


def test_model_without_input_gradient_is_an_error_not_a_zero_step():
    inputs = keras.Input((4,))
    rounded = keras.layers.Lambda(lambda t: tf.stop_gradient(tf.round(t)))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(rounded))
    with pytest.raises(ValueError, match=r"no gradient with respect to its input"):
        ka.attacks.PGD(epsilon=0.1, steps=2)(model, np.full((2, 4), 0.5, "float32"), [0, 1])


def test_multi_output_model_is_rejected():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, [keras.layers.Dense(2)(inputs), keras.layers.Dense(2)(inputs)])
    with pytest.raises(ValueError, match=r"single-output model"):
        ka.attacks.FGSM(epsilon=0.1)(model, np.full((2, 4), 0.5, "float32"), [0, 1])


@pytest.mark.parametrize(
    "labels,match",
    [
        (np.full(3, 2), r"`y` has labels outside \[0, 2\)"),            # an all-zero one-hot row: zero gradient
        (np.full(3, -1), r"`y` must hold class labels >= 0"),
        (np.eye(3, dtype="float32")[[0, 1, 2]], r"one-hot rows of width 3, but the model outputs 2"),
        (np.array([0.5, 1.0, 0.0], np.float32), r"`y` must hold integer class labels, got non-integer"),
        (np.array(["cat", "dog", "cat"]), r"`y` must hold integer class labels or one-hot rows, got strings"),
    ],
)
@pytest.mark.parametrize("call", ["eager", "generate"])
def test_labels_that_do_not_fit_the_model_are_refused_by_a_standalone_attack(model, labels, match, call):
    # Out-of-range labels once made the attack return x unchanged without a word.
    x = np.full((3, 4), 0.5, np.float32)
    attack = ka.attacks.FGSM(epsilon=0.1)
    with pytest.raises((ValueError, TypeError), match=match):
        if call == "eager":
            attack(model, x, labels)
        else:
            attack.generate(model, x, labels, verbose=0)


def test_hotflip_refuses_labels_outside_the_models_classes():
    inputs = keras.Input((4,), dtype="int32")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(10, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    ids = np.ones((3, 4), np.int32)
    with pytest.raises(ValueError, match=r"`y` has labels outside \[0, 2\)"):
        ka.attacks.HotFlip(1)(model, ids, np.array([0, 1, 5]))


def test_a_dict_of_inputs_and_an_unbatched_dataset_are_named(model):
    x = np.full((3, 4), 0.5, np.float32)
    with pytest.raises(TypeError, match=r"`x` is a dict of named inputs \('img'\): FGSM attacks one input tensor"):
        ka.attacks.FGSM(epsilon=0.1)(model, {"img": x}, np.zeros(3, np.int64))
    unbatched = tf.data.Dataset.from_tensor_slices((x, np.zeros(3, np.int64)))
    with pytest.raises(ValueError, match=r"`data` must be batched: call `dataset.batch\(n\)` first"):
        ka.attacks.FGSM(epsilon=0.1).generate(model, unbatched, verbose=0)


def _fn_model(x):
    return x


@pytest.mark.parametrize("bad,match", [
    (None, r"`model` must be a keras.Model, got NoneType"),
    ("small_cnn", r"`model` must be a keras.Model, got str"),
    (_fn_model, r"`model` is a plain callable \(_fn_model\) without a `training` argument"),
])
@pytest.mark.parametrize("call", ["eager", "generate"])
def test_a_model_that_is_not_one_is_named(bad, match, call):
    # Once "'NoneType' object is not callable" or "unexpected keyword argument 'training'" from inside the attack.
    x = np.full((3, 4), 0.5, np.float32)
    attack = ka.attacks.PGD(epsilon=0.1, steps=2)
    with pytest.raises(TypeError, match=match):
        attack(bad, x, [0, 1, 0]) if call == "eager" else attack.generate(bad, x, [0, 1, 0], verbose=0)


def test_an_empty_batch_is_named(model):
    # Once a misleading convolution error from inside the model's graph.
    with pytest.raises(ValueError, match=r"`x` is empty \(shape \(0, 4\)\)"):
        ka.attacks.PGD(epsilon=0.1, steps=2)(model, np.zeros((0, 4), np.float32), np.zeros(0, "int64"))
