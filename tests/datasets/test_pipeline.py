"""keras_adv.datasets.batches: in-memory arrays as a tf.data pipeline with autotuning off."""

import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka


def _epochs(ds, n):
    return [np.concatenate([b[1].numpy() for b in ds]) for _ in range(n)]


def test_every_example_once_per_epoch_reshuffled_each_epoch_and_seeded():
    x = np.arange(50, dtype="float32").reshape(50, 1)
    y = np.arange(50)
    ds = ka.datasets.batches(x, y, 16, seed=3)
    first, second = _epochs(ds, 2)
    assert sorted(first) == list(range(50)) and sorted(second) == list(range(50))
    assert not np.array_equal(first, second)  # a new order every epoch, as fit does for arrays
    again = _epochs(ka.datasets.batches(x, y, 16, seed=3), 2)
    np.testing.assert_array_equal(again[0], first)  # the same seed, the same sequence of orders
    np.testing.assert_array_equal(again[1], second)
    assert [int(b[0].shape[0]) for b in ds] == [16, 16, 16, 2]
    for xb, yb in ds:  # inputs stay paired with their labels
        np.testing.assert_array_equal(xb.numpy()[:, 0], yb.numpy().astype("float32"))


def test_unshuffled_order_nested_inputs_and_autotuning_off():
    x = {"a": np.arange(10, dtype="float32"), "b": np.arange(10, 20, dtype="float32")}
    ds = ka.datasets.batches(x, np.arange(10), 4, shuffle=False)
    assert ds.options().autotune.enabled is False
    np.testing.assert_array_equal(np.concatenate([b[0]["b"].numpy() for b in ds]), np.arange(10, 20))
    only_x = ka.datasets.batches(np.ones((5, 2), "float32"), batch_size=2, shuffle=False)
    assert [tuple(b.shape) for b in only_x] == [(2, 2), (2, 2), (1, 2)]


def test_fit_on_it_trains_like_on_the_arrays_unshuffled():
    x = np.random.default_rng(0).random((40, 3)).astype("float32")
    y = (x.sum(1) > 1.5).astype("int64")

    def trained(data, **kw):
        tf.keras.utils.set_random_seed(0)
        m = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
        m.compile("sgd", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        m.fit(*data, epochs=2, verbose=0, **kw)
        return m.get_weights()

    ours = trained((ka.datasets.batches(x, y, 8, shuffle=False),), shuffle=False)
    keras_own = trained((x, y), batch_size=8, shuffle=False)
    for a, b in zip(ours, keras_own):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kwargs, match", [
    (dict(x=np.ones((4, 2)), y=np.ones(3), batch_size=2), "same number of examples"),
    (dict(x=np.ones((4, 2)), y=np.ones(4), batch_size=0), "batch_size must be a positive integer"),
    (dict(x=np.ones((4, 2)), y=np.ones(4), batch_size=2.0), "batch_size must be a positive integer"),
    (dict(x=np.ones((4, 2)), y=np.ones(4), batch_size=2, seed=True), "seed must be an integer"),
    (dict(x=np.ones((0, 2)), y=np.ones(0), batch_size=2), "no examples"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ka.datasets.batches(**kwargs)
