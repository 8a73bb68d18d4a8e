import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv
from keras_adv.attacks.attack import Attack, draw_seed
from tests.conftest import linear_model
from tests.evaluation.helpers import train_small_cnn

# A two-class linear model on 4 inputs: d(x) = (w0 - w1)·x + (b0 - b1), class 0 iff d > 0.
W = np.array([[1.0, -1.0], [-2.0, 2.0], [0.5, -0.5], [1.0, -1.0]], "float32")  # w0 - w1 = [2, -4, 1, 2]
B = np.array([0.0, 0.0], "float32")
WDIFF = W[:, 0] - W[:, 1]


def _linear_data():
    rng = np.random.default_rng(0)
    x = (0.5 + rng.uniform(-0.05, 0.05, (40, 4))).astype("float32")
    d = x @ WDIFF
    y = (d < 0).astype("int64")  # every example correctly classified
    return x, y, np.abs(d)


class ExactLinearMinimal(Attack):
    """The exact minimal L∞ perturbation of the linear model (unbounded)."""

    allows_unbounded = True

    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        d = tf.linalg.matvec(x, tf.constant(WDIFF))
        step = 1.001 * tf.abs(d) / np.abs(WDIFF).sum()
        direction = -tf.sign(d)[:, None] * tf.sign(tf.constant(WDIFF))[None, :]
        return x + step[:, None] * direction


def test_linear_model_analytic_grid_and_minimal_perturbation():
    x, y, margin = _linear_data()
    model = linear_model(W, B, (4,))
    eps = [0.005, 0.01, 0.02, 0.04]
    report = keras_adv.evaluate_robustness(
        model, x, y, attacks={"fgsm": keras_adv.attacks.FGSM(0.01)}, epsilons=eps,
        minimal_attack=ExactLinearMinimal(epsilon=None), verbose=0)
    true_min = margin / np.abs(WDIFF).sum()  # FGSM is optimal for a linear model in L∞
    assert report.clean_accuracy == 1.0
    for e in eps:
        assert report.robust_accuracy("fgsm", e) == pytest.approx(np.mean(true_min > e))
    expected_first = np.array([min([e for e in eps if e > t], default=np.inf) for t in true_min])
    np.testing.assert_array_equal(report.first_broken_epsilon(), expected_first)
    mp = report.minimal_perturbation()
    assert mp["attack"]["success_rate"] == 1.0
    assert mp["attack"]["mean"] == pytest.approx(1.001 * true_min.mean(), rel=1e-4)
    finite = expected_first[np.isfinite(expected_first)]
    assert mp["grid"]["mean"] == pytest.approx(finite.mean())
    assert mp["grid"]["unbroken_fraction"] == pytest.approx(np.mean(~np.isfinite(expected_first)))


@pytest.fixture(scope="module")
def trained(digits):
    return train_small_cnn(digits, epochs=8)


