import keras
import numpy as np
import pytest

import keras_adv
from keras_adv.metrics import AttackSuccessRate, MeanPerturbationNorm


def _onehot_scores(pred, n=3):
    return np.eye(n, dtype="float32")[pred] * 5.0


def test_attack_success_rate_counts_only_clean_correct():
    y = np.array([0, 1, 2, 0])
    clean = _onehot_scores([0, 1, 1, 0])  # example 2 already wrong
    adv = _onehot_scores([1, 1, 0, 2])  # broken: 0, (2 was wrong), 3
    m = AttackSuccessRate()
    m.update_state(y, clean, adv)
    assert float(m.result()) == pytest.approx(2 / 3)
    m2 = AttackSuccessRate(only_correct=False)
    m2.update_state(y, clean, adv)
    assert float(m2.result()) == pytest.approx(3 / 4)
    m3 = AttackSuccessRate(targeted=True)
    m3.update_state(np.array([1, 1, 1, 1]), clean, adv)  # targets: adv hits class 1 twice
    assert float(m3.result()) == pytest.approx(2 / 4)
    m.update_state(y, clean, adv, sample_weight=np.array([0.0, 1.0, 1.0, 1.0]))
    assert float(m.result()) == pytest.approx(3 / 5)
    m.reset_state()
    assert float(m.result()) == 0.0


def test_mean_perturbation_norm_exact():
    x = np.zeros((2, 2, 2), "float32")
    x_adv = np.array([[[0.3, 0.0], [0.0, -0.4]], [[0.0, 0.0], [0.0, 0.0]]], "float32")
    for norm, first in [("linf", 0.4), ("l2", 0.5), ("l1", 0.7)]:
        m = MeanPerturbationNorm(norm=norm)
        m.update_state(x, x_adv)
        assert float(m.result()) == pytest.approx(first / 2, rel=1e-6)
        m = MeanPerturbationNorm(norm=norm, only_changed=True)
        m.update_state(x, x_adv)
        assert float(m.result()) == pytest.approx(first, rel=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        MeanPerturbationNorm().update_state(x, x_adv[:, :1])


def test_metrics_config_round_trip():
    for m in [AttackSuccessRate(targeted=True, only_correct=False, name="asr"),
              MeanPerturbationNorm(norm="linf", only_changed=True, name="mpn")]:
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(m))
        assert type(again) is type(m)
        assert again.get_config() == m.get_config()
    assert keras_adv.metrics.AttackSuccessRate is AttackSuccessRate
