"""`keras_adv.datasets.load`: tfds datasets (mocked, nothing downloads) and the offline digits."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import keras_adv as ka
from keras_adv import datasets

TFDS_NAMES = [n for n in datasets.available() if datasets.info(n).source == "tfds"]


def test_catalog_lists_the_issue_datasets():
    assert {"digits", "mnist", "fashion_mnist", "cifar10"} <= set(datasets.available())
    assert datasets.info("cifar10").input_shape == (32, 32, 3)
    assert datasets.info("MNIST").num_classes == 10  # case-insensitive
    assert datasets.info("cifar100").num_classes == 100


@pytest.mark.parametrize("name", TFDS_NAMES)
def test_tfds_numpy_scaled_to_unit_interval(name):
    meta = datasets.info(name)
    with tfds.testing.mock_data(num_examples=6):
        x, y = datasets.load(name, "train")
    assert x.shape == (6,) + meta.input_shape and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5  # mock pixels span 0..255
    assert y.dtype == np.int64 and y.shape == (6,)
    assert 0 <= y.min() and y.max() < meta.num_classes


def _fixed_images():
    images = np.array([[[[0]], [[51]]], [[[255]], [[102]]]], dtype=np.uint8)  # (2, 2, 1, 1)
    images = np.tile(images, (2, 1, 1, 1))  # 4 examples
    labels = np.array([3, 7, 1, 0], dtype=np.int64)
    return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})


def test_tfds_exact_scaling_and_batches():
    with tfds.testing.mock_data(as_dataset_fn=lambda *args, **kwargs: _fixed_images()):
        x, y = datasets.load("mnist", "test")
        ds = datasets.load("mnist", "test", batch_size=3, limit=4)
    np.testing.assert_allclose(x[0, :, 0, 0], [0.0, 0.2])
    np.testing.assert_allclose(x[1, :, 0, 0], [1.0, 0.4])
    np.testing.assert_array_equal(y, [3, 7, 1, 0])
    assert isinstance(ds, tf.data.Dataset)
    batches = list(ds)
    assert [int(b[0].shape[0]) for b in batches] == [3, 1]
    assert batches[0][0].dtype == tf.float32 and batches[0][1].dtype == tf.int64
    np.testing.assert_allclose(batches[0][0].numpy(), x[:3])


def test_tfds_limit_and_split_slicing():
    with tfds.testing.mock_data(num_examples=10):
        x, _ = datasets.load("fashion_mnist", "train[:50%]", limit=4)
    assert len(x) == 4


def test_digits_offline_matches_load_digits(digits):
    (x_train, y_train), (x_test, y_test) = digits
    x, y = datasets.load("digits", "test")
    np.testing.assert_array_equal(x, x_test)
    np.testing.assert_array_equal(y, y_test)
    xs, ys = datasets.load("digits", "train", shuffle=True, limit=100, seed=3)
    assert xs.shape == (100, 8, 8, 1) and len(set(map(bytes, xs))) == 100
    # shuffled subset of the training split, with labels kept aligned
    index = {bytes(a): b for a, b in zip(x_train, y_train)}
    assert all(index[bytes(a)] == b for a, b in zip(xs, ys))
    ds = datasets.load("digits", "train", batch_size=500)
    assert sum(int(b[0].shape[0]) for b in ds) == len(x_train)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="imagenet"), "Available datasets: .*digits.*mnist"),
    (dict(name="digits", split="validation"), "`split`"),
    (dict(name="digits", batch_size=0), "`batch_size`"),
    (dict(name="digits", limit=-1), "`limit`"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.load(**kwargs)


def test_exported_from_package():
    assert ka.datasets.load is datasets.load


@pytest.mark.parametrize("name", ["breast_cancer", "flows"])
def test_tabular_datasets_from_the_catalog(name):
    meta = datasets.info(name)
    x, y = datasets.load(name, "test")
    assert x.shape[1:] == meta.input_shape and x.dtype == np.float32 and set(np.unique(y)) == {0, 1}
    space = datasets.feature_space(name)
    assert ka.domains.check_examples(space, x).valid.all()
    batches = list(datasets.load(name, "train", batch_size=256, limit=300))
    assert [int(b[0].shape[0]) for b in batches] == [256, 44]
    with pytest.raises(ValueError, match="image dataset"):
        datasets.feature_space("digits")
