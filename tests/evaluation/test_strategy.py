"""`evaluate_robustness(strategy=...)` and `Attack.generate(strategy=...)` under tf.distribute.

Two logical CPU devices must be configured before TensorFlow initialises its
devices, so the MirroredStrategy checks run in a fresh process.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

import keras_adv
from tests.conftest import linear_model, run_in_fresh_process

_SETUP = """
    import json, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, keras_adv as ka
    from tests.evaluation.helpers import report_arrays, train_small_cnn
    digits = ka.datasets.load_digits()
    model = train_small_cnn(digits, epochs=3, width=8)
    (_, _), (xt, yt) = digits
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def mismatches(a, b):
        a, b = report_arrays(a), report_arrays(b)
        return sorted(set(a) ^ set(b)) + [k for k in a if k in b and not np.array_equal(a[k], b[k])]
"""


@pytest.fixture(scope="module")
def mirrored():
    """One fresh process (two logical CPUs, MirroredStrategy) computing what the two tests below check."""
    out = run_in_fresh_process(_SETUP + """
    info = {"replicas": strategy.num_replicas_in_sync}
    # -- deterministic attacks: exactly the plain report.
    # 35 examples in batches of 17: two odd batches (split 8 + 9) and a batch of 1 (one replica gets nothing).
    x, y = xt[:35], yt[:35]
    kw = dict(attacks={"fgsm": ka.attacks.FGSM(0.1), "pgd": ka.attacks.PGD(0.1, steps=3, random_start=False)},
              epsilons=[0.05, 0.15], batch_size=17, verbose=0,
              minimal_attack=ka.attacks.CarliniWagnerL2(steps=3, binary_search_steps=1))
    plain = ka.evaluate_robustness(model, x, y, **kw)
    mirrored = ka.evaluate_robustness(model, x, y, strategy=strategy, **kw)
    # Under a strategy and on shards, merged; and from a tf.data stream.
    shards = [ka.evaluate_robustness(model, x, y, strategy=strategy, shard=(i, 2), diagnose=False, **kw)
              for i in range(2)]
    merged = ka.evaluation.RobustnessReport.merge(shards)
    kw.pop("batch_size")
    stream = ka.evaluate_robustness(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(17),
                                    strategy=strategy, **kw)
    fgsm = ka.attacks.FGSM(0.1)
    info["exact"] = {
        "mirrored": mismatches(mirrored, plain), "stream": mismatches(stream, plain),
        "merged": mismatches(merged, plain),
        "same_dict": mirrored.to_dict() == plain.to_dict() and stream.to_dict() == plain.to_dict(),
        "merged_attacks": merged.to_dict()["attacks"] == plain.to_dict()["attacks"],
        "same_text": str(mirrored) == str(plain),
        "robust": plain.robust_accuracy("pgd", 0.15), "clean": plain.clean_accuracy,
        "generate": bool(np.array_equal(fgsm.generate(model, x, y, batch_size=17, verbose=0, strategy=strategy),
                                        fgsm.generate(model, x, y, batch_size=17, verbose=0))),
    }
    # -- an attack with random draws: per-replica seeds, valid numbers.
    x, y = xt[:34], yt[:34]
    pgd = ka.attacks.PGD(0.1, steps=2, seed=7)  # random start: replicas draw different noise
    kw = dict(attacks={"pgd": pgd}, epsilons=[0.1, 0.2], batch_size=17, verbose=0, diagnose=False)
    plain = ka.evaluate_robustness(model, x, y, **kw)
    mirrored = ka.evaluate_robustness(model, x, y, strategy=strategy, **kw)
    r = mirrored.results["pgd"]
    merged = ka.evaluation.RobustnessReport.merge([
        ka.evaluate_robustness(model, x, y, strategy=strategy, shard=(i, 2), **kw) for i in range(2)])
    x_adv = pgd.generate(model, x, y, batch_size=17, verbose=0, strategy=strategy)
    # Two copies of one example, one per replica: the replica-folded seeds give different random starts.
    start = ka.attacks.FGSM(0.1, random_start=True, seed=3)
    twins = start.generate(model, np.repeat(x[:1], 2, 0), np.repeat(y[:1], 2), verbose=0, strategy=strategy)
    info["random"] = {
        "robust_le_clean": bool(all(not (c & ~mirrored.clean_correct).any() for c in r.correct)),
        "monotone": mirrored.robust_accuracy("pgd", 0.2) <= mirrored.robust_accuracy("pgd", 0.1),
        "max_perturbation": [float(p.max()) for p in r.perturbation],
        "adv_range": [float(x_adv.min()), float(x_adv.max())],
        "linf": float(np.abs(x_adv - x).max()),
        "differs_from_plain": not np.array_equal(x_adv, pgd.generate(model, x, y, batch_size=17, verbose=0)),
        "robust": [mirrored.robust_accuracy("pgd", e) for e in (0.1, 0.2)],
        "robust_plain": [plain.robust_accuracy("pgd", e) for e in (0.1, 0.2)],
        "clean_same": bool(np.array_equal(mirrored.clean_correct, plain.clean_correct)),
        "twins_differ": not np.array_equal(twins[0], twins[1]),
        "shards_merge": mismatches(merged, mirrored),
    }
    print(json.dumps(info))
    """)
    info = json.loads(out.strip().splitlines()[-1])
    assert info["replicas"] == 2
    return info


def test_mirrored_strategy_reports_equal_the_plain_ones_for_deterministic_attacks(mirrored):
    info = mirrored["exact"]
    assert info["mirrored"] == [] and info["stream"] == [] and info["merged"] == []
    assert info["same_dict"] and info["merged_attacks"] and info["same_text"] and info["generate"]
    assert 0.0 < info["robust"] < info["clean"]  # a real attack, not a no-op on both sides


def test_mirrored_strategy_random_attacks_draw_per_replica_and_stay_valid(mirrored):
    info = mirrored["random"]
    assert info["robust_le_clean"] and info["monotone"] and info["clean_same"]
    for eps, p in zip((0.1, 0.2), info["max_perturbation"]):
        assert p <= eps + 1e-6
    assert info["adv_range"][0] >= 0.0 and info["adv_range"][1] <= 1.0 and info["linf"] <= 0.1 + 1e-6
    assert info["differs_from_plain"] and info["twins_differ"]
    assert info["shards_merge"] == []  # per-replica draws are a function of (seed, batch index, replica)
    # Different draws, the same attack: robust accuracies agree within a few examples of 34.
    for a, b in zip(info["robust"], info["robust_plain"]):
        assert abs(a - b) <= 4 / 34


def test_one_replica_strategy_equals_no_strategy_even_for_random_attacks(digits):
    _, (xt, yt) = digits
    model = linear_model(np.random.default_rng(0).normal(size=(64, 10)) * 0.1, np.zeros(10), (8, 8, 1))
    pgd = keras_adv.attacks.PGD(0.1, steps=2, seed=4)
    one = tf.distribute.OneDeviceStrategy("/cpu:0")  # a single replica: the seed is not folded
    np.testing.assert_array_equal(pgd.generate(model, xt[:20], yt[:20], batch_size=7, verbose=0, strategy=one),
                                  pgd.generate(model, xt[:20], yt[:20], batch_size=7, verbose=0))


@pytest.mark.parametrize("bad", ["mirrored", tf.distribute, 2])
def test_bad_strategy_is_refused_naming_the_argument(digits, bad):
    _, (xt, yt) = digits
    model = linear_model(np.zeros((64, 10)), np.zeros(10), (8, 8, 1))
    with pytest.raises(TypeError, match="`strategy` must be a tf.distribute.Strategy"):
        keras_adv.evaluate_robustness(model, xt[:8], yt[:8], attacks={"f": keras_adv.attacks.FGSM(0.1)},
                                      strategy=bad, verbose=0)
    with pytest.raises(TypeError, match="`strategy`"):
        keras_adv.attacks.FGSM(0.1).generate(model, xt[:8], yt[:8], verbose=0, strategy=bad)


@pytest.mark.slow
def test_autoattack_under_a_strategy_keeps_its_bookkeeping_valid():
    out = run_in_fresh_process(_SETUP + """
    x, y = xt[:40], yt[:40]
    aa = ka.attacks.AutoAttack(0.1, steps=5, queries=20, n_target_classes=3, seed=1)
    kw = dict(attacks={"aa": aa, "pgd": ka.attacks.PGD(0.1, steps=5, random_start=False)},
              batch_size=21, verbose=0, diagnose=False)
    plain = ka.evaluate_robustness(model, x, y, **kw)
    mirrored = ka.evaluate_robustness(model, x, y, strategy=strategy, **kw)
    x_adv = aa.generate(model, x, y, batch_size=21, verbose=0, strategy=strategy)
    r = mirrored.results["aa"]
    print(json.dumps({
        "robust_le_clean": bool(not (r.correct[0] & ~mirrored.clean_correct).any()),
        "linf": float(np.abs(x_adv - x).max()), "range": [float(x_adv.min()), float(x_adv.max())],
        "aa": mirrored.robust_accuracy("aa", 0.1), "aa_plain": plain.robust_accuracy("aa", 0.1),
        "pgd_same": mismatches(mirrored, plain),
    }))
    """)
    info = json.loads(out.strip().splitlines()[-1])
    assert info["robust_le_clean"] and info["linf"] <= 0.1 + 1e-6
    assert info["range"][0] >= 0.0 and info["range"][1] <= 1.0
    assert abs(info["aa"] - info["aa_plain"]) <= 3 / 40
    # Only AutoAttack's (random) arrays may differ; the deterministic PGD and the clean pass are identical.
    assert info["pgd_same"] and all(k.startswith("aa/") for k in info["pgd_same"])


_MULTI_WORKER = r'''
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
mode, out = sys.argv[1], sys.argv[2]
index = int(os.environ.get("WORKER_INDEX", 0))
if mode == "multi":
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": os.environ["WORKERS"].split(",")},
                                          "task": {"type": "worker", "index": index}})
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
else:
    strategy = None
import keras, keras_adv as ka

rng = np.random.default_rng(0)
x = rng.uniform(0.0, 1.0, size=(45, 12)).astype("float32")
y = rng.integers(0, 3, 45)
inputs = keras.Input((12,))
model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(16, activation="tanh")(inputs)))
model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
report = ka.evaluate_robustness(
    model, tf.data.Dataset.from_tensor_slices((x, y)).batch(15),
    attacks={"fgsm": ka.attacks.FGSM(0.1), "pgd": ka.attacks.PGD(0.1, steps=3, random_start=False),
             "pgd_rs": ka.attacks.PGD(0.1, steps=3, seed=2)},
    epsilons=[0.05, 0.2], verbose=0, diagnose=False, strategy=strategy)
json.dump({"replicas": 1 if strategy is None else strategy.num_replicas_in_sync,
           "report": report.to_dict(),
           "correct": {n: [c.tolist() for c in r.correct] for n, r in report.results.items()},
           "clean": report.clean_correct.tolist()}, open(f"{out}.{index}.json", "w"))
'''


@pytest.mark.slow
def test_multi_worker_strategy_gathers_the_whole_report_on_every_worker(tmp_path):
    from tests.models.test_multi_worker import single_and_two_workers

    _, one, w0, w1 = single_and_two_workers(_MULTI_WORKER, tmp_path, timeout=300)
    assert w0["replicas"] == 2 and one["replicas"] == 1
    # Every worker holds the report of the whole set (gathered across workers).
    assert w0["report"] == w1["report"] and w0["correct"] == w1["correct"]
    # Deterministic attacks: exactly the single-process report; the random start differs but stays valid.
    for name in ("fgsm", "pgd"):
        assert w0["report"]["attacks"][name] == one["report"]["attacks"][name]
        assert w0["correct"][name] == one["correct"][name]
    assert w0["clean"] == one["clean"]
    clean = np.array(w0["clean"])
    for c in w0["correct"]["pgd_rs"]:
        assert not (np.array(c) & ~clean).any()
