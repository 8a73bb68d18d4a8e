import json

import numpy as np
import pytest

import keras_adv
from keras_adv.evaluation import transfer_attack, transfer_matrix
from tests.conftest import linear_model
from tests.evaluation.helpers import train_small_cnn

W = np.array([[1.0, -1.0], [-2.0, 2.0], [0.5, -0.5], [1.0, -1.0]], "float32")


def test_identical_models_transfer_exactly_and_matrix_equals_direct_calls():
    rng = np.random.default_rng(0)
    x = (0.5 + rng.uniform(-0.05, 0.05, (30, 4))).astype("float32")
    y = (x @ (W[:, 0] - W[:, 1]) < 0).astype("int64")
    a = linear_model(W, np.zeros(2, "float32"), (4,))
    b = linear_model(W, np.zeros(2, "float32"), (4,))
    # A different model (second input down-weighted): its entries must equal direct calls.
    c = linear_model(W * np.array([[1], [0.1], [1], [1]], "float32"), np.zeros(2, "float32"), (4,))
    attack = keras_adv.attacks.FGSM(0.02)
    m = transfer_matrix(attack, {"a": a, "b": b, "c": c}, x, y)
    assert m.accuracy.shape == (3, 3)
    assert m["a", "b"] == m["a", "a"] == m["b", "b"]  # same function: transfer is white-box
    for s, sm in [("a", a), ("c", c)]:
        x_adv = attack(sm, x, y).numpy()
        for t, tm in [("a", a), ("c", c)]:
            assert m[s, t] == np.mean(np.argmax(tm(x_adv), -1) == y)
    assert transfer_attack(attack, c, a, x, y) == m["c", "a"]
    d = json.loads(json.dumps(m.to_dict()))
    assert d["sources"] == ["a", "b", "c"] and len(d["accuracy"]) == 3
    assert "source \\ target" in str(m)
    with pytest.raises(ValueError, match="sources"):
        transfer_matrix(attack, {}, x, y)


def test_digits_transfer_weaker_than_white_box(digits):
    _, (xs, ys) = digits
    m1 = train_small_cnn(digits, epochs=6, seed=1)
    m2 = train_small_cnn(digits, epochs=6, seed=2, width=8)
    m = transfer_matrix(keras_adv.attacks.PGD(0.15, steps=5, seed=0), {"m1": m1, "m2": m2}, xs[:96], ys[:96])
    for s, t in [("m1", "m2"), ("m2", "m1")]:
        assert m[s, t] >= m[t, t]  # transfer is at most as strong as white-box on the target
        assert m[s, t] < m.clean_accuracy[t]  # ...but the examples do transfer
