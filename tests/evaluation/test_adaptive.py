"""Adaptive evaluation: the layer probe, and `evaluate_robustness(..., adaptive=True)` on planted models."""

import json

import keras
import numpy as np
import pytest

import keras_adv
from keras_adv.evaluation import diagnostics, planted


@pytest.fixture(scope="module")
def linear(digits):
    """A softmax-regression digits classifier (logits): trains in a second, honest gradients."""
    (xt, yt), _ = digits
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    m.compile(optimizer=keras.optimizers.Adam(0.05),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(xt, yt, epochs=15, batch_size=128, verbose=0)
    return m


def _attacks():
    return {"FGSM": keras_adv.attacks.FGSM(0.1, seed=0), "PGD": keras_adv.attacks.PGD(0.1, steps=10, seed=0)}


@pytest.fixture(scope="module")
def sample(digits):
    _, (xs, ys) = digits
    return xs[:64], ys[:64]


def test_probe_layers_names_the_masking_layer(linear, sample):
    x, _ = sample
    assert diagnostics.probe_layers(linear, x, epsilon=0.1) == {}
    inp = keras.Input((8, 8, 1))
    honest = keras.Model(inp, keras.layers.Softmax()(linear(keras.layers.ReLU()(keras.layers.Rescaling(0.5)(inp)))))
    assert diagnostics.probe_layers(honest, x, epsilon=0.1) == {}
    found = diagnostics.probe_layers(planted.gradient_reversal(linear), x, epsilon=0.1)
    (name, f), = found.items()
    assert f["reason"] == "inconsistent" and f["cosine"] == pytest.approx(-1.0, abs=1e-4)
    assert [f["reason"] for f in diagnostics.probe_layers(planted.quantized(linear), x, epsilon=0.1).values()] \
        == ["no_gradient"]
    assert [f["reason"] for f in diagnostics.probe_layers(planted.noisy(linear), x, epsilon=0.1).values()] \
        == ["random"]
    assert [f["reason"] for f in diagnostics.probe_layers(planted.shattered(linear), x, epsilon=0.1).values()] \
        == ["inconsistent"]
    sat = diagnostics.probe_layers(planted.double_softmax(linear), x, epsilon=0.1)
    assert [f["reason"] for f in sat.values()] == ["zero_gradient"]


def test_adaptive_changes_the_verdict_on_a_gradient_reversal(linear, sample):
    x, y = sample
    base = keras_adv.evaluate_robustness(linear, x, y, attacks=_attacks(), verbose=0)
    masked = planted.gradient_reversal(linear)
    naive_only = keras_adv.evaluate_robustness(masked, x, y, attacks=_attacks(), verbose=0)
    report = keras_adv.evaluate_robustness(masked, x, y, attacks=_attacks(), verbose=0, adaptive=True)
    a = report.adaptive
    # The naive attacks climb down the loss: the masked model looks robust ...
    assert a.naive[0.1] == naive_only.worst_case_accuracy(0.1) >= base.clean_accuracy - 0.05
    assert base.worst_case_accuracy(0.1) < a.naive[0.1] - 0.3
    # ... the adaptive evaluation finds the reversal layer, attacks straight through it and gets the
    # undefended model's number back (BPDA's gradient here is exactly the base model's).
    assert "inconsistent_gradient" in [w.check for w in report.warnings]
    assert [c.technique for c in a.changes] == ["BPDA"]
    assert base.worst_case_accuracy(0.1) - 0.02 <= a.adaptive[0.1] <= base.worst_case_accuracy(0.1)
    assert a.overstated > 0.3 and "OVERSTATED" in a.verdict()
    text = str(report)
    assert "adaptive evaluation (flag, then break)" in text and "BPDA" in text
    d = json.loads(json.dumps(report.to_dict()))
    assert d["adaptive"]["worst_case"][0]["adaptive"] == pytest.approx(a.adaptive[0.1])
    assert d["adaptive"]["changes"][0]["reason"] == ["inconsistent_gradient"]
    assert report.robust_accuracy("PGD", 0.1) == naive_only.robust_accuracy("PGD", 0.1)  # naive numbers kept


def test_adaptive_without_gradient_saturation_and_honest(linear, sample):
    x, y = sample
    base = keras_adv.evaluate_robustness(linear, x, y, attacks=_attacks(), verbose=0, adaptive=True)
    assert base.adaptive.changes == [] and base.adaptive.adaptive == base.adaptive.naive
    assert "nothing to adapt" in str(base)
    ref = base.worst_case_accuracy(0.1)
    # No gradient at all: the naive gradient attacks cannot run (they break nothing); BPDA can.
    q = keras_adv.evaluate_robustness(planted.stop_gradient(linear), x, y, attacks=_attacks(), verbose=0,
                                      adaptive=True)
    assert q.adaptive.naive_not_run == ["FGSM", "PGD"] and q.adaptive.naive[0.1] == q.clean_accuracy
    assert q.adaptive.adaptive[0.1] == pytest.approx(ref, abs=0.02)
    # Saturated softmax: the saturated layers are peeled inside the attack and a margin loss is added.
    s = keras_adv.evaluate_robustness(planted.double_softmax(linear), x, y, attacks=_attacks(), verbose=0,
                                      adaptive=True)
    assert {c.technique for c in s.adaptive.changes} == {"BPDA", "margin loss"}
    assert s.adaptive.naive[0.1] > ref + 0.2 and abs(s.adaptive.adaptive[0.1] - ref) <= 0.05


def test_adaptive_eot_and_options(linear, sample):
    x, y = sample
    with pytest.raises(ValueError, match="bogus"):
        keras_adv.evaluate_robustness(linear, x, y, attacks=_attacks(), verbose=0, adaptive={"bogus": 1})
    with pytest.raises(ValueError, match="eot_samples"):
        keras_adv.evaluate_robustness(linear, x, y, attacks=_attacks(), verbose=0, adaptive={"eot_samples": 0})
    r = keras_adv.evaluate_robustness(planted.noisy(linear), x[:32], y[:32], attacks=_attacks(), verbose=0,
                                      adaptive={"eot_samples": 4})
    assert [c.technique for c in r.adaptive.changes] == ["EOT"]
    assert all("EOT4" in n for n in r.adaptive.report.results)


def test_adaptive_on_a_text_model_whose_graph_has_op_nodes():
    # Embedding(mask_zero=True) puts a keras.ops node (NotEqual, not a Layer) in model.operations:
    # the layer probe and the BPDA rebuild re-run such nodes unchanged instead of crashing on them.
    keras.utils.set_random_seed(0)
    model = keras_adv.models.presets.text_classifier(20, 2, sequence_length=6, architecture="bag",
                                                     embedding_dim=4, width=4)
    assert any(not isinstance(op, keras.layers.Layer) for op in model.operations)
    rng = np.random.default_rng(0)
    x = rng.integers(2, 20, (16, 6))
    x[:, 4:] = 0
    y = rng.integers(0, 2, 16)
    report = keras_adv.evaluate_robustness(model, x, y, attacks={"hf": keras_adv.attacks.HotFlip(1)},
                                           epsilons=[1], verbose=0, adaptive=True)
    assert report.adaptive is not None and "adaptive" in report.to_dict()
    assert diagnostics.probe_layers(model, x, epsilon=1.0) == {}
