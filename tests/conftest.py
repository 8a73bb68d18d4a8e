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


def subclassed_dense(units):
    """A subclassed `keras.Model` holding one Dense layer, with no build() of its own (unbuilt until called)."""

    class SubclassedDense(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(units)

        def call(self, x):
            return self.dense(x)

    return SubclassedDense()


def run_in_fresh_process(code: str, timeout: int = 300) -> str:
    """Runs `code` in a new Python process (fresh TF/Keras state); returns its stdout."""
    import subprocess
    import sys
    import textwrap

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=root,
    )
    if proc.returncode != 0:
        raise AssertionError(f"fresh process failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


class TokenAndPositionEmbedding(keras.layers.Layer):
    """keras.io's "Text classification with Transformer" embedding: two Embeddings inside a custom layer
    (`token_emb` named "tok_emb", masking id 0, and `pos_emb` named "pos_emb")."""

    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = keras.layers.Embedding(vocab_size, embed_dim, mask_zero=True, name="tok_emb")
        self.pos_emb = keras.layers.Embedding(maxlen, embed_dim, name="pos_emb")

    def call(self, x):
        return self.token_emb(x) + self.pos_emb(keras.ops.arange(0, keras.ops.shape(x)[-1], 1))