def test_report_numbers_equal_direct_attack_calls(trained, digits):
    _, (xs, ys) = digits
    x, y = xs[:96], ys[:96]
    fgsm = keras_adv.attacks.FGSM(0.1)
    pgd = keras_adv.attacks.PGD(0.3, steps=5, seed=7)
    report = keras_adv.evaluate_robustness(
        trained, x, y, attacks={"fgsm": fgsm, "pgd": pgd}, epsilons=[0.05, 0.15], batch_size=32,
        verbose=0)
    for e in [0.05, 0.15]:
        # FGSM is deterministic: one direct call on the whole set.
        x_adv = fgsm(trained, x, y, epsilon=e).numpy()
        out_adv, out = trained(x_adv), trained(x)
        pred = np.argmax(out_adv, -1)
        assert report.robust_accuracy("fgsm", e) == np.mean(pred == y)
        # PGD: the same seed stream as `generate` with a PGD built at that ε.
        x_pgd = keras_adv.attacks.PGD(e, steps=5, seed=7).generate(trained, x, y, batch_size=32, verbose=0)
        out_pgd = trained(x_pgd)
        assert report.robust_accuracy("pgd", e) == np.mean(np.argmax(out_pgd, -1) == y)
        worst = (np.argmax(out, -1) == y) & (pred == y) & (np.argmax(out_pgd, -1) == y)
        assert report.worst_case_accuracy(e) == np.mean(worst)
        # The metrics agree with the report.
        m = keras_adv.metrics.RobustnessMargin()
        m.update_state(y, out, out_adv)
        assert report.robustness_margin("fgsm", e) == pytest.approx(float(m.result()), abs=1e-5)
        s = keras_adv.metrics.AttackSuccessRate()
        s.update_state(y, out, out_adv)
        assert report.attack_success_rate("fgsm", e) == pytest.approx(float(s.result()), abs=1e-6)
        n = keras_adv.metrics.MeanPerturbationNorm(norm="linf")
        n.update_state(x, x_pgd)
        assert report.mean_perturbation_norm("pgd", e) == pytest.approx(float(n.result()), abs=1e-6)
        assert float(n.result()) <= e + 1e-6
    # Real data sanity: the multi-step attack is at least as strong; accuracy falls with ε.
    assert report.clean_accuracy > 0.85
    assert report.robust_accuracy("pgd", 0.15) <= report.robust_accuracy("fgsm", 0.15) + 0.02
    assert report.worst_case_accuracy(0.15) <= report.worst_case_accuracy(0.05)
    assert report.warnings == []


def test_inputs_numpy_tuple_tfdata_and_keras_file_agree(trained, digits, tmp_path):
    _, (xs, ys) = digits
    x, y = xs[:64], ys[:64]
    kw = dict(attacks={"fgsm": keras_adv.attacks.FGSM(0.1)}, epsilons=[0.1], verbose=0, diagnose=False)
    ref = keras_adv.evaluate_robustness(trained, x, y, **kw).to_dict()
    path = os.path.join(tmp_path, "m.keras")
    trained.save(path)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(20)
    onehot = keras.utils.to_categorical(y, 10)
    for model, data, yy in [(trained, (x, y), None), (trained, ds, None), (path, x, y), (trained, x, onehot)]:
        got = keras_adv.evaluate_robustness(model, data, yy, **kw).to_dict()
        # Counts exactly; float means to float32 rounding (batches of 20 and of 64 may run different
        # CPU kernels: on an AMD EPYC the margin differed in the 9th digit).
        for a, b in zip(got["attacks"]["fgsm"]["results"], ref["attacks"]["fgsm"]["results"], strict=True):
            assert a == pytest.approx(b, rel=1e-6, abs=1e-7)
            assert (a["robust_accuracy"], a["attack_success_rate"]) == (b["robust_accuracy"], b["attack_success_rate"])
        assert got["clean_accuracy"] == ref["clean_accuracy"]


def test_outputs_table_json_plots(trained, digits, tmp_path):
    _, (xs, ys) = digits
    report = keras_adv.evaluate_robustness(
        trained, xs[:64], ys[:64],
        attacks={"fgsm": keras_adv.attacks.FGSM(0.1), "pgd": keras_adv.attacks.PGD(0.1, steps=3)},
        epsilons=[0.1, 0.2], verbose=0)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["schema"] == "keras_adv.robustness_report/1"
    assert d["num_examples"] == 64 and d["epsilons"] == [0.1, 0.2]
    assert set(d["attacks"]) == {"fgsm", "pgd"}
    assert d["attacks"]["pgd"]["class"] == "PGD" and d["attacks"]["pgd"]["config"]["steps"] == 3
    assert [r["epsilon"] for r in d["attacks"]["fgsm"]["results"]] == [0.1, 0.2]
    assert sum(v["count"] for v in d["per_class"].values()) == 64
    # The per-class worst case is consistent with the overall worst case.
    overall = sum(v["count"] * v["robust_accuracy"][1] for v in d["per_class"].values()) / 64
    assert overall == pytest.approx(d["worst_case"][1]["robust_accuracy"])
    text = str(report)
    assert "clean accuracy" in text and "worst case" in text and f"{report.robust_accuracy('pgd', 0.2):.4f}" in text
    for fn in (report.plot, report.plot_examples):
        p = os.path.join(tmp_path, fn.__name__ + ".png")
        fn(p)
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_progress_bar(trained, digits, capsys):
    _, (xs, ys) = digits
    keras_adv.evaluate_robustness(trained, xs[:40], ys[:40], attacks={"f": keras_adv.attacks.FGSM(0.1)},
                                  epsilons=[0.1, 0.2], batch_size=20, verbose=1, diagnose=False)
    assert "4/4" in capsys.readouterr().out  # 2 ε × 2 batches


