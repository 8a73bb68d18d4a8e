import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv
from keras_adv.evaluation import diagnostics, planted
from keras_adv.evaluation.report import AttackResult, RobustnessReport
from tests.conftest import linear_model
from tests.evaluation.helpers import RandomSearch, train_small_cnn

W = np.array([[1.0, -1.0], [-2.0, 2.0]], "float32")


class Sqrt(keras.layers.Layer):
    def call(self, x):
        return tf.sqrt(x)


def test_gradient_checks_on_tiny_models():
    base = linear_model(W, np.zeros(2, "float32"), (2,))
    x = np.array([[0.2, 0.3], [0.0, 0.5], [0.6, 0.1]], "float32")
    y = np.array([0, 1, 0])
    assert diagnostics.check_gradients(base, x, y) == []
    assert [w.check for w in diagnostics.check_gradients(planted.stop_gradient(base), x, y)] == ["no_gradient"]
    assert [w.check for w in diagnostics.check_gradients(planted.quantized(base), x, y)] == ["no_gradient"]
    zero = diagnostics.check_gradients(planted.double_softmax(base, temperature=1e4), x, y)
    assert [w.check for w in zero] == ["zero_gradient"] and zero[0].details["fraction"] == 1.0
    inp = keras.Input((2,))
    sq = keras.Model(inp, base(Sqrt()(inp)))  # d sqrt(x)/dx = inf at x = 0 (example 1)
    nonfinite = diagnostics.check_gradients(sq, x, y)
    assert [w.check for w in nonfinite] == ["nonfinite_gradient"]
    assert nonfinite[0].details["fraction"] == pytest.approx(1 / 3)


def test_determinism_check():
    base = linear_model(W, np.zeros(2, "float32"), (2,))
    x = np.full((4, 2), 0.5, "float32")
    assert diagnostics.check_determinism(base, x) == []
    assert [w.check for w in diagnostics.check_determinism(planted.noisy(base), x)] == ["nondeterministic"]


class _A:
    def __init__(self, steps=None, gradient_free=False, restarts=1):
        self.steps = steps
        self.gradient_free = gradient_free
        self.restarts = restarts


def _report(curves, clean=None, bounds=(0.0, 1.0), n=20):
    """A report from accuracies: curves = {name: (attack, {eps: accuracy})}."""
    labels = np.zeros(n, int)
    results = {}
    for name, (attack, accs) in curves.items():
        r = AttackResult(name=name, attack=attack)
        for e, a in accs.items():
            correct = np.arange(n) < round(a * n)
            r.add(epsilon=e, correct=correct, p_true=correct.astype(float), perturbation=np.zeros(n),
                  examples=np.zeros((1, 2)))
        results[name] = r
    return RobustnessReport(labels=labels, num_classes=2, norm="linf", bounds=bounds,
                            clean_correct=np.ones(n, bool) if clean is None else clean,
                            p_true_clean=np.ones(n), results=results)


def test_report_checks_fire_exactly_when_they_should():
    honest = _report({"fgsm": (_A(1), {0.1: 0.6, 0.5: 0.0}), "pgd": (_A(10), {0.1: 0.5, 0.5: 0.0}),
                      "rs": (_A(gradient_free=True), {0.1: 0.7, 0.5: 0.1})})
    assert diagnostics.check_report(honest) == []
    weak_pgd = _report({"fgsm": (_A(1), {0.1: 0.5}), "pgd": (_A(10), {0.1: 0.7})})
    assert [w.check for w in diagnostics.check_report(weak_pgd)] == ["multi_step_weaker"]
    rising = _report({"pgd": (_A(10), {0.1: 0.5, 0.2: 0.7, 0.3: 0.4})})
    found = diagnostics.check_report(rising)
    assert [w.check for w in found] == ["non_monotonic"] and found[0].details["epsilon"] == 0.2
    stuck = _report({"pgd": (_A(10), {0.1: 0.5, 0.5: 0.3})})
    assert [w.check for w in diagnostics.check_report(stuck)] == ["large_epsilon_not_zero"]
    not_large = _report({"pgd": (_A(10), {0.1: 0.5, 0.4: 0.3})})  # 0.4 < half the range: no claim
    assert diagnostics.check_report(not_large) == []
    gf = _report({"pgd": (_A(10), {0.1: 0.6}), "rs": (_A(gradient_free=True), {0.1: 0.3})})
    assert [w.check for w in diagnostics.check_report(gf)] == ["gradient_free_stronger"]
    slow = _report({"pgd10": (_A(10), {0.1: 0.6}), "pgd50x3": (_A(50, restarts=3), {0.1: 0.45})})
    found = diagnostics.check_report(slow)
    assert [w.check for w in found] == ["more_steps_stronger"] and found[0].details["stronger"] == "pgd50x3"
    assert diagnostics.check_report(_report({"pgd10": (_A(10), {0.1: 0.6}),
                                             "pgd50x3": (_A(50, restarts=3), {0.1: 0.55})})) == []
    # Within the tolerance nothing fires.
    assert diagnostics.check_report(_report({"fgsm": (_A(1), {0.1: 0.5}), "pgd": (_A(10), {0.1: 0.55})})) == []


