import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv
from keras_adv.detection import RejectingModel, adaptive_loss, evaluate_detection, roc_auc, train_detector
from tests.conftest import linear_model, run_in_fresh_process
from tests.evaluation.helpers import train_small_cnn


def test_roc_auc_exact():
    assert roc_auc([0, 1, 2], [3, 4]) == 1.0
    assert roc_auc([3, 4], [0, 1, 2]) == 0.0
    assert roc_auc([1, 1], [1, 1]) == 0.5
    # neg = [0.1, 0.4, 0.35], pos = [0.8, 0.35]: pairs won 3 + 1 + 0.5 tie = 4.5 of 6.
    assert roc_auc([0.1, 0.4, 0.35], [0.8, 0.35]) == pytest.approx(4.5 / 6)
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    neg, pos = rng.normal(size=50).round(1), rng.normal(0.7, size=40).round(1)
    ref = roc_auc_score(np.r_[np.zeros(50), np.ones(40)], np.r_[neg, pos])
    assert roc_auc(neg, pos) == pytest.approx(ref)


def _guarded(threshold=0.0):
    clf = linear_model(np.array([[1.0, -1.0], [-1.0, 1.0]], "float32"), np.zeros(2, "float32"), (2,))
    det = linear_model(np.array([[0.0], [4.0]], "float32"), np.array([-2.0], "float32"), (2,))  # d = 4·x1 − 2
    return RejectingModel(clf, det, threshold=threshold)


def test_rejecting_model_rejects_exactly_above_threshold(tmp_path):
    g = _guarded()
    x = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]], "float32")
    d = 4 * x[:, 1] - 2  # -1.6, 1.2, -0.4, 0.2
    out = g(x).numpy()
    assert out.shape == (4, 3) and g.reject_index == 2
    np.testing.assert_array_equal(out.argmax(-1) == 2, d > 0)
    pred, rej = g.predict_with_rejection(x)
    np.testing.assert_array_equal(pred, [0, 1, 0, 1])
    np.testing.assert_array_equal(rej, [False, True, False, True])
    g.threshold = 0.5
    np.testing.assert_array_equal(g.predict_with_rejection(x)[1], d > 0.5)
    thr = g.calibrate(x, false_positive_rate=0.25)
    assert thr == pytest.approx(np.quantile(d, 0.75), abs=1e-6)
    assert g.predict_with_rejection(x)[1].mean() == 0.25
    path = os.path.join(tmp_path, "guarded.keras")
    g.save(path)
    again = keras.models.load_model(path)
    assert again.threshold == pytest.approx(thr)
    np.testing.assert_allclose(again(x).numpy(), g(x).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="false_positive_rate"):
        g.calibrate(x, false_positive_rate=1.0)


def test_adaptive_loss_positive_iff_misclassified_and_not_rejected():
    out = tf.constant([[3.0, 1.0, 0.0, 2.0],   # correct (y=0): 1 - 3 = -2
                       [1.0, 3.0, 0.0, 2.0],   # fooled, not rejected: 3 - 2 = 1
                       [1.0, 3.0, 0.0, 4.0]])  # fooled but rejected: 3 - 4 = -1
    np.testing.assert_allclose(adaptive_loss(tf.constant([0, 0, 0]), out).numpy(), [-2.0, 1.0, -1.0])
    onehot = tf.one_hot([0, 0, 0], 3)
    np.testing.assert_allclose(adaptive_loss(onehot, out).numpy(), [-2.0, 1.0, -1.0])


def test_digits_detector_non_adaptive_and_adaptive(digits):
    (xt, yt), (xs, ys) = digits
    clf = train_small_cnn(digits, epochs=8)
    before = [w.copy() for w in clf.get_weights()]
    det = train_detector(clf, keras_adv.attacks.PGD(0.15, steps=5, seed=0), xt, yt, epochs=15)
    for a, b in zip(before, clf.get_weights()):
        np.testing.assert_array_equal(a, b)  # the classifier was frozen...
    assert all(l.trainable for l in clf.layers)  # ...and its trainable flags restored
    g = RejectingModel(clf, det)
    g.calibrate(xs[:150], false_positive_rate=0.05)
    report = evaluate_detection(g, xs[150:350], ys[150:350], attack=keras_adv.attacks.PGD(0.15, steps=10, seed=1))
    non, ada = report.results["non_adaptive"], report.results["adaptive"]
    assert non["roc_auc"] > 0.75  # the detector does detect non-adaptive PGD
    assert report.false_positive_rate < 0.15
    # The adaptive attacker evades the detector more and fools the whole system at least as often.
    assert ada["detection_rate"] < non["detection_rate"]
    assert ada["system_success_rate"] >= non["system_success_rate"] - 0.02
    assert "adaptive" in str(report)
    assert "adaptive" not in evaluate_detection(g, xs[:20], ys[:20], attack=keras_adv.attacks.FGSM(0.1),
                                                adaptive_attack=None).results


def _small_classifier(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(3, 3, activation="relu", name="conv"),
                             keras.layers.Flatten(name="flat"), keras.layers.Dense(8, activation="relu", name="hid"),
                             keras.layers.Dense(4, name="logits")], name="clf")


def _x(n=24, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, 6, 6, 1)).astype("float32")


