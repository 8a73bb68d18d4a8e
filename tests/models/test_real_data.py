"""Real data: adversarial training on the digits beats an undefended model under a stronger attack."""

import keras
import numpy as np

import keras_adv as ka


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))


def test_adversarial_training_on_digits_raises_robust_accuracy(digits):
    (x, y), (xt, yt) = digits
    eps = 0.2
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    keras.utils.set_random_seed(0)
    plain = ka.models.presets.small_cnn(width=16)
    plain.compile(keras.optimizers.Adam(2e-3), loss, metrics=["accuracy"])
    plain.fit(x, y, epochs=8, batch_size=64, verbose=0)

    keras.utils.set_random_seed(0)
    base = ka.models.presets.small_cnn(width=16)
    robust = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=eps, steps=5), adv_weight=1.0)
    robust.compile(keras.optimizers.Adam(2e-3), loss, metrics=["accuracy"])
    robust.fit(x, y, epochs=8, batch_size=64, verbose=0)

    # The judge is stronger than the training attack: 4x the steps and 2 restarts.
    judge = ka.attacks.PGD(epsilon=eps, steps=20, restarts=2, seed=0)
    plain_robust = _accuracy(plain, judge.generate(plain, xt, yt, verbose=0), yt)
    robust_robust = _accuracy(base, judge.generate(base, xt, yt, verbose=0), yt)
    print(f"undefended: clean {_accuracy(plain, xt, yt):.3f} robust {plain_robust:.3f}; "
          f"adversarially trained: clean {_accuracy(base, xt, yt):.3f} robust {robust_robust:.3f}")
    assert _accuracy(plain, xt, yt) > 0.9 and _accuracy(base, xt, yt) > 0.85
    assert plain_robust < 0.15
    assert robust_robust > plain_robust + 0.25
