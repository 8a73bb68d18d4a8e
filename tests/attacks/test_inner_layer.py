"""Inner-layer (embedding) perturbation: closed form, padding, model kinds, errors, save/export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from keras_adv.attacks.inner_layer import LayerPerturbation
from tests.conftest import TokenAndPositionEmbedding, run_in_fresh_process

V, T, D, C = 12, 6, 3, 2
IDS = np.array([[3, 4, 5, 0, 0, 0], [1, 2, 3, 4, 5, 6], [7, 8, 0, 0, 0, 0]], "int32")
Y = np.array([0, 1, 1])
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def bag_model(seed=0):
    """Linear bag of embeddings: logits = W·mean_{non-pad t}(E[x_t]) + b, with fixed weights."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((T,), dtype="int32")
    emb = keras.layers.Embedding(V, D, mask_zero=True, name="embedding")
    dense = keras.layers.Dense(C)
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling1D()(emb(inputs))))
    E = rng.normal(size=(V, D)).astype("float32")
    W = rng.normal(size=(D, C)).astype("float32")
    b = rng.normal(size=(C,)).astype("float32")
    emb.set_weights([E])
    dense.set_weights([W, b])
    return model, E, W, b


def test_embedding_fgm_equals_closed_form_on_linear_bag_model():
    model, E, W, b = bag_model()
    eps = 0.7
    delta = LayerPerturbation(model, "embedding").craft(
        ka.attacks.FGSM(epsilon=eps, norm="l2"), IDS, Y).numpy()
    # Closed form: dL/de_t = W(p - onehot(y)) / n on the n non-padding tokens, 0 on padding;
    # the L2 step over the whole sequence is eps * g / ||g|| = eps * u / (||u|| sqrt(n)) per token.
    for i, (ids, y) in enumerate(zip(IDS, Y)):
        m = ids != 0
        n = m.sum()
        z = E[ids[m]].mean(0) @ W + b
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        u = W @ (p - np.eye(C)[y])
        expected = np.zeros((T, D))
        expected[m] = eps * u / (np.linalg.norm(u) * np.sqrt(n))
        np.testing.assert_allclose(delta[i], expected, rtol=1e-4, atol=1e-6)
        assert np.linalg.norm(delta[i]) == pytest.approx(eps, rel=1e-5)


def test_bounds_do_not_apply_to_the_embedding():
    # Default bounds (0, 1) would clip: the embeddings here are mostly negative or > 1.
    model, E, _, _ = bag_model()
    lp = LayerPerturbation(model, "embedding")
    _, e, _ = lp.capture(IDS)
    assert e.numpy().min() < 0
    delta = lp.craft(ka.attacks.PGD(epsilon=1.0, norm="l2", steps=5), IDS, Y).numpy()
    assert np.linalg.norm(delta.reshape(3, -1), axis=1).max() == pytest.approx(1.0, rel=1e-4)
    assert np.abs(delta).sum() > 0


@pytest.mark.filterwarnings("ignore:.*of type Flatten.*mask:UserWarning")  # Flatten is the point here
def test_padding_is_never_perturbed_even_when_it_matters():
    # Flatten makes padding embeddings feed the logits, so their gradient is not zero.
    inputs = keras.Input((T,), dtype="int32")
    h = keras.layers.Embedding(V, D, mask_zero=True, name="embedding")(inputs)
    out = keras.layers.Dense(C)(keras.layers.Flatten()(h))
    model = keras.Model(inputs, out)
    lp = LayerPerturbation(model, "embedding")
    for attack in (ka.attacks.PGD(epsilon=2.0, norm="l2", steps=4),
                   ka.attacks.PGD(epsilon=0.5, norm="linf", steps=4)):
        delta = lp.craft(attack, IDS, Y).numpy()
        assert np.all(delta[IDS == 0] == 0.0)
        assert np.all(np.abs(delta[IDS != 0]).sum(-1) > 0)
    # and forward() adds nothing at padding positions either
    big = np.ones((3, T, D), "float32") * 5
    only_pad = np.where((IDS == 0)[..., None], big, 0.0)
    np.testing.assert_allclose(lp.forward(IDS, only_pad).numpy(), model(IDS).numpy(), atol=1e-6)


