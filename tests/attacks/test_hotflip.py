"""HotFlip: exact on a linear bag model, budget, padding, candidate tables, evaluation."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka

V, T, D = 10, 5, 3
IDS = np.array([[2, 3, 4, 0, 0], [5, 6, 7, 8, 9], [2, 9, 0, 0, 0], [4, 4, 5, 6, 0]], "int32")
Y = np.array([0, 1, 1, 0])


def bag_model(seed=0):
    rng = np.random.default_rng(seed)
    inputs = keras.Input((T,), dtype="int32")
    emb = keras.layers.Embedding(V, D, mask_zero=True, name="embedding")
    dense = keras.layers.Dense(2)
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling1D()(emb(inputs))))
    emb.set_weights([rng.normal(size=(V, D)).astype("float32")])
    dense.set_weights([rng.normal(size=(D, 2)).astype("float32"), np.zeros(2, "float32")])
    return model


def _loss(model, ids, y):
    return ka.losses.crossentropy(y, model(np.asarray(ids, "int32"))).numpy()


def test_one_flip_with_full_check_equals_brute_force():
    model = bag_model()
    hf = ka.attacks.HotFlip(max_substitutions=1, top_k=T * V, protected_tokens=[0, 1])
    adv = hf(model, IDS, Y).numpy()
    for i in range(len(IDS)):
        clean = _loss(model, IDS[i:i + 1], Y[i:i + 1])[0]
        cands = []
        for t, v in itertools.product(range(T), range(2, V)):
            if IDS[i, t] != 0 and IDS[i, t] != v:
                cands.append(IDS[i].copy())
                cands[-1][t] = v
        losses = _loss(model, np.stack(cands), np.full(len(cands), Y[i]))
        best_ids = cands[int(losses.argmax())] if losses.max() > clean else IDS[i]
        if model(IDS[i:i + 1]).numpy().argmax() != Y[i]:
            np.testing.assert_array_equal(adv[i], IDS[i])  # already misclassified: left alone
        else:
            np.testing.assert_array_equal(adv[i], best_ids)


def test_budget_padding_protected_and_dtype():
    model = bag_model(1)
    for k in (1, 2, 3):
        hf = ka.attacks.HotFlip(max_substitutions=k, protected_tokens=[0, 1, 2])
        adv = hf(model, tf.constant(IDS, tf.int64), Y)
        assert adv.dtype == tf.int64
        adv = adv.numpy()
        assert ((adv != IDS).sum(1) <= k).all()
        assert (adv[IDS == 0] == 0).all() and (adv[IDS == 2] == 2).all()  # padding, protected kept
        assert not np.isin(adv[adv != IDS], [0, 1, 2]).any()  # never introduced
    # ε overrides k per call (how evaluate_robustness sweeps k)
    assert ((hf(model, IDS, Y, epsilon=1).numpy() != IDS).sum(1) <= 1).all()


def test_greedy_k_flips_raise_the_loss_monotonically():
    model = bag_model(2)
    losses = [_loss(model, ka.attacks.HotFlip(max_substitutions=k, protected_tokens=[0])(model, IDS, 1 - Y), 1 - Y)
              for k in (1, 2, 3)]
    # Whatever the labels, the greedy objective never decreases with k.
    assert np.all(losses[1] >= losses[0] - 1e-6) and np.all(losses[2] >= losses[1] - 1e-6)


def test_candidate_table_and_allowed_tokens_are_respected():
    model = bag_model(3)
    synonyms = {t: [(t + 1) % V or 2, (t + 2) % V or 2] for t in range(2, V)}
    hf = ka.attacks.HotFlip(max_substitutions=3, candidates=synonyms, protected_tokens=[0])
    adv = hf(model, IDS, Y).numpy()
    changed = adv != IDS
    assert changed.any()
    for src, dst in zip(IDS[changed], adv[changed]):
        assert dst in synonyms[src]
    hf = ka.attacks.HotFlip(max_substitutions=3, allowed_tokens=[7, 8], protected_tokens=[0])
    adv = hf(model, IDS, Y).numpy()
    assert np.isin(adv[adv != IDS], [7, 8]).all()
    # a boolean mask is the same as the list of ids
    mask = np.zeros(V, bool)
    mask[[7, 8]] = True
    assert ka.attacks.HotFlip(allowed_tokens=mask).allowed_tokens == [7, 8]


def test_evaluate_robustness_reports_accuracy_under_k_substitutions():
    model = bag_model(4)
    ids = np.tile(IDS, (3, 1))
    y = np.tile(Y, 3)
    hf = ka.attacks.HotFlip(max_substitutions=3, protected_tokens=[0])
    report = ka.evaluate_robustness(model, ids, y, attacks={"hotflip": hf}, epsilons=[1, 2, 3],
                                    verbose=0, batch_size=len(ids), diagnose=False)
    d = report.to_dict()
    assert d["norm"] == "l0"
    clean = model(ids).numpy().argmax(1) == y
    robust = []
    for k in (1, 2, 3):
        adv = hf(model, ids, y, epsilon=k).numpy()
        robust.append(np.mean(clean & (model(adv).numpy().argmax(1) == y)))
    assert report.clean_accuracy == pytest.approx(clean.mean())
    got = [r["robust_accuracy"] for r in d["worst_case"]]
    np.testing.assert_allclose(got, robust)
    assert got[0] >= got[1] >= got[2]


def test_serialization_round_trip():
    hf = ka.attacks.HotFlip(max_substitutions=2, candidates=[[3, -1], [2, 4]], allowed_tokens=[2, 3, 4],
                            layer="embedding", top_k=4, seed=3)
    back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(hf))
    assert isinstance(back, ka.attacks.HotFlip) and back.get_config() == hf.get_config()


def test_bad_inputs():
    model = bag_model()
    hf = ka.attacks.HotFlip()
    with pytest.raises(TypeError, match="`x`.*strings"):
        hf(model, np.array(["a b", "c"]), [0, 1])
    with pytest.raises(TypeError, match="`x` must be integer token ids"):
        hf(model, IDS.astype("float32"), Y)
    with pytest.raises(ValueError, match="`max_substitutions` must be >= 1"):
        ka.attacks.HotFlip(max_substitutions=0)
    with pytest.raises(ValueError, match="`layer`='emb' is not a layer"):
        ka.attacks.HotFlip(layer="emb")(model, IDS, Y)
    with pytest.raises(ValueError, match="`candidates` must be"):
        ka.attacks.HotFlip(candidates=[1, 2, 3])
