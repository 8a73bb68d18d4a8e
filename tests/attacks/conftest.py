import keras
import numpy as np
import pytest
import tensorflow as tf


@pytest.fixture(scope="session")
def digits_cnn(digits):
    """A tiny undefended CNN trained for a few epochs on the digits, and 48 correctly classified test points."""
    from keras_adv.models.presets import small_cnn

    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = digits
    model = small_cnn((8, 8, 1), 10, width=8)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=6, batch_size=64, verbose=0)
    pred = model.predict(x_test, verbose=0).argmax(1)
    keep = np.flatnonzero(pred == y_test)[:48]
    return model, x_test[keep], y_test[keep], float(np.mean(pred == y_test))


def graph_fn(attack, model, **kw):
    """`fn(x, y, seed=(1, 2))` running `attack` inside one tf.function (the graph path)."""
    fn = tf.function(lambda xx, yy, ss: attack(model, xx, yy, seed=ss, **kw))
    return lambda x, y, seed=(1, 2): fn(tf.constant(x), tf.constant(y), tf.constant(seed, tf.int32)).numpy()


def run_graph(attack, model, x, y, seed=(1, 2), **kw):
    """Runs `attack` inside a tf.function with a stateless seed."""
    return graph_fn(attack, model, **kw)(x, y, seed)


def accuracy(model, x, y):
    return float(np.mean(model.predict(x, verbose=0).argmax(1) == np.asarray(y)))
