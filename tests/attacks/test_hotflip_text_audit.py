"""HotFlip findings of the text audit: remapped ids, out-of-vocabulary token lists, string models,
variable-length streams."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from tests.attacks.test_hotflip import IDS, Y, D, T, V


def _same_function_two_models():
    """The audit's repro: model A embeds the ids; model B computes exactly A's function, but remaps the
    ids first (what an IntegerLookup or a reserved-id shift does) and embeds them with A's rows permuted."""
    rng = np.random.default_rng(0)
    inputs = keras.Input((T,), dtype="int32")
    emb_a, dense_a = keras.layers.Embedding(V, D, name="embedding"), keras.layers.Dense(2)
    a = keras.Model(inputs, dense_a(keras.layers.GlobalAveragePooling1D()(emb_a(inputs))))
    emb_a.set_weights([rng.normal(size=(V, D)).astype("float32")])
    perm = rng.permutation(V).astype("int32")
    inputs_b = keras.Input((T,), dtype="int32")
    mapped = keras.layers.Lambda(lambda t: keras.ops.take(keras.ops.convert_to_tensor(perm), t),
                                 output_shape=(T,), name="remap")(inputs_b)
    emb_b, dense_b = keras.layers.Embedding(V, D, name="embedding"), keras.layers.Dense(2)
    b = keras.Model(inputs_b, dense_b(keras.layers.GlobalAveragePooling1D()(emb_b(mapped))))
    dense_b.set_weights(dense_a.get_weights())
    emb_b.set_weights([emb_a.get_weights()[0][np.argsort(perm)]])  # row perm[i] of B is row i of A
    return a, b


def test_an_embedding_not_fed_the_input_ids_is_refused():
    model, twin = _same_function_two_models()
    ids = IDS
    np.testing.assert_allclose(model.predict(ids, verbose=0), twin.predict(ids, verbose=0), atol=1e-6)
    hf = ka.attacks.HotFlip(2)
    hf(model, ids, Y)  # the Embedding fed the ids: fine
    message = r"Embedding 'embedding' is not fed the model's input ids.*IntegerLookup.*data pipeline"
    with pytest.raises(ValueError, match=message):
        hf(twin, ids, Y)
    with pytest.raises(ValueError, match=message):
        ka.evaluate_robustness(twin, ids, Y, attacks={"hf": ka.attacks.HotFlip(2)}, epsilons=[1, 2], verbose=0)
    with pytest.raises(ValueError, match=message):  # naming the layer does not make it sound
        ka.attacks.HotFlip(2, layer="embedding")(twin, ids, Y)
    # the usual front end: an IntegerLookup before the Embedding
    lookup = keras.layers.IntegerLookup(vocabulary=np.arange(V - 1, 1, -1), mask_token=0)  # 9 -> 2, 8 -> 3, ...
    inputs = keras.Input((T,), dtype="int64")
    h = keras.layers.Embedding(lookup.vocabulary_size(), D, name="embedding")(lookup(inputs))
    looked_up = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h)))
    with pytest.raises(ValueError, match=message):
        hf(looked_up, IDS.astype("int64"), Y)


def test_a_model_that_takes_strings_is_refused_with_what_to_pass():
    texts = np.array(["win free cash now", "lunch meeting tomorrow", "claim your prize", "report thanks"])
    vec = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=T)
    vec.adapt(texts)
    model = ka.models.presets.text_classifier(vec.vocabulary_size(), 2, vectorizer=vec, embedding_dim=4, width=4)
    ids = vec(texts).numpy()
    message = r"takes strings \(its input 'text' is tf.string.*Attack the classifier that takes the ids"
    with pytest.raises(TypeError, match=message):
        ka.attacks.HotFlip(1)(model, ids, Y)
    with pytest.raises(TypeError, match=message):
        ka.evaluate_robustness(model, ids, Y, attacks={"hf": ka.attacks.HotFlip(1)}, epsilons=[1], verbose=0)


def test_token_lists_outside_the_vocabulary_are_refused_before_any_attack_work(monkeypatch):
    from tests.attacks.test_hotflip import bag_model

    model = bag_model()
    calls = []
    monkeypatch.setattr(ka.attacks.HotFlip, "_flip", lambda self, *a: calls.append(a))
    cases = [
        (dict(candidates={2: [V + 3, 4], 5: [6]}), r"`candidates` holds 1 token id\(s\) outside \[0, 10\)"
                                                   r".*'embedding' \(input_dim=10\): 13\."),
        (dict(candidates={V + 1: [3]}), r"`candidates` holds 1 token id\(s\) outside \[0, 10\).*: 11\."),
        (dict(candidates=np.array([[3, -1], [50, 60]])), r"`candidates` holds 2 token id\(s\).*: 50, 60\."),
        (dict(allowed_tokens=range(1000, 1100)), r"`allowed_tokens` holds 100 token id\(s\) outside \[0, 10\)"
                                                 r".*: 1000, 1001, 1002, 1003, 1004 and 95 more\."),
    ]
    for kwargs, message in cases:
        hf = ka.attacks.HotFlip(2, **kwargs)
        with pytest.raises(ValueError, match=message):
            hf(model, IDS, Y)
        with pytest.raises(ValueError, match=message):
            ka.evaluate_robustness(model, IDS, Y, attacks={"hf": hf}, epsilons=[1, 2], verbose=0)
        with pytest.raises(ValueError, match=message):
            hf.generate(model, IDS, Y, verbose=0)
    assert not calls
    monkeypatch.undo()
    with pytest.raises(ValueError, match="`allowed_tokens` is empty"):
        ka.attacks.HotFlip(2, allowed_tokens=[])
    # a table with spare rows of -1 only (built for a larger vocabulary, no entries there) is fine
    table = np.full((V + 5, 2), -1)
    table[2] = [3, 4]
    ka.attacks.HotFlip(1, candidates=table)(model, IDS, Y)