def test_bad_inputs_name_the_argument(trained, digits):
    _, (xs, ys) = digits
    x, y = xs[:8], ys[:8]
    with pytest.raises(ValueError, match="attacks"):
        keras_adv.evaluate_robustness(trained, x, y, attacks={})
    with pytest.raises(TypeError, match=r"attacks\['a'\]"):
        keras_adv.evaluate_robustness(trained, x, y, attacks={"a": "pgd"})
    with pytest.raises(ValueError, match="mix norms"):
        keras_adv.evaluate_robustness(trained, x, y, attacks={"a": keras_adv.attacks.FGSM(0.1),
                                                              "b": keras_adv.attacks.FGSM(0.1, norm="l2")},
                                      epsilons=[0.1])
    with pytest.raises(ValueError, match="`y` is required"):
        keras_adv.evaluate_robustness(trained, x, attacks={"a": keras_adv.attacks.FGSM(0.1)})
    with pytest.raises(ValueError, match="epsilons"):
        keras_adv.evaluate_robustness(trained, x, y, attacks={"a": keras_adv.attacks.FGSM(0.1)}, epsilons=[-1])
    with pytest.raises(ValueError, match=".keras"):
        keras_adv.evaluate_robustness("model.h5", x, y, attacks={"a": keras_adv.attacks.FGSM(0.1)})
    with pytest.raises(TypeError, match="floating"):
        keras_adv.evaluate_robustness(trained, (x * 16).astype("int32"), y, attacks={"a": keras_adv.attacks.FGSM(0.1)})


def test_default_epsilons_and_adversarial_model(trained, digits):
    _, (xs, ys) = digits
    x, y = xs[:48], ys[:48]
    wrapped = keras_adv.AdversarialModel(trained, attack=keras_adv.attacks.FGSM(0.1))
    attacks = {"f1": keras_adv.attacks.FGSM(0.05), "f2": keras_adv.attacks.FGSM(0.2)}
    report = keras_adv.evaluate_robustness(wrapped, x, y, attacks=attacks, verbose=0, diagnose=False)
    assert report.epsilons == [0.05, 0.2]  # each attack ran once at its own ε
    assert report.results["f1"].epsilons == [0.05] and report.results["f2"].epsilons == [0.2]
    direct = np.mean(np.argmax(trained(attacks["f2"](trained, x, y)), -1) == y)
    assert report.robust_accuracy("f2", 0.2) == direct
    assert report.worst_case_accuracy(0.2) <= report.robust_accuracy("f2", 0.2)
    with pytest.raises(KeyError, match="epsilon=0.05"):
        report.robust_accuracy("f2", 0.05)
    assert "-" in str(report)  # the table marks (attack, ε) pairs that were not run


def test_a_targeted_attack_is_refused_as_it_would_steer_examples_to_their_own_class():
    x, y, _ = _linear_data()
    model = linear_model(W, B, (4,))
    attacks = {"pgd": keras_adv.attacks.PGD(epsilon=0.1, steps=2),
               "pgd_t": keras_adv.attacks.PGD(epsilon=0.1, steps=2, targeted=True)}
    with pytest.raises(ValueError, match=r"`attacks\['pgd_t'\]` is targeted"):
        keras_adv.evaluate_robustness(model, x, y, attacks=attacks, verbose=0)
