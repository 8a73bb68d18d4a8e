import keras
import numpy as np
import pytest

import keras_adv as ka


def test_robust_accuracy_counts_correct_adversarial_predictions_with_weights():
    m = ka.metrics.RobustAccuracy()
    y = np.array([0, 1, 2, 1])
    logits = np.eye(3, dtype="float32")[[0, 2, 2, 0]]  # correct, wrong, correct, wrong
    m.update_state(y, logits)
    assert float(m.result()) == pytest.approx(0.5)
    m.update_state(np.eye(3)[[1]], np.eye(3, dtype="float32")[[1]], sample_weight=[2.0])  # one-hot labels
    assert float(m.result()) == pytest.approx(4 / 6)
    m.reset_state()
    assert float(m.result()) == 0.0


def test_robustness_margin_is_the_mean_drop_in_true_class_probability():
    y = np.array([0, 1])
    clean = np.array([[0.9, 0.1], [0.2, 0.8]], "float32")
    adv = np.array([[0.4, 0.6], [0.3, 0.7]], "float32")
    m = ka.metrics.RobustnessMargin()
    m.update_state(y, clean, adv)
    assert float(m.result()) == pytest.approx(((0.9 - 0.4) + (0.8 - 0.7)) / 2, abs=1e-6)
    # The same from logits.
    m2 = ka.metrics.RobustnessMargin(from_logits=True)
    m2.update_state(y, np.log(clean), np.log(adv))
    assert float(m2.result()) == pytest.approx(0.3, abs=1e-6)


def test_metrics_serialize():
    for metric in (ka.metrics.RobustAccuracy(name="ra"), ka.metrics.RobustnessMargin(from_logits=True)):
        clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
        assert type(clone) is type(metric) and clone.get_config() == metric.get_config()


def test_single_logit_outputs_in_the_unit_interval_are_read_as_logits_where_the_model_says_so():
    # One logit per example, all inside [0, 1]: by the values alone they look like probabilities
    # below 0.5 (class 0), but a linear Dense(1) outputs logits, all > 0 (class 1).
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, kernel_initializer="zeros",
                                                                     bias_initializer=keras.initializers.Constant(0.2))])
    x = np.ones((5, 3), np.float32)
    y = np.ones(5, np.int64)
    assert ka.losses.infer_from_logits(model) is True
    np.testing.assert_array_equal(ka.losses.predicted_class(model(x)).numpy(), 0)  # the per-batch guess
    np.testing.assert_array_equal(ka.losses.predicted_class(model(x), from_logits=True).numpy(), 1)
    with ka.losses.outputs_from_logits(True):
        np.testing.assert_array_equal(ka.losses.predicted_class(model(x)).numpy(), 1)
    metric = ka.metrics.RobustAccuracy(from_logits=True)
    metric.update_state(y, model(x), y_pred_clean=model(x))
    assert float(metric.result()) == 1.0
    assert ka.metrics.RobustAccuracy.from_config(metric.get_config()).from_logits is True
    rate = ka.metrics.AttackSuccessRate(from_logits=True)
    rate.update_state(y, model(x), model(x))
    assert float(rate.result()) == 0.0 and float(rate.count) == 5.0
    report = ka.evaluate_robustness(model, x, y, attacks={"fgsm": ka.attacks.FGSM(epsilon=0.01, bounds=(0, 1))},
                                    epsilons=[0.01], verbose=0)
    assert report.clean_accuracy == 1.0


@pytest.mark.parametrize("call", ["eager", "generate"])
def test_autoattack_reads_a_single_logit_as_a_logit_when_the_model_says_so(call):
    # logit = 0.5 - x0: at x0 = 0.2 it is 0.3 (class 1, correct); ε = 0.35 can push it below 0.
    # Read as a probability (0.3 < 0.5) the clean points looked misclassified already, so
    # AutoAttack's cascade skipped them and returned them unchanged.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.set_weights([np.array([[-1.0], [0.0], [0.0]], np.float32), np.array([0.5], np.float32)])
    x = np.full((4, 3), 0.2, np.float32)
    y = np.ones(4, np.int64)
    attack = ka.attacks.AutoAttack(epsilon=0.35, attacks=["apgd-ce"], steps=5, bounds=(0, 1), seed=0)
    x_adv = attack(model, x, y) if call == "eager" else attack.generate(model, x, y, verbose=0)
    logits = model(np.asarray(x_adv)).numpy()[:, 0]
    assert np.all(logits < 0), logits
