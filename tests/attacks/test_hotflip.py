"""HotFlip: exact on a linear bag model, budget, padding, candidate tables, evaluation."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from tests.conftest import TokenAndPositionEmbedding

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
    with pytest.raises(ValueError, match="`layer`='emb' is neither the name of a layer"):
        ka.attacks.HotFlip(layer="emb")(model, IDS, Y)
    with pytest.raises(ValueError, match="`candidates` must be"):
        ka.attacks.HotFlip(candidates=[1, 2, 3])


# ------------------------------------------------------------------ new-user audit (text)


class OnlyTokens(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [keras.layers.Embedding(V, D, mask_zero=True, name="tok_only")]  # in a list

    def call(self, x):
        return self.blocks[0](x)


def _nested_model(layer):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((T,), dtype="int32")
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(layer(inputs)))
    return keras.Model(inputs, out)


def test_an_embedding_inside_a_custom_layer_is_found():
    model = _nested_model(TokenAndPositionEmbedding(T, V, D))
    for layer in ("tok_emb", model.layers[1].token_emb):  # by name, and the layer itself
        adv = ka.attacks.HotFlip(2, layer=layer, protected_tokens=[0])(model, IDS, Y).numpy()
        assert ((adv != IDS).sum(1) <= 2).all() and (adv != IDS).any()
    # two Embeddings, one fed positions: the default is the one fed the ids
    by_default = ka.attacks.HotFlip(2, protected_tokens=[0])
    np.testing.assert_array_equal(by_default(model, IDS, Y).numpy(),
                                  ka.attacks.HotFlip(2, layer="tok_emb", protected_tokens=[0])(model, IDS, Y).numpy())
    assert by_default._perturbation(model).layer.name == "tok_emb"
    # two Embeddings both fed the ids: the default search names both, with their vocabularies, and how to choose
    keras.utils.set_random_seed(0)
    inputs = keras.Input((T,), dtype="int32")
    both = keras.layers.Concatenate()([keras.layers.Embedding(V, D, name="emb_a")(inputs),
                                       keras.layers.Embedding(V + 2, D, name="emb_b")(inputs)])
    twin = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(both)))
    with pytest.raises(ValueError, match=r"2 Embedding layers \('emb_a' with input_dim=10, 'emb_b' with input_dim=12\)"
                                         r".*`layer=`"):
        ka.attacks.HotFlip()(twin, IDS, Y)
    # a single nested Embedding (here in a list attribute) is the default; labels the model's own
    # predictions, so every sequence is classified correctly and something must be flipped
    only = _nested_model(OnlyTokens())
    predicted = only.predict(IDS, verbose=0).argmax(1)
    adv = ka.attacks.HotFlip(2, protected_tokens=[0])(only, IDS, predicted).numpy()
    assert (adv != IDS).any()


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.emb = keras.layers.Embedding(V, D, mask_zero=True, name="emb")
        self.pool = keras.layers.GlobalAveragePooling1D()
        self.out = keras.layers.Dense(2)

    def call(self, x):
        return self.out(self.pool(self.emb(x)))


def test_unbuilt_subclassed_model_and_a_layer_that_is_not_an_embedding():
    keras.utils.set_random_seed(0)
    model = Subclassed()
    assert not model.built
    adv = ka.attacks.HotFlip(2, protected_tokens=[0])(model, IDS, Y).numpy()  # builds it first
    assert ((adv != IDS).sum(1) <= 2).all() and (adv[IDS == 0] == 0).all()
    with pytest.raises(TypeError, match="`layer`='logits' is a Dense, not an Embedding"):
        ka.attacks.HotFlip(layer="logits")(bag_model_named(), IDS, Y)


def bag_model_named():
    model = bag_model()
    inputs = keras.Input((T,), dtype="int32")
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(model(inputs)))


def test_epsilon_is_the_budget_and_ignored_arguments_are_refused():
    assert ka.attacks.HotFlip(epsilon=3).max_substitutions == 3
    assert ka.attacks.HotFlip(epsilon=2, max_substitutions=2).epsilon == 2
    assert ka.attacks.HotFlip().max_substitutions == 1
    with pytest.raises(ValueError, match="`max_substitutions`=2 and `epsilon`=3"):
        ka.attacks.HotFlip(2, epsilon=3)
    with pytest.raises(ValueError, match="`epsilon` must be an integer"):
        ka.attacks.HotFlip(epsilon=1.5)
    with pytest.raises(ValueError, match="HotFlip takes no `bounds`"):
        ka.attacks.HotFlip(bounds=(5, 1))
    with pytest.raises(ValueError, match="HotFlip takes no `norm`.*'l0'"):
        ka.attacks.HotFlip(norm="l2")
    assert ka.attacks.HotFlip(norm="l0").norm.name == "l0"
    hf = ka.attacks.HotFlip(epsilon=2, check_inputs=False)
    back = ka.attacks.HotFlip.from_config(hf.get_config())
    assert back.get_config() == hf.get_config() and back.max_substitutions == 2 and not back.check_inputs


def test_non_integer_budgets_are_refused():
    model = bag_model()
    hf = ka.attacks.HotFlip(3, protected_tokens=[0])
    for eps in (1.6, np.float32(0.5), tf.constant(2.5)):
        with pytest.raises(ValueError, match="`epsilon`=.*whole number of substituted tokens"):
            hf(model, IDS, Y, epsilon=eps)
    traced = tf.function(lambda x, y, k: hf(model, x, y, epsilon=k))
    with pytest.raises(tf.errors.InvalidArgumentError, match="whole number of substituted tokens"):
        traced(tf.constant(IDS), tf.constant(Y), tf.constant(1.5))
    assert ((traced(tf.constant(IDS), tf.constant(Y), tf.constant(2.0)).numpy() != IDS).sum(1) <= 2).all()
    with pytest.raises(ValueError, match=r"`epsilons` must be whole numbers.*\[0.5, 1.5\]"):
        ka.evaluate_robustness(model, IDS, Y, attacks={"hf": hf}, epsilons=[0.5, 1, 1.5], verbose=0)


def test_masked_tokens_are_never_introduced_whatever_the_token_lists_say():
    model = bag_model(5)  # Embedding(mask_zero=True): id 0 is padding
    ids = np.tile(IDS, (4, 1))
    y = np.tile(Y, 4)
    for allowed in ([0], [0, 2, 3], None):
        adv = ka.attacks.HotFlip(3, protected_tokens=[], allowed_tokens=allowed, top_k=V * T)(model, ids, y).numpy()
        assert not ((adv == 0) & (ids != 0)).any(), allowed  # 0 never introduced
        assert (adv[ids == 0] == 0).all()  # padding never changed
    # without a mask, id 0 is an ordinary token: allowed, it may be introduced
    keras.utils.set_random_seed(0)
    plain = keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(V, D),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    adv = ka.attacks.HotFlip(3, protected_tokens=[], allowed_tokens=[0], top_k=V * T)(plain, ids, y).numpy()
    assert ((adv == 0) & (ids != 0)).any()


def test_a_token_attack_is_refused_by_adversarial_model_at_construction():
    base = bag_model()
    for kwargs in ({"attack": ka.attacks.HotFlip(1)},
                   {"attack": ka.attacks.HotFlip(1), "perturb_layer": "embedding"},
                   {"attack": ka.attacks.PGD(epsilon=0.5, norm="l2"), "eval_attack": ka.attacks.HotFlip(2),
                    "perturb_layer": "embedding"}):
        arg = "eval_attack" if "eval_attack" in kwargs else "attack"
        with pytest.raises(ValueError, match=f"`{arg}` is HotFlip, a token attack.*perturb_layer='embedding'"):
            ka.AdversarialModel(base, **kwargs)


def test_input_errors_name_the_argument():
    model = bag_model()
    hf = ka.attacks.HotFlip(1)
    for bad in (V, V + 50, -3):
        ids = IDS.copy()
        ids[1, 2] = bad
        with pytest.raises(ValueError, match=r"`x` holds token ids outside \[0, 10\).*'embedding'"):
            hf(model, ids, Y)
        with pytest.raises(ValueError, match=r"`data` holds token ids outside \[0, 10\)"):
            ka.evaluate_robustness(model, ids, Y, attacks={"hf": hf}, epsilons=[1], verbose=0)
        stream = tf.data.Dataset.from_tensor_slices((ids, Y)).batch(2)
        with pytest.raises(ValueError, match=r"`data` holds token ids outside \[0, 10\)"):
            ka.evaluate_robustness(model, stream, attacks={"hf": hf}, epsilons=[1], verbose=0)
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"token ids outside \[0, 10\)"):
            tf.function(lambda x, y: hf(model, x, y))(tf.constant(ids), tf.constant(Y))
    ragged = tf.ragged.constant([[3, 4, 5], [6, 7]])
    with pytest.raises(TypeError, match="`x` is a tf.RaggedTensor.*to_tensor"):
        hf(model, ragged, Y[:2])
    with pytest.raises(TypeError, match="`x` is a tf.RaggedTensor.*to_tensor"):
        ka.attacks.PGD(epsilon=0.1)(model, tf.ragged.constant([[0.1, 0.2], [0.3]]), Y[:2])
    with pytest.raises(TypeError, match="`data` is a tf.RaggedTensor.*to_tensor"):
        ka.evaluate_robustness(model, ragged, Y[:2], attacks={"hf": hf}, verbose=0)
    # an input-space attack given the ids of a model that embeds them: HotFlip / perturb_layer, not "/255"
    pgd = ka.attacks.PGD(epsilon=0.1)
    for call in (lambda: pgd(model, IDS, Y), lambda: pgd.generate(model, IDS, Y, verbose=0)):
        with pytest.raises(TypeError, match="`x` holds integer token ids.*'embedding'.*HotFlip.*perturb_layer"):
            call()
    with pytest.raises(TypeError, match="`data` holds integer token ids.*HotFlip"):
        ka.evaluate_robustness(model, IDS, Y, attacks={"pgd": pgd}, verbose=0)
    with pytest.raises(ValueError, match=r"`attacks` mix token attacks \('hf' \(HotFlip, l0\)\).*"
                                         r"input-space attacks \('pgd' \(PGD, linf\)\)"):
        ka.evaluate_robustness(model, IDS, Y, attacks={"hf": hf, "pgd": pgd}, verbose=0)
    # a model without an Embedding: layer= cannot help, the message says what HotFlip needs
    dense = keras.Sequential([keras.Input((T,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="HotFlip attacks token ids through the model's keras.layers.Embedding, "
                                         "and model .* has none"):
        hf(dense, IDS, Y)


def test_text_report_header_has_no_image_bounds():
    model = bag_model(4)
    report = ka.evaluate_robustness(model, IDS, Y, attacks={"hf": ka.attacks.HotFlip(2, protected_tokens=[0])},
                                    epsilons=[1, 2], verbose=0, diagnose=False)
    header = str(report).splitlines()[0]
    assert "bounds" not in header and "inf" not in header
    assert "l0 threat model (token substitutions" in header