def test_default_detector_shares_classifier_layers_and_round_trips_through_keras_file(tmp_path):
    # The default detector reads the classifier's penultimate features through the classifier's own
    # layers; the reloaded model (a fresh process) must share them again and find every weight.
    clf = _small_classifier()
    det = keras_adv.detection.build_detector(clf, hidden=5)
    assert clf.get_layer("conv") in det.get_layer("detector_features").layers
    g = RejectingModel(clf, det)
    x = _x()
    thr = g.calibrate(x, false_positive_rate=0.25)
    path = str(tmp_path / "guarded.keras")
    g.save(path)
    np.save(tmp_path / "x.npy", x)
    out = run_in_fresh_process(f"""
        import json, warnings
        import numpy as np, keras, keras_adv
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            g = keras.models.load_model({path!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        pred, rej = g.predict_with_rejection(x)
        shared = g.detector.get_layer("detector_features").get_layer("conv") is g.classifier.get_layer("conv")
        print(json.dumps({{"threshold": g.threshold, "out": g(x).numpy().tolist(), "pred": pred.tolist(),
                          "rej": rej.tolist(), "shared": shared,
                          "warnings": [str(w.message) for w in caught if "Skipping" in str(w.message)]}}))
    """)
    info = json.loads(out.strip().splitlines()[-1])
    assert info["threshold"] == thr
    np.testing.assert_array_equal(np.asarray(info["out"], "float32"), g(x).numpy())
    pred, rej = g.predict_with_rejection(x)
    assert info["pred"] == pred.tolist() and info["rej"] == rej.tolist() and 0 < rej.sum() < len(x)
    assert info["shared"] and info["warnings"] == []
    # Saved and loaded again in this process (a second round trip keeps the sharing).
    again = keras.models.load_model(path)
    again.save(str(tmp_path / "again.keras"))
    twice = keras.models.load_model(str(tmp_path / "again.keras"))
    np.testing.assert_array_equal(twice(x).numpy(), g(x).numpy())
    assert twice.threshold == thr


def test_input_feature_detector_round_trips_through_keras_file(tmp_path):
    clf = _small_classifier()
    det = keras_adv.detection.build_detector(clf, feature_layer="input", hidden=5)
    g = RejectingModel(clf, det)
    x = _x()
    thr = g.calibrate(x, false_positive_rate=0.25)
    g.save(str(tmp_path / "g.keras"))
    again = keras.models.load_model(str(tmp_path / "g.keras"))
    assert again.threshold == thr
    np.testing.assert_array_equal(again(x).numpy(), g(x).numpy())
    np.testing.assert_array_equal(again.predict_with_rejection(x)[1], g.predict_with_rejection(x)[1])


def test_rejecting_model_refuses_bad_parts_and_bad_calibration_data():
    clf = _small_classifier()
    det = keras_adv.detection.build_detector(clf, hidden=5)
    with pytest.raises(TypeError, match="`detector` must be a keras.Model"):
        RejectingModel(clf, "not a detector")
    with pytest.raises(TypeError, match="`classifier` must be a keras.Model"):
        RejectingModel(lambda t: t, det)
    with pytest.raises(ValueError, match="`detector` must have one output unit.*got 4"):
        RejectingModel(clf, clf)
    with pytest.raises(TypeError, match="threshold"):
        RejectingModel(clf, det, threshold="high")
    g = RejectingModel(clf, det)
    x = _x()
    thr = g.calibrate(x, false_positive_rate=0.25)
    nan = x.copy()
    nan[5, 0, 0, 0] = np.nan
    bad = [
        (x * 255, ValueError, r"`x_clean` must lie inside the bounds \(0, 1\); got values in \[.*255"),
        ((x * 255).astype("uint8"), TypeError, "`x_clean` must be floating-point.*got dtype uint8"),
        (nan, ValueError, r"`x_clean` contains NaN or infinite values \(first at example 5\)"),
        (x[:, :4], ValueError, "`x_clean` has shape"),
        (x[:0], ValueError, "`x_clean` must be a non-empty batch"),
    ]
    for data, error, message in bad:
        with pytest.raises(error, match=message):
            g.calibrate(data, false_positive_rate=0.25)
        assert g.threshold == thr  # left unchanged
    with pytest.raises(ValueError, match="`x` must lie inside"):
        g.predict_with_rejection(x * 255)
    # Data on another scale is accepted with the bounds it uses.
    g2 = RejectingModel(clf, det, bounds=(-1.0, 1.0))
    g2.calibrate(x * 2 - 1, false_positive_rate=0.25)
    with pytest.raises(ValueError, match=r"bounds \(-1, 1\)"):
        g2.calibrate(x * 255)


def test_detector_from_train_detector_carries_the_attack_bounds():
    clf = _small_classifier()
    x = _x(16) * 2 - 1
    y = np.arange(16) % 4
    det = train_detector(clf, keras_adv.attacks.FGSM(0.1, bounds=(-1.0, 1.0)), x, y, epochs=1, hidden=4)
    g = RejectingModel(clf, det)
    assert g.domain.bounds == (-1.0, 1.0)
    g.calibrate(x, false_positive_rate=0.25)  # [-1, 1] data is valid here
    with pytest.raises(ValueError, match=r"`x_clean` must lie inside the bounds \(-1, 1\)"):
        g.calibrate((x + 1) * 127.5)
