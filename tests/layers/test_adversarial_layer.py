"""The AdversarialExamples layer and offline adversarial augmentation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from tests.conftest import linear_model

W = np.array([[1.0, -1.0], [2.0, 0.5], [-1.0, 1.0]])


def _data(n=10):
    rng = np.random.default_rng(0)
    return rng.uniform(0.2, 0.8, size=(n, 3)).astype("float32"), rng.integers(0, 2, n)


def _fgsm_expected(x, y):
    # FGSM on a linear softmax model: sign of (p - onehot) W^T, step ε = 0.1.
    z = x @ W
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    g = (p - np.eye(2)[y]) @ W.T
    return np.clip(x + 0.1 * np.sign(g), 0, 1)


def test_layer_in_a_tf_data_pipeline_matches_fgsm():
    x, y = _data()
    model = linear_model(W, [0.0, 0.0], (3,))
    layer = ka.layers.AdversarialExamples(model, ka.attacks.FGSM(epsilon=0.1))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(5).map(lambda a, b: (layer(a, b), b))
    got = np.concatenate([a.numpy() for a, _ in ds])
    np.testing.assert_allclose(got, _fgsm_expected(x, y), atol=1e-6)
    assert got.dtype == np.float32


def test_layer_only_in_training_and_config_round_trip():
    x, y = _data()
    model = linear_model(W, [0.0, 0.0], (3,))
    layer = ka.layers.AdversarialExamples(model, ka.attacks.FGSM(epsilon=0.1), only_in_training=True)
    np.testing.assert_array_equal(layer(x, y, training=False), x)
    np.testing.assert_allclose(layer(x, y, training=True), _fgsm_expected(x, y), atol=1e-6)
    clone = ka.layers.AdversarialExamples.from_config(layer.get_config())
    assert clone.only_in_training and clone.attack.epsilon == 0.1
    with pytest.raises(ValueError, match="attack"):
        ka.layers.AdversarialExamples(model, None)


def test_adversarial_dataset_combines_and_shuffles():
    x, y = _data(10)
    model = linear_model(W, [0.0, 0.0], (3,))
    attack = ka.attacks.FGSM(epsilon=0.1)
    ds = ka.augmentation.adversarial_dataset(model, attack, x, y, seed=0)
    xs, ys = zip(*[(a.numpy(), b.numpy()) for a, b in ds])
    xs, ys = np.stack(xs), np.array(ys)
    assert len(xs) == 20
    expected = np.concatenate([x, _fgsm_expected(x, y)])
    expected_y = np.concatenate([y, y])
    # Same multiset of (x, y) rows, in a shuffled order.
    key = lambda a, b: sorted(map(tuple, np.round(np.column_stack([a, b]), 5)))  # noqa: E731
    assert key(xs, ys) == key(expected, expected_y)
    assert not np.array_equal(xs, expected)
    # Adversarial only, half of the data, from a tf.data input.
    xa, ya = ka.augmentation.adversarial_dataset(
        model, attack, tf.data.Dataset.from_tensor_slices((x, y)).batch(4), fraction=0.5,
        include_clean=False, shuffle=False, seed=0, return_numpy=True)
    assert xa.shape == (5, 3) and ya.shape == (5,)
    fgsm = _fgsm_expected(x, y)
    rows = [int(np.argmin(np.abs(fgsm - r).max(1))) for r in xa]  # each row is the FGSM of one example
    assert len(set(rows)) == 5
    np.testing.assert_allclose(xa, fgsm[rows], atol=1e-6)
    np.testing.assert_array_equal(ya, y[rows])
    with pytest.raises(ValueError, match="fraction"):
        ka.augmentation.adversarial_dataset(model, attack, x, y, fraction=1.5)
    with pytest.raises(ValueError, match="`y`"):
        ka.augmentation.adversarial_dataset(model, attack, x)


def test_offline_augmentation_on_digits_improves_robustness_to_the_source_attack(digits):
    (x, y), (xt, yt) = digits
    from keras_adv.models.presets import small_cnn

    keras.utils.set_random_seed(0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    source = small_cnn((8, 8, 1), 10, width=8)
    source.compile(keras.optimizers.Adam(3e-3), loss, metrics=["accuracy"])
    source.fit(x, y, batch_size=64, epochs=8, verbose=0)
    attack = ka.attacks.FGSM(epsilon=0.1)
    ds = ka.augmentation.adversarial_dataset(source, attack, x, y, seed=0)
    student = small_cnn((8, 8, 1), 10, width=8)
    student.compile(keras.optimizers.Adam(3e-3), loss, metrics=["accuracy"])
    student.fit(ds.batch(64), epochs=8, verbose=0, shuffle=False)
    x_adv_test = attack.generate(source, xt, yt, verbose=0)  # transferred test examples
    source_acc = (source.predict(x_adv_test, verbose=0).argmax(1) == yt).mean()
    student_acc = (student.predict(x_adv_test, verbose=0).argmax(1) == yt).mean()
    assert (student.predict(xt, verbose=0).argmax(1) == yt).mean() > 0.85
    assert student_acc > source_acc + 0.1