class SubclassedText(keras.Model):
    def __init__(self):
        super().__init__()
        self.embedding = keras.layers.Embedding(V, 8, mask_zero=True, name="embedding")
        self.pool = keras.layers.GlobalAveragePooling1D()
        self.out = keras.layers.Dense(C)

    def call(self, x, training=False):
        return self.out(self.pool(self.embedding(x)))


def _sequential():
    return keras.Sequential([keras.Input((T,), dtype="int32"),
                             keras.layers.Embedding(V, 8, mask_zero=True, name="embedding"),
                             keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(C)])


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed",
                                  pytest.param("bilstm", marks=pytest.mark.slow)])
def test_adversarial_model_trains_in_embedding_space(kind):
    base = {"sequential": _sequential,
            "bilstm": lambda: ka.models.presets.text_classifier(V, C, sequence_length=T, width=4,
                                                                 embedding_dim=8, architecture="bilstm"),
            "functional": lambda: ka.models.presets.text_classifier(V, C, sequence_length=T, width=8,
                                                                     embedding_dim=8, architecture="bag"),
            "subclassed": SubclassedText}[kind]()
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=1.0, norm="l2", steps=2),
                                perturb_layer="embedding", seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=LOSS, metrics=["accuracy"],
                  run_eagerly=kind == "sequential")  # graph mode for the others
    ids = np.tile(IDS, (4, 1))
    before = model(ids).numpy()
    hist = model.fit(ids, np.tile(Y, 4), epochs=2, batch_size=12, verbose=0)
    for key in ("loss", "clean_loss", "adv_loss", "accuracy", "adv_accuracy", "robustness_margin"):
        assert np.isfinite(hist.history[key]).all(), key
    # the attack makes the adversarial loss larger than the clean one, and the weights moved
    assert hist.history["adv_loss"][-1] > hist.history["clean_loss"][-1]
    assert not np.allclose(model(ids).numpy(), before)
    if kind == "functional":
        assert model.evaluate(ids, np.tile(Y, 4), verbose=0, return_dict=True)["adv_loss"] > 0


def test_text_vectorization_inside_the_model_and_vat_objective():
    texts = np.array(["good fine great", "bad awful", "great good", "awful bad poor", "fine", "poor"])
    labels = np.array([1, 0, 1, 0, 1, 0])
    vec = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=5)
    vec.adapt(texts)
    base = ka.models.presets.text_classifier(vec.vocabulary_size(), 2, vectorizer=vec, architecture="bag",
                                             embedding_dim=8, width=8)
    model = ka.AdversarialModel(base, attack=ka.attacks.VirtualAdversarial(epsilon=0.5, xi=0.1),
                                objective="vat", perturb_layer="embedding", seed=1)
    model.compile(optimizer="adam", loss=LOSS, metrics=["accuracy"])
    data = tf.data.Dataset.from_tensor_slices((texts, labels, np.array([1, 1, 0, 0, 1, 1.0]))).batch(3)
    hist = model.fit(data, epochs=2, shuffle=False, verbose=0)
    assert np.all(np.array(hist.history["adv_loss"]) > 0)  # the VAT term is active
    assert model.predict(tf.constant(texts), verbose=0).shape == (6, 2)


