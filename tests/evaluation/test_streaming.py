"""Streaming and sharded evaluation, the robust-accuracy definition, and binary (sigmoid) models."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv
from keras_adv.attacks import _batches
from tests.conftest import linear_model
from tests.evaluation.helpers import report_arrays as _arrays


@pytest.fixture(scope="module")
def cnn(digits):
    from tests.evaluation.helpers import train_small_cnn

    return train_small_cnn(digits, epochs=4, width=8)


def test_shards_merge_exactly_into_the_whole_report(cnn, digits):
    _, (xs, ys) = digits
    x, y = xs[:110], ys[:110]
    kw = dict(attacks={"fgsm": keras_adv.attacks.FGSM(0.1),
                       "pgd": keras_adv.attacks.PGD(0.1, steps=3, seed=5)},
              epsilons=[0.1, 0.2], batch_size=16, verbose=0,
              minimal_attack=keras_adv.attacks.CarliniWagnerL2(steps=3, binary_search_steps=1))
    whole = keras_adv.evaluate_robustness(cnn, x, y, **kw)
    shards = [keras_adv.evaluate_robustness(cnn, x, y, shard=(i, 3), diagnose=i == 0, **kw) for i in (2, 0, 1)]
    assert sum(s.num_examples for s in shards) == 110 and all(s.num_examples < 110 for s in shards)
    merged = keras_adv.evaluation.RobustnessReport.merge(shards)
    assert merged.to_dict() == whole.to_dict()
    a, b = _arrays(merged), _arrays(whole)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert [w.check for w in merged.warnings] == [w.check for w in whole.warnings]
    assert str(merged) == str(whole)
    # The same through a tf.data stream (dataset.shard) and via generate's shards.
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    kw.pop("batch_size")
    parts = [keras_adv.evaluate_robustness(cnn, ds, shard=(i, 2), diagnose=False, **kw) for i in range(2)]
    merged = keras_adv.evaluation.RobustnessReport.merge(parts)
    assert merged.to_dict()["attacks"] == whole.to_dict()["attacks"] and merged.diagnosed is False
    pgd = keras_adv.attacks.PGD(0.1, steps=3, seed=5)
    full = pgd.generate(cnn, x, y, batch_size=16, verbose=0)
    np.testing.assert_array_equal(pgd.generate(cnn, x, y, batch_size=16, verbose=0, shard=(1, 2)),
                                  np.concatenate([full[16 * k:16 * (k + 1)] for k in range(1, 7, 2)]))
    with pytest.raises(ValueError, match="overlap"):
        keras_adv.evaluation.RobustnessReport.merge([parts[0], parts[0]])
    with pytest.raises(ValueError, match="shard"):
        keras_adv.evaluate_robustness(cnn, x, y, shard=(3, 3), **kw)


def test_shard_reports_pickle_across_processes_and_refuse_mismatched_merges(cnn, digits):
    import pickle
    import subprocess
    import sys

    _, (xs, ys) = digits
    x, y = xs[:64], ys[:64]
    kw = dict(attacks={"pgd": keras_adv.attacks.PGD(0.1, steps=3, seed=5)}, batch_size=16, verbose=0)
    whole = keras_adv.evaluate_robustness(cnn, x, y, **kw)
    shards = [keras_adv.evaluate_robustness(cnn, x, y, shard=(i, 2), **kw) for i in range(2)]
    # A shard travels as a pickle (the attack as its Keras config) and is loaded in a fresh process,
    # which merges it with the other shard into the whole report.
    blob = pickle.dumps(shards)
    code = ("import pickle, sys, keras_adv\n"
            "shards = pickle.loads(sys.stdin.buffer.read())\n"
            "sys.stdout.buffer.write(pickle.dumps(keras_adv.evaluation.RobustnessReport.merge(shards).to_dict()))\n")
    proc = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert pickle.loads(proc.stdout) == whole.to_dict()
    loaded = pickle.loads(blob)[0]
    assert loaded.results["pgd"].attack.get_config() == kw["attacks"]["pgd"].get_config()
    # Shards that are not parts of one evaluation are refused, naming what differs.
    other = keras_adv.evaluate_robustness(cnn, x, y, shard=(1, 2), **dict(kw, attacks={
        "pgd": keras_adv.attacks.PGD(0.1, steps=5, seed=5)}))
    with pytest.raises(ValueError, match=r"attack 'pgd' with different settings \(steps: 3 vs 5\)"):
        keras_adv.evaluation.RobustnessReport.merge([shards[0], other])
    halves = keras_adv.evaluate_robustness(cnn, x, y, shard=(1, 2), **dict(kw, batch_size=8))
    with pytest.raises(ValueError, match=r"batches of different sizes \(16 vs 8\).*same `batch_size`"):
        keras_adv.evaluation.RobustnessReport.merge([shards[0], halves])


def test_generators_py_datasets_and_infinite_streams_get_clear_errors(cnn, digits):
    _, (xs, ys) = digits
    x, y = xs[:32], ys[:32]
    fgsm = keras_adv.attacks.FGSM(0.1)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return x[16 * i:16 * (i + 1)], y[16 * i:16 * (i + 1)]

    def gen():
        yield x, y

    for data, kind in ((gen(), "a Python generator or iterator.*from_generator"),
                       (Batches(), "a keras.utils.PyDataset")):
        with pytest.raises(TypeError, match=rf"`data` is {kind}"):
            keras_adv.evaluate_robustness(cnn, data, attacks={"fgsm": fgsm}, verbose=0)
        with pytest.raises(TypeError, match=rf"`data` is {kind}"):
            fgsm.generate(cnn, data, verbose=0)
    forever = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat()
    with pytest.raises(ValueError, match=r"`data` is an infinite tf.data.Dataset.*max_examples"):
        keras_adv.evaluate_robustness(cnn, forever, attacks={"fgsm": fgsm}, verbose=0)
    with pytest.raises(ValueError, match=r"`data` is an infinite tf.data.Dataset"):
        fgsm.generate(cnn, forever, verbose=0)
    # sample weights are not silently dropped: a warning says they are ignored
    weighted = tf.data.Dataset.from_tensor_slices((x, y, np.ones(32, "float32"))).batch(16)
    with pytest.warns(UserWarning, match="sample weights are ignored"):
        keras_adv.evaluate_robustness(cnn, weighted, attacks={"fgsm": fgsm}, verbose=0)
    # with max_examples the infinite stream is fine, and equals the arrays
    capped = keras_adv.evaluate_robustness(cnn, forever, attacks={"fgsm": fgsm}, max_examples=32, verbose=0)
    assert capped.to_dict() == keras_adv.evaluate_robustness(cnn, x, y, attacks={"fgsm": fgsm}, batch_size=16,
                                                             verbose=0).to_dict()


def test_stream_of_unknown_length_with_max_examples_equals_arrays(cnn, digits):
    _, (xs, ys) = digits
    x, y = xs[:64], ys[:64]

    def gen():
        for i in range(0, 200, 10):
            j = i % 60
            yield x[j:j + 10], y[j:j + 10]

    ds = tf.data.Dataset.from_generator(gen, output_signature=(
        tf.TensorSpec((None, 8, 8, 1), tf.float32), tf.TensorSpec((None,), tf.int64)))
    kw = dict(attacks={"pgd": keras_adv.attacks.PGD(0.15, steps=2, seed=1)}, verbose=0, diagnose=False)
    got = keras_adv.evaluate_robustness(cnn, ds, max_examples=45, **kw)
    ref = keras_adv.evaluate_robustness(cnn, x[:45], y[:45], batch_size=10, **kw)
    assert got.num_examples == 45
    assert got.to_dict() == ref.to_dict()
    # `iterate` streams the generate examples batch by batch.
    attack = keras_adv.attacks.PGD(0.15, steps=2, seed=1)
    streamed = [xa for xa, _ in attack.iterate(cnn, x[:45], y[:45], batch_size=10)]
    assert len(streamed) == 5
    np.testing.assert_array_equal(np.concatenate(streamed), attack.generate(cnn, x[:45], y[:45], batch_size=10,
                                                                            verbose=0))


def test_robust_accuracy_counts_only_points_correct_when_clean():
    # Class 0 iff x0 > x1. The "attack" swaps the two pixels: a wrong point becomes right under attack.
    model = linear_model([[1.0, -1.0], [-1.0, 1.0]], [0.0, 0.0], (2,))

    class Swap(keras_adv.attacks.attack.Attack):
        def perturb(self, model, x, y, epsilon, seed, loss_fn):
            return tf.reverse(x, axis=[1])

    x = np.array([[0.6, 0.4], [0.4, 0.6], [0.7, 0.3], [0.45, 0.55]], "float32")
    y = np.array([0, 0, 1, 1])  # correct, wrong, wrong, correct when clean
    report = keras_adv.evaluate_robustness(model, x, y, attacks={"swap": Swap(epsilon=1.0)}, verbose=0,
                                           diagnose=False)
    # Under attack every point flips: the two wrong ones become right but are not robust.
    assert report.clean_accuracy == 0.5
    assert report.robust_accuracy("swap", 1.0) == 0.0
    assert report.attack_success_rate("swap", 1.0) == 1.0
    m = keras_adv.metrics.RobustAccuracy()
    m.update_state(y, model(Swap(epsilon=1.0)(model, x, y)), y_pred_clean=model(x))
    assert float(m.result()) == 0.0
    m.reset_state()
    m.update_state(y, model(Swap(epsilon=1.0)(model, x, y)))  # adversarial-batch accuracy (Keras' adv_accuracy)
    assert float(m.result()) == 0.5


def test_binary_single_unit_model_through_attacks_and_report(digits):
    (xt, yt), (xs, ys) = digits
    yb, ysb = (yt >= 5).astype("int64"), (ys >= 5).astype("int64")
    keras.utils.set_random_seed(0)
    logits = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                               keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
    logits.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
    logits.fit(xt, yb, epochs=15, batch_size=64, verbose=0)
    model = keras.Sequential([logits, keras.layers.Activation("sigmoid")])  # the same classifier, probabilities
    x, y = xs[:96], ysb[:96]
    # The loss the attacks ascend is the binary cross-entropy, for a logit or a probability unit.
    for m, from_logits in ((logits, True), (model, False)):
        ce = keras_adv.losses.crossentropy(y, m(x)).numpy()
        bce = keras.losses.binary_crossentropy(y[:, None].astype("float32"), m(x), from_logits=from_logits)
        np.testing.assert_allclose(ce, bce.numpy(), rtol=1e-3, atol=1e-5)
    activation = "sigmoid"
    out = model(x).numpy()[:, 0]
    pred = (out > 0.5).astype("int64")
    np.testing.assert_array_equal(pred, (logits(x).numpy()[:, 0] > 0).astype("int64"))
    attacks = {"fgsm": keras_adv.attacks.FGSM(0.15), "pgd": keras_adv.attacks.PGD(0.15, steps=10, seed=0),
               "autoattack": keras_adv.attacks.AutoAttack(0.15, steps=10, queries=40, seed=0)}
    report = keras_adv.evaluate_robustness(model, x, y, attacks=attacks, verbose=0)
    assert report.clean_accuracy == np.mean(pred == y) > 0.85
    assert report.num_classes == 2 and set(report.per_class()) == {0, 1}
    x_pgd = attacks["pgd"].generate(model, x, y, verbose=0)
    adv_pred = (model(x_pgd).numpy()[:, 0] > (0.5 if activation else 0.0))
    assert report.robust_accuracy("pgd", 0.15) == np.mean((pred == y) & (adv_pred == y))
    # The attacks really attack: far below clean accuracy; AutoAttack at least as strong as PGD.
    assert report.robust_accuracy("pgd", 0.15) < report.clean_accuracy - 0.3
    assert report.robust_accuracy("autoattack", 0.15) <= report.robust_accuracy("pgd", 0.15)
    ok = keras_adv.attacks.PGD(0.15, steps=10).is_successful(model(x_pgd), y).numpy()
    np.testing.assert_array_equal(ok, adv_pred != y)


def test_batch_seeds_are_stateless_and_distinct():
    a = _batches.batch_seed(7, 3).numpy()
    np.testing.assert_array_equal(a, _batches.batch_seed(7, 3).numpy())
    assert a.dtype == np.int32 and a.shape == (2,)
    seeds = {tuple(_batches.batch_seed(s, k).numpy()) for s in (0, 7) for k in range(20)}
    assert len(seeds) == 40
    with pytest.raises(ValueError, match="shard"):
        _batches.check_shard((2, 2))


def test_autoattack_progress_and_python_driven_members_equal_the_graph(cnn, digits, capsys):
    _, (xs, ys) = digits
    x, y = xs[:24], ys[:24]
    aa = keras_adv.attacks.AutoAttack(0.2, steps=5, queries=20, n_target_classes=2, seed=3)
    x_py = aa.generate(cnn, x, y, batch_size=32, verbose=1)
    out = capsys.readouterr().out
    graph = tf.function(lambda a, b, s: aa(cnn, a, b, seed=s), autograph=False)
    x_graph = graph(tf.constant(x), tf.constant(y), _batches.batch_seed(3, 0)).numpy()
    np.testing.assert_array_equal(x_py, x_graph)
    # One line per member with the points still robust, ending at the final robust count.
    counts = [int(line.split()[2]) for line in out.splitlines() if line.strip().startswith("after ")]
    assert [line.split()[1] for line in out.splitlines() if line.strip().startswith("after ")] == \
        ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert counts == sorted(counts, reverse=True)
    pred_adv, pred = np.argmax(cnn(x_py), -1), np.argmax(cnn(x), -1)
    assert counts[-1] == int(np.sum((pred_adv == y) & (pred == y)))
    assert f"{int(np.sum(pred == y))} correctly classified" in out