@pytest.fixture(scope="module")
def undefended(digits):
    return train_small_cnn(digits, epochs=10)


def test_planted_set_flagged_and_undefended_clean(undefended, digits):
    """Acceptance (fast version): every planted model is flagged, the undefended one is not."""
    _, (xs, ys) = digits
    x, y = xs[:100], ys[:100]
    kw = dict(steps=10, restarts=2, gradient_free_attack=RandomSearch(0.1, queries=20, seed=0))
    honest = keras_adv.evaluation.diagnose_gradient_masking(undefended, x, y, 0.1, **kw)
    assert honest.warnings == [], str(honest)
    assert honest.measurements["pgd_curve"][-1][1] == 0.0  # PGD at ε = the whole range breaks all
    expected = {"quantized": "no_gradient", "stop_gradient": "no_gradient",
                "noisy": "nondeterministic", "double_softmax": "zero_gradient"}
    for name, model in planted.planted_set(undefended).items():
        d = keras_adv.evaluation.diagnose_gradient_masking(model, x, y, 0.1, **kw)
        assert d.flagged, name
        assert expected[name] in d.checks, (name, str(d))
        # The planted defences keep the base model's clean accuracy: they are not simply broken models.
        assert d.measurements["clean_accuracy"] >= honest.measurements["clean_accuracy"] - 0.05
    # The double softmax stalls every gradient attack; at ε=0.2 random search shows it too.
    d = keras_adv.evaluation.diagnose_gradient_masking(
        planted.double_softmax(undefended), x, y, 0.2, steps=10, restarts=2,
        gradient_free_attack=RandomSearch(0.2, queries=20, seed=0))
    assert {"large_epsilon_not_zero", "gradient_free_stronger"} <= set(d.checks)
    assert d.measurements["gradient_free"] < d.measurements["pgd"] - 0.05


def test_report_runs_diagnostics(undefended, digits):
    _, (xs, ys) = digits
    masked = planted.double_softmax(undefended)
    report = keras_adv.evaluate_robustness(
        masked, xs[:64], ys[:64], attacks={"pgd": keras_adv.attacks.PGD(0.1, steps=5, seed=0)},
        epsilons=[0.1, 0.5], verbose=0)
    checks = [w.check for w in report.warnings]
    assert "zero_gradient" in checks and "large_epsilon_not_zero" in checks
    assert "GRADIENT-MASKING WARNINGS" in str(report)
    assert {d["check"] for d in report.to_dict()["diagnostics"]} == set(checks)


def test_bad_arguments(undefended, digits):
    _, (xs, ys) = digits
    with pytest.raises(ValueError, match="epsilon"):
        keras_adv.evaluation.diagnose_gradient_masking(undefended, xs[:4], ys[:4], 0.0)
    with pytest.raises(ValueError, match="tolerance"):
        keras_adv.evaluation.diagnose_gradient_masking(undefended, xs[:4], ys[:4], 0.1, tolerance=-1)


@pytest.mark.slow
def test_adversarially_trained_model_not_flagged(digits):
    """Acceptance (slow part): an honestly PGD-trained model raises nothing at its training ε."""
    from keras_adv.models.presets import small_cnn

    (xt, yt), (xs, ys) = digits
    keras.utils.set_random_seed(0)
    base = small_cnn(width=16)
    model = keras_adv.AdversarialModel(base, attack=keras_adv.attacks.PGD(0.2, steps=7))
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(xt, yt, epochs=30, batch_size=64, verbose=0)
    d = keras_adv.evaluation.diagnose_gradient_masking(
        base, xs[:200], ys[:200], 0.2, gradient_free_attack=RandomSearch(0.2, queries=50, seed=0))
    assert d.warnings == [], str(d)
    assert d.measurements["pgd"] > 0.3  # it is actually robust (undefended: ~0.02 at ε=0.2)
