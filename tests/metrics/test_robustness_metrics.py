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
