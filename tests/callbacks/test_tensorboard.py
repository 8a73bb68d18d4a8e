"""TensorBoard: every logged key of AdversarialModel reaches the event files; AdversarialImages writes images."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from keras_adv.models import presets


def _events(run_dir):
    """{tag: {step: value}} from every event file in `run_dir`."""
    out = {}
    for path in glob.glob(os.path.join(run_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                out.setdefault(value.tag, {})[event.step] = value.tensor
    return out


def _tiny_model(eps=0.2):
    base = presets.get("small_cnn", (8, 8, 1), 10)
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=eps, steps=2), seed=0)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def test_every_logged_key_appears_in_tensorboard(digits, tmp_path):
    (x, y), (xt, yt) = digits
    model = _tiny_model()
    history = model.fit(x[:96], y[:96], validation_data=(xt[:32], yt[:32]), epochs=2, batch_size=32, verbose=0,
                        callbacks=[keras.callbacks.TensorBoard(str(tmp_path))])
    keys = set(history.history)
    assert {"loss", "clean_loss", "adv_loss", "accuracy", "adv_accuracy", "robustness_margin"} <= keys
    train, val = _events(str(tmp_path / "train")), _events(str(tmp_path / "validation"))
    for key in keys:
        events = val if key.startswith("val_") else train
        tag = "epoch_" + key.removeprefix("val_")
        assert tag in events, (key, sorted(events))
        logged = [float(tf.make_ndarray(events[tag][step])) for step in (0, 1)]
        np.testing.assert_allclose(logged, history.history[key], rtol=1e-5, err_msg=key)


def _decode(tensor):
    """The images of an image summary: the tensor holds [width, height, png, png, ...]."""
    strings = tf.make_ndarray(tensor)
    return [tf.io.decode_png(s).numpy() for s in strings[2:]]


def test_adversarial_images_callback_writes_images(digits, tmp_path):
    (x, y), (xt, yt) = digits
    eps = 0.2
    model = _tiny_model(eps)
    callback = ka.callbacks.AdversarialImages(str(tmp_path), xt[:10], yt[:10], every_n_epochs=2, max_images=4)
    model.fit(x[:64], y[:64], epochs=3, batch_size=32, verbose=0, callbacks=[callback])
    events = _events(str(tmp_path / "images"))
    names = ("clean", "adversarial", "perturbation")
    assert set(events) == {f"adversarial_examples/{n}" for n in names}
    for n in names:
        assert set(events[f"adversarial_examples/{n}"]) == {0, 2}  # epochs 0 and 2 of 0, 1, 2
    clean = _decode(events["adversarial_examples/clean"][2])
    adv = _decode(events["adversarial_examples/adversarial"][2])
    pert = _decode(events["adversarial_examples/perturbation"][2])
    assert len(clean) == len(adv) == len(pert) == 4 and clean[0].shape == (8, 8, 1)
    # the clean panel is the input image (up to uint8 quantisation)
    assert np.abs(clean[0][..., 0].astype(int) - np.round(xt[0, ..., 0] * 255)).max() <= 1
    diff = np.abs(adv[0].astype(int) - clean[0].astype(int))
    assert diff.max() <= round(eps * 255) + 2 and diff.max() > 0  # within budget, really perturbed
    # perturbation panel: mid-grey is zero change, black/white are -eps/+eps
    delta = (adv[0].astype(float) - clean[0].astype(float)) / 255.0
    expected = np.clip(0.5 + 0.5 * delta / eps, 0, 1) * 255
    assert np.abs(pert[0].astype(float) - expected).max() <= 3


def test_adversarial_images_plain_model_needs_attack(digits, tmp_path):
    (xs, ys), (xt, yt) = digits
    base = presets.get("small_cnn", (8, 8, 1), 10)
    callback = ka.callbacks.AdversarialImages(str(tmp_path), xt[:3], yt[:3])
    callback.set_model(base)
    with pytest.raises(ValueError, match="needs `attack=`"):
        callback.write(0)
    # in fit, before the first batch trains (it once failed after a whole epoch)
    base.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    trained = []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: trained.append(batch))
    with pytest.raises(ValueError, match="needs `attack=`"):
        base.fit(xs[:32], ys[:32], epochs=1, verbose=0, callbacks=[counter, callback])
    scaled = ka.callbacks.AdversarialImages(str(tmp_path), xt[:3] * 16, yt[:3], attack=ka.attacks.FGSM(epsilon=0.1))
    with pytest.raises(ValueError, match=r"^AdversarialImages: `x` must lie inside the attack bounds"):
        base.fit(xs[:32], ys[:32], epochs=1, verbose=0, callbacks=[counter, scaled])
    assert trained == []
    callback = ka.callbacks.AdversarialImages(str(tmp_path), xt[:3], yt[:3], attack=ka.attacks.FGSM(epsilon=0.1))
    callback.set_model(base)
    callback.write(5)
    assert set(_events(str(tmp_path / "images"))["adversarial_examples/adversarial"]) == {5}


@pytest.mark.parametrize("kwargs, match", [
    (dict(x=np.zeros((4, 64), "float32"), y=np.zeros(4)), "shape"),
    (dict(x=np.zeros((4, 8, 8, 1), "uint8"), y=np.zeros(4)), "floating"),
    (dict(x=np.zeros((4, 8, 8, 1), "float32"), y=np.zeros(3)), "same length"),
    (dict(x=np.zeros((4, 8, 8, 1), "float32"), y=np.zeros(4), every_n_epochs=0), "every_n_epochs"),
])
def test_adversarial_images_bad_input(kwargs, match, tmp_path):
    with pytest.raises((ValueError, TypeError), match=match):
        ka.callbacks.AdversarialImages(str(tmp_path), **kwargs)
