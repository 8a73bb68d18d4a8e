import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture(scope="session")
def digits():
    from keras_adv.datasets import load_digits

    return load_digits()


def linear_model(weights, bias, input_shape):
    """A Dense model with fixed weights: outputs logits W·flatten(x) + b."""
    w = np.asarray(weights, "float32")
    inputs = keras.Input(input_shape)
    h = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(w.shape[1])
    out = dense(h)
    model = keras.Model(inputs, out)
    dense.set_weights([w, np.asarray(bias, "float32")])
    return model