def test_bad_inputs_name_the_argument():
    base, _, _, _ = bag_model()
    pgd = ka.attacks.PGD(epsilon=1.0, norm="l2")
    with pytest.raises(ValueError, match="perturb_layer.*'embeding'.*embedding"):
        ka.AdversarialModel(base, attack=pgd, perturb_layer="embeding")
    # a layer whose output is not floating point
    texts = np.array(["a b", "c"])
    vec = keras.layers.TextVectorization(max_tokens=10, output_sequence_length=3, name="vectorize")
    vec.adapt(texts)
    text_model = ka.models.presets.text_classifier(vec.vocabulary_size(), 2, vectorizer=vec, width=4,
                                                   embedding_dim=4)
    with pytest.raises(TypeError, match="perturb_layer.*'vectorize'.*floating"):
        ka.AdversarialModel(text_model, attack=pgd, perturb_layer="vectorize")
    # integer token ids given to an input-space attack
    model = ka.AdversarialModel(base, attack=pgd)
    model.compile(optimizer="adam", loss=LOSS)
    weights = [w.copy() for w in base.get_weights()]
    with pytest.raises(TypeError, match="`x`.*token ids.*perturb_layer"):
        model.fit(IDS, Y, epochs=1, verbose=0)
    for w0, w1 in zip(weights, base.get_weights()):
        np.testing.assert_array_equal(w0, w1)  # raised before any weight changed
    with pytest.raises(TypeError, match="`x` holds integer token ids.*HotFlip.*perturb_layer='embedding'"):
        pgd(base, IDS, Y)  # not "x.astype('float32') / 255": the model embeds its integer inputs
    # token ids outside the Embedding's vocabulary: named before any step (not a raw gather error)
    model = ka.AdversarialModel(base, attack=pgd, perturb_layer="embedding")
    model.compile(optimizer="adam", loss=LOSS)
    for bad in (V, -1):
        ids = IDS.copy()
        ids[0, 0] = bad
        with pytest.raises(ValueError, match=r"`x` holds token ids outside \[0, 12\).*'embedding'"):
            model.fit(ids, Y, epochs=1, verbose=0)
        with pytest.raises(ValueError, match=r"`validation_data x` holds token ids outside \[0, 12\)"):
            model.fit(IDS, Y, validation_data=(ids, Y), epochs=1, verbose=0)
    for w0, w1 in zip(weights, base.get_weights()):
        np.testing.assert_array_equal(w0, w1)


def test_subclassed_layer_output_dtype_checked_on_first_use():
    class IntOut(keras.layers.Layer):
        def call(self, x):
            return tf.cast(x, "int32")

    class M(keras.Model):
        def __init__(self):
            super().__init__()
            self.ids = IntOut(name="ids")
            self.emb = keras.layers.Embedding(V, 4)
            self.pool = keras.layers.GlobalAveragePooling1D()
            self.out = keras.layers.Dense(2)

        def call(self, x, training=False):
            return self.out(self.pool(self.emb(self.ids(x))))

    m = M()
    m(IDS)
    with pytest.raises(TypeError, match="perturb_layer.*'ids'.*int32"):
        LayerPerturbation(m, "ids").craft(ka.attacks.FGSM(epsilon=1.0, norm="l2"), IDS, Y)




def test_an_embedding_inside_a_custom_layer_is_perturbed():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((T,), dtype="int32")
    tok_pos = TokenAndPositionEmbedding(T, V, 4)
    base = keras.Model(inputs, keras.layers.Dense(C)(keras.layers.GlobalAveragePooling1D()(tok_pos(inputs))))
    for layer in ("tok_emb", tok_pos.token_emb):
        lp = LayerPerturbation(base, layer)
        assert lp.layer is tok_pos.token_emb
        delta = lp.craft(ka.attacks.PGD(epsilon=1.0, norm="l2", steps=2), IDS, Y).numpy()
        assert np.all(delta[IDS == 0] == 0.0) and np.abs(delta).sum() > 0  # the inner Embedding's mask
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=1.0, norm="l2", steps=2),
                                perturb_layer="tok_emb", seed=0)
    model.compile(optimizer="adam", loss=LOSS)
    hist = model.fit(np.tile(IDS, (2, 1)), np.tile(Y, 2), epochs=1, batch_size=6, verbose=0)
    assert np.isfinite(hist.history["adv_loss"]).all()
    with pytest.raises(ValueError, match="`perturb_layer`='tok' is neither the name of a layer.*'tok_emb'.*'pos_emb'"):
        LayerPerturbation(base, "tok")  # the nested names are listed