def test_messages_name_the_argument_the_user_passed():
    from tests.attacks.test_hotflip import bag_model

    model = bag_model()
    hf = ka.attacks.HotFlip(1)
    with pytest.raises(ValueError, match=r"^`data` holds token ids outside \[0, 10\)"):
        ka.evaluate_robustness(model, IDS + V, Y, attacks={"hf": hf}, epsilons=[1], verbose=0)
    with pytest.raises(ValueError, match=r"`epsilons\[1\]` must be >= 0"):
        ka.evaluate_robustness(model, IDS, Y, attacks={"hf": hf}, epsilons=[1, -1], verbose=0)
    with pytest.raises(TypeError, match=r"^`x` must hold floating-point inputs, got dtype int32\. They look like "
                                        r"token ids.*HotFlip"):
        ka.evaluation.diagnose_gradient_masking(model, IDS, Y, epsilon=1)


def test_generate_pads_a_variable_length_stream_with_the_padding_id():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(V, D, mask_zero=True),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    rng = np.random.default_rng(0)
    seqs = [rng.integers(2, V, rng.integers(2, 7)).astype("int32") for _ in range(12)]
    labels = rng.integers(0, 2, 12)
    stream = tf.data.Dataset.from_generator(lambda: zip(seqs, labels), output_signature=(
        tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int64))).padded_batch(4)  # own length per batch
    hf = ka.attacks.HotFlip(1)
    batches = [x for x, _ in hf.iterate(model, stream)]
    assert len({b.shape[1] for b in batches}) > 1
    adv = hf.generate(model, stream, verbose=0)
    longest = max(len(s) for s in seqs)
    assert adv.shape == (12, longest)
    for i, seq in enumerate(seqs):
        assert (adv[i, len(seq):] == 0).all()  # padding, never changed, and the padding added
        assert (adv[i, :len(seq)] != seq).sum() <= 1
    np.testing.assert_array_equal(adv[:4, :batches[0].shape[1]], batches[0])
    # an input-space attack on batches of different shapes: a clear error pointing to `iterate`
    floats = keras.Sequential([keras.Input((None, 1)), keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    ragged = tf.data.Dataset.from_generator(lambda: ((s[:, None] / V, l) for s, l in zip(seqs, labels)),
                                            output_signature=(tf.TensorSpec([None, 1], tf.float64),
                                                              tf.TensorSpec([], tf.int64))).padded_batch(4)
    with pytest.raises(ValueError, match=r"`data` yields batches of different shapes.*use `iterate`"):
        ka.attacks.FGSM(epsilon=0.1).generate(floats, ragged, verbose=0)


class KerasIoTokenAndPositionEmbedding(keras.layers.Layer):
    """keras.io's layer verbatim: its Embeddings keep Keras' automatic names ("embedding", "embedding_1")."""

    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = keras.layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = keras.layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        return self.token_emb(x) + self.pos_emb(keras.ops.arange(0, keras.ops.shape(x)[-1], 1))


def test_token_emb_is_found_by_its_attribute_name():
    from keras_adv.attacks.inner_layer import find_layer

    keras.utils.set_random_seed(0)
    tpe = KerasIoTokenAndPositionEmbedding(T, V, D, name="tpe")
    inputs = keras.Input((T,), dtype="int32")
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(tpe(inputs))))
    assert tpe.token_emb.name != "token_emb"
    assert find_layer(model, "token_emb") is tpe.token_emb and find_layer(model, "pos_emb") is tpe.pos_emb
    wrapped = ka.AdversarialModel(model, attack=ka.attacks.PGD(epsilon=0.5, norm="l2"), perturb_layer="token_emb")
    assert wrapped._perturbation.layer is tpe.token_emb
    adv = ka.attacks.HotFlip(1, layer="token_emb", protected_tokens=[0])(model, IDS, Y).numpy()
    assert ((adv != IDS).sum(1) <= 1).all()
    # the hint of an unknown name says how to pass it, instead of "name it 'embedding'"
    with pytest.raises(ValueError, match=r"`layer`='tok' is neither the name of a layer.*nor a public attribute.*"
                                         r"Pass the layer object itself"):
        ka.attacks.HotFlip(1, layer="tok")(model, IDS, Y)
    # the same attribute name on two layers: ambiguous, the message says which
    twin = KerasIoTokenAndPositionEmbedding(T, V, D, name="tpe2")
    both = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(
        keras.layers.Add()([tpe(inputs), twin(inputs)]))))
    with pytest.raises(ValueError, match=r"`perturb_layer`='token_emb' is an attribute of several layers \(tpe\."
                                         r"token_emb = layer .*tpe2\.token_emb"):
        find_layer(both, "token_emb")