def test_unbuilt_subclassed_model_trains_in_embedding_space():
    # Keras builds a subclassed model inside its first call by running `call` once more: that pass
    # is not a second call of the perturbed layer (a shared layer).
    keras.utils.set_random_seed(0)
    base = SubclassedText()
    assert not base.built
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=1.0, norm="l2", steps=2),
                                perturb_layer="embedding", seed=0)
    model.compile(optimizer="adam", loss=LOSS)
    hist = model.fit(IDS, Y, epochs=1, verbose=0)
    assert np.isfinite(hist.history["adv_loss"]).all()
    # a layer really called twice is still refused
    class Twice(keras.Model):
        def __init__(self):
            super().__init__()
            self.embedding = keras.layers.Embedding(V, 4, name="embedding")
            self.pool = keras.layers.GlobalAveragePooling1D()
            self.out = keras.layers.Dense(C)

        def call(self, x):
            return self.out(self.pool(self.embedding(x) + self.embedding(x)))

    with pytest.raises(ValueError, match="runs more than once in one forward pass"):
        LayerPerturbation(Twice(), "embedding").capture(IDS)


@pytest.mark.slow
def test_save_load_and_export_in_a_fresh_process(tmp_path):
    out = run_in_fresh_process(f"""
        import numpy as np, keras, tensorflow as tf
        import keras_adv as ka
        task = ka.datasets.synthetic_text(64, vocab_size=50, max_length=12, min_length=6, seed=0)
        texts = np.array([" ".join(f"w{{t}}" for t in row if t) for row in task.x])
        vec = keras.layers.TextVectorization(max_tokens=60, output_sequence_length=12)
        vec.adapt(texts)
        for name, x, base in [
            ("ids", task.x, ka.models.presets.text_classifier(50, 2, sequence_length=12, width=8, embedding_dim=8)),
            ("strings", tf.constant(texts), ka.models.presets.text_classifier(vec.vocabulary_size(), 2, vectorizer=vec,
                                                                 width=8, embedding_dim=8))]:
            model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=1.0, norm="l2", steps=2),
                                        perturb_layer="embedding", seed=0)
            model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"])
            model.fit(x, task.y, epochs=1, batch_size=16, verbose=0)
            model.save(r"{tmp_path}/" + name + ".keras")
            model.export(r"{tmp_path}/" + name + "_serving", verbose=False)
            np.save(r"{tmp_path}/" + name + "_pred.npy", model.predict(x, verbose=0))
        np.save(r"{tmp_path}/x.npy", task.x); np.save(r"{tmp_path}/texts.npy", texts); np.save(r"{tmp_path}/y.npy", task.y)
        print("saved")
    """)
    assert "saved" in out
    out = run_in_fresh_process(f"""
        import numpy as np, keras, tensorflow as tf
        import keras_adv as ka
        x = np.load(r"{tmp_path}/x.npy"); texts = np.load(r"{tmp_path}/texts.npy"); y = np.load(r"{tmp_path}/y.npy")
        for name, inp in [("ids", x), ("strings", tf.constant(texts))]:
            model = keras.models.load_model(r"{tmp_path}/" + name + ".keras")
            assert isinstance(model, ka.AdversarialModel) and model.perturb_layer == "embedding"
            ref = np.load(r"{tmp_path}/" + name + "_pred.npy")
            np.testing.assert_allclose(model.predict(inp, verbose=0), ref, atol=1e-5)
            model.fit(inp, y, epochs=1, batch_size=16, verbose=0)  # still trains adversarially
            served = tf.saved_model.load(r"{tmp_path}/" + name + "_serving")
            sig = served.signatures["serving_default"]
            spec = list(sig.structured_input_signature[1].values())[0]
            out = sig(**{{list(sig.structured_input_signature[1])[0]: tf.constant(inp)}})["predictions"].numpy()
            np.testing.assert_allclose(out, ref, atol=1e-5)
            print(name, spec.dtype.name, spec.shape)
    """)
    assert "ids int32 (None, 12)" in out and "strings string (None,)" in out
