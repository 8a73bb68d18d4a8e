"""FeatureSpace: construction, the independent checker, repair, serialization and the bad-input table."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from keras_adv.datasets import tabular
from keras_adv.domains import FeatureSpace, LessEqual, Relation, check_examples


def _toy_space(**kw):
    # 0: continuous [0, 10]; 1: integer [0, 5]; 2: immutable; 3-5: one-hot; 6 = 2 * x0 (derived)
    @keras.saving.register_keras_serializable(package="keras_adv_tests")
    def double_rel(x):
        return x[:, 6] - 2.0 * x[:, 0]

    @keras.saving.register_keras_serializable(package="keras_adv_tests")
    def double_fix(x):
        return tf.concat([x[:, :6], 2.0 * x[:, :1]], axis=1)

    args = dict(lower=[0, 0, -np.inf, 0, 0, 0, 0], upper=[10, 5, np.inf, 1, 1, 1, 20],
                mutable=[True, True, False, True, True, True, True], integer=[False, True, False, False, False, False, False],
                categorical=[[3, 4, 5]],
                relations=[Relation(double_rel, kind="==", tolerance=1e-5, repair=double_fix, outputs=[6], name="x6 = 2 x0")],
                names=["a", "b", "c", "p", "q", "r", "d"])
    args.update(kw)
    return FeatureSpace(**args)


def test_repair_is_exact_on_every_constraint_type():
    space = _toy_space()
    x = np.array([[1.0, 2.0, 7.0, 1, 0, 0, 2.0]], np.float32)
    x_adv = np.array([[12.0, 3.4, -3.0, 0.2, 0.7, 0.1, 5.0]], np.float32)
    out = space.repair(tf.constant(x_adv), tf.constant(x)).numpy()
    # clipped to upper 10, rounded 3.4 -> 3, immutable restored, argmax one-hot, derived recomputed
    np.testing.assert_array_equal(out, [[10.0, 3.0, 7.0, 0, 1, 0, 20.0]])
    assert check_examples(space, out, x).valid.all()
    # towards x (the Domain.project contract): 3.4 from 2 rounds down to 3, 2.6 from 4 rounds up to 3
    out = space.project(tf.constant([[1.0, 2.6, 7.0, 1, 0, 0, 2.0]]), tf.constant([[1.0, 4.0, 7.0, 1, 0, 0, 2.0]]))
    assert out.numpy()[0, 1] == 3.0


def test_budget_projection_is_scaled_and_skips_derived_features():
    space = _toy_space()
    x = tf.constant([[5.0, 2.0, 0.0, 1, 0, 0, 10.0]])
    far = tf.constant([[9.0, 2.0, 0.0, 1, 0, 0, 10.0]])
    out = space.budget_project(x, far, 0.1, ka.norms.Linf()).numpy()
    # scale of feature 0 is its range 10: ε = 0.1 allows 1.0; the derived feature follows (2 × 6)
    np.testing.assert_allclose(out[0, [0, 6]], [6.0, 12.0])
    assert float(space.distance(tf.constant(out), x, ka.norms.Linf())[0]) == pytest.approx(0.1)


def test_checker_flags_each_violation_under_its_own_name():
    space = _toy_space()
    x = np.array([[1.0, 2.0, 7.0, 1, 0, 0, 2.0]] * 6, np.float32)
    bad = x.copy()
    bad[0, 0] = 11.0; bad[0, 6] = 22.0         # bounds
    bad[1, 2] = 8.0                             # immutable
    bad[2, 1] = 2.5                             # integer
    bad[3, 3:6] = [1, 1, 0]                     # one-hot
    bad[4, 6] = 3.0                             # relation
    bad[5, 0] = 2.0; bad[5, 6] = 4.0            # budget only (ε = 0.05 of range 10 is 0.5)
    r = check_examples(space, bad, x, epsilon=0.05)
    expected = ["bounds", "immutable", "integer", "categorical", "relations", "budget"]
    for i, kind in enumerate(expected):
        flagged = [k for k, v in r.failures.items() if v[i]]
        assert kind in flagged, (i, kind, flagged)
    assert not r.valid.any()
    assert check_examples(space, x, x, epsilon=0.05).valid.all()


def test_from_data_bounds_integers_names_and_groups():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, 100).astype("float32")
    cont = rng.normal(size=100).astype("float32")
    onehot = np.eye(3, dtype="float32")[rng.integers(0, 3, 100)]
    x = np.column_stack([counts, cont, onehot])
    space = FeatureSpace.from_data(x, immutable=["cont"], categorical=[["t", "u", "i"]],
                                   names=["counts", "cont", "t", "u", "i"])
    assert space.integer.tolist() == [True, False, False, False, False]
    assert space.mutable.tolist() == [True, False, True, True, True]
    assert space.categorical == [[2, 3, 4]]
    assert space.lower[0] == counts.min() and space.upper[1] == pytest.approx(cont.max())
    assert check_examples(space, x).valid.all()


def test_serialization_round_trip_keeps_relations_working():
    space = tabular.flows_space()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(space))
    assert restored.get_config() == space.get_config()
    x, _ = tabular.make_flows(50)
    assert check_examples(restored, x).valid.all()
    x[0, 4] += 1000.0  # total bytes no longer packets x size
    r = check_examples(restored, x)
    assert r.failures["relations"][0] and r.valid[1:].all()
    attack = ka.attacks.CAPGD(0.1, domain=space, steps=3)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(attack))
    assert clone.get_config() == attack.get_config()


def test_lambda_relation_cannot_be_serialized_and_says_why():
    space = FeatureSpace(lower=[0, 0], upper=[1, 1], relations=[lambda x: x[:, 0] - x[:, 1]])
    with pytest.raises(ValueError, match="lambda"):
        space.get_config()


def test_datasets_satisfy_their_spaces():
    (xtr, ytr), (xte, yte) = tabular.load_breast_cancer()
    assert xtr.shape[1] == 30 and set(np.unique(ytr)) == {0, 1} and len(xtr) + len(xte) == 569
    assert check_examples(tabular.breast_cancer_space(), np.concatenate([xtr, xte])).valid.all()
    x, y = tabular.make_flows(500, seed=3)
    space = tabular.flows_space()
    assert check_examples(space, x).valid.all()
    assert 0.25 < y.mean() < 0.55
    assert np.all(x[:, space.integer] == np.round(x[:, space.integer]))
    x2, _ = tabular.make_flows(500, seed=3)
    np.testing.assert_array_equal(x, x2)


# ------------------------------------------------------------------ bad input
def _bad_relation(x):
    return tf.reduce_sum(x)  # a scalar, not one value per record


BAD_INPUTS = [
    ("reversed bounds", lambda: FeatureSpace(lower=[0, 5], upper=[1, 3], names=["a", "b"]),
     r"Bounds reversed for feature 'b' \(index 1\): `lower`\[1\] = 5 > `upper`\[1\] = 3"),
    ("mask of the wrong length", lambda: FeatureSpace(lower=[0, 0], upper=[1, 1], mutable=[True]),
     r"`mutable` has 1 entries but the FeatureSpace has 2 features"),
    ("relation of the wrong shape", lambda: FeatureSpace(lower=[0, 0], upper=[1, 1], relations=[_bad_relation]),
     r"`relations`\[0\] \('_bad_relation'\) must return one value per record.*returned shape \(\)"),
    ("one-hot group outside [0, 1]", lambda: FeatureSpace(lower=[0, 0], upper=[1, 0.5], categorical=[[0, 1]]),
     r"One-hot feature index 1 \(`categorical`\[0\]\) must allow 0 and 1"),
    ("data outside the space",
     lambda: _toy_space().check(np.array([[1, 2, 0, 1, 0, 0, 2], [1, 9, 0, 1, 0, 0, 2]], "float32")),
     r"feature 'b' \(index 1\) of example 1 is 9 > `upper`\[1\] = 5"),
    ("group that is not one-hot",
     lambda: _toy_space().check(np.array([[1, 2, 0, 1, 1, 0, 2]], "float32")),
     r"breaks one-hot group `categorical`\[0\] \('p' \(index 3\), 'q' \(index 4\), 'r' \(index 5\)\) in example 0"),
    ("relation violated by the data",
     lambda: _toy_space().check(np.array([[1, 2, 0, 1, 0, 0, 3]], "float32")),
     r"violates relation `relations`\[0\] 'x6 = 2 x0'"),
    ("shape mismatch with the attack's domain",
     lambda: ka.attacks.CAPGD(0.1, domain=_toy_space())(keras.Sequential([keras.layers.Dense(2)]),
                                                      np.zeros((2, 5), "float32"), np.zeros(2, "int64")),
     r"`x` must have shape \(batch, 7\) to match the attack's `domain` \(7 features\), got records of 5 features"),
    ("integer feature without an integer", lambda: FeatureSpace(lower=[0.2, 0], upper=[0.8, 1], names=["flags", "b"],
                                                                 integer=[True, False]),
     r"Integer feature 'flags' \(index 0\) \(`integer`\) has bounds \[0.2, 0.8\], which hold no integer"),
    ("infinite point bounds", lambda: FeatureSpace(lower=[np.inf], upper=[np.inf]),
     r"Feature index 0 has `lower`\[0\] = `upper`\[0\] = inf: no finite value"),
    ("string column of a DataFrame", lambda: FeatureSpace.from_data(_frame({"proto": ["tcp", "udp"], "n": [1, 2]})),
     r"`x` column 'proto' has dtype \S+: a FeatureSpace holds numbers\. One-hot encode"),
    ("not a FeatureSpace", lambda: ka.attacks.Evolutionary(0.1, domain=(0, 1)),
     r"`domain` must be a keras_adv.domains.FeatureSpace"),
    # a string once became an all-True mask ('auto' marked every feature integer)
    ("integer='auto' in the constructor", lambda: FeatureSpace(lower=[0, 0], upper=[1, 100], integer="auto"),
     r"`integer` must be a bool mask.*got 'auto'.*FeatureSpace.from_data"),
    ("a string mask", lambda: FeatureSpace(lower=[0, 0], upper=[1, 1], mutable="none"),
     r"`mutable` must be a bool mask.*got 'none'"),
    ("names as a mask", lambda: FeatureSpace(lower=[0, 0], upper=[1, 1], names=["a", "b"], mutable=["a", "b"]),
     r"`mutable` must be a bool mask"),
    ("indices as a mask", lambda: FeatureSpace(lower=[0, 0], upper=[1, 1], integer=[0, 2]),
     r"`integer` must be a bool mask.*not a list of feature indices"),
    # the repair rewrote a frozen feature: every attacked record fell back to the clean one
    ("derived feature declared immutable", lambda: _toy_space(mutable=[True, True, False, True, True, True, False]),
     r"`relations`\[0\] \('x6 = 2 x0'\): its repair writes feature 'd' \(index 6\) \(`outputs`\), which "
     r"`mutable` declares immutable"),
    # NumPy works eagerly but not in tf.function, where attacks and AdversarialModel.fit run relations
    ("relation written with NumPy", lambda: FeatureSpace(lower=[0, 0], upper=[1, 1], relations=[_numpy_relation]),
     r"`relations`\[0\] \('_numpy_relation'\) works eagerly but fails in a TensorFlow graph"
     r".*NotImplementedError.*not NumPy"),
    ("repair written with NumPy", lambda: FeatureSpace(lower=[0, 0], upper=[1, 1], relations=[
        Relation(_tf_relation, kind="==", repair=_numpy_repair, outputs=[1])]),
     r"`relations`\[0\] \('_tf_relation'\): its `repair` works eagerly but fails in a TensorFlow graph"),
    ("repair of the wrong shape", lambda: FeatureSpace(lower=[0, 0], upper=[1, 1], relations=[
        Relation(_tf_relation, kind="==", repair=_tf_relation, outputs=[1])]),
     r"its `repair` must return records of the input's shape \(batch, 2\).*returned shape \(2,\)"),
    # LessEqual once took indices only ("invalid literal for int()"), and an index out of range was a GatherV2 error
    ("LessEqual index out of range", lambda: FeatureSpace(lower=[0, 0], upper=[1, 1], relations=[LessEqual([0], [5])]),
     r"`relations`\[0\] .*LessEqual `right` holds index 5, outside 0..1 \(the FeatureSpace has 2 features\)"),
    ("LessEqual unknown name", lambda: FeatureSpace(lower=[0, 0], upper=[1, 1], names=["a", "b"],
                                                     relations=[LessEqual(["a"], ["c"])]),
     r"LessEqual `right` names feature 'c', which is not a feature name \(`names` are \['a', 'b'\]\)"),
    ("LessEqual name without names",
     lambda: FeatureSpace(lower=[0, 0], upper=[1, 1], relations=[LessEqual(["a"], [1])]),
     r"LessEqual `left` names feature 'a'.*the FeatureSpace has no `names`"),
    ("LessEqual of something else", lambda: LessEqual([0.5], [1]),
     r"LessEqual: `left` must list feature indices or names"),
]


def _frame(columns):
    import pandas as pd  # a test dependency (setup.cfg): tables often arrive as DataFrames

    return pd.DataFrame(columns)


def _numpy_relation(x):
    x = np.asarray(x)
    return x[:, 1] - x[:, 0]


def _tf_relation(x):
    return x[:, 1] - 2.0 * x[:, 0]


def _numpy_repair(x):
    x = np.array(x)
    x[:, 1] = 2.0 * x[:, 0]
    return x


def test_less_equal_takes_feature_names_resolved_by_the_space():
    space = FeatureSpace(lower=[0, 0, 0], upper=[10, 10, 10], names=["syn", "packets", "other"],
                         relations=[LessEqual(left=["syn"], right=["packets"]), LessEqual(left=[2], right=["syn"])])
    assert (space.relations[0].fn.left, space.relations[0].fn.right) == ([0], [1])
    assert (space.relations[1].fn.left, space.relations[1].fn.right) == ([2], [0])
    x = np.array([[1, 2, 0], [3, 2, 0], [1, 2, 5]], "float32")
    np.testing.assert_array_equal(check_examples(space, x).valid, [True, False, False])
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(space))
    np.testing.assert_array_equal(check_examples(restored, x).valid, [True, False, False])
    with pytest.raises(ValueError, match=r"LessEqual names features \['syn'\]: give it to a FeatureSpace with `names`"):
        LessEqual(left=["syn"], right=[1])(tf.constant(x))


@pytest.mark.parametrize("case,build,message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_a_clear_error(case, build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_subnormal_bounds_are_refused():
    # TensorFlow flushes subnormal float32 numbers to zero on CPU, so a bound of 1e-45 would not hold
    # (an attack clipped a record to 0 < lower: found by tests/reliability/test_fuzz.py).
    with pytest.raises(ValueError, match=r"`lower`\[1\].*1.4013e-45 is a subnormal float32 number"):
        FeatureSpace(lower=[0.0, 1e-45], upper=[1.0, 3.0])
    with pytest.raises(ValueError, match=r"`upper`\[0\].*subnormal"):
        FeatureSpace(lower=[-1.0], upper=[-1e-40])
    FeatureSpace(lower=[0.0, np.finfo(np.float32).tiny], upper=[1.0, 3.0])  # the smallest normal number is fine


# ------------------------------------------------------------------ monotone features
def _monotone_space(**kw):
    # 0: packets, integer, may only increase; 1: bytes, may only increase; 2: idle time, may only decrease;
    # 3: free; 4: immutable and increase-only (it simply stays fixed)
    args = dict(lower=[0, 0, 0, 0, 0], upper=[100, 1e4, 50, 10, 10], integer=[True, False, False, False, False],
                mutable=[True, True, True, True, False], names=["packets", "bytes", "idle", "free", "port"],
                monotone={"packets": "increase", "bytes": "increase", "idle": "decrease", 4: 1})
    args.update(kw)
    return FeatureSpace(**args)


def test_monotone_accepts_a_direction_vector_or_a_dict_of_names():
    space = _monotone_space()
    assert space.monotone.tolist() == [1, 1, -1, 0, 1]
    same = _monotone_space(monotone=[1, "increase", "decrease", 0, 1])
    assert same.monotone.tolist() == space.monotone.tolist()
    assert _monotone_space(monotone=None).monotone.tolist() == [0] * 5
    assert _toy_space().monotone.tolist() == [0] * 7  # default: no direction anywhere
    x = np.column_stack([np.arange(10.0), np.arange(10.0), np.ones(10), np.ones(10)])
    fd = FeatureSpace.from_data(x, names=["a", "b", "c", "d"], monotone={"b": "increase", "c": "decrease"})
    assert fd.monotone.tolist() == [0, 1, -1, 0]


@pytest.mark.parametrize("kw, match", [
    (dict(monotone=[1, 2, 0, 0, 0]), r"`monotone\[1\]` must be 'increase'"),
    (dict(monotone=[1, 0]), "`monotone` has 2 entries"),
    (dict(monotone=[True, False, False, False, False]), "`monotone` gives a direction per feature.*not a bool mask"),
    (dict(monotone={"packets": "up"}), r"`monotone\['packets'\]` must be 'increase'"),
    (dict(monotone={"nope": "increase"}), r"`monotone\['nope'\]` names feature 'nope'"),
    (dict(monotone={9: "increase"}), r"`monotone\[9\]` holds index 9, outside 0..4"),
    (dict(monotone=[[1, 0, 0, 0, 0]]), "`monotone`"),
])
def test_monotone_bad_arguments_are_clear_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        _monotone_space(**kw)


def test_monotone_refuses_one_hot_and_derived_features():
    with pytest.raises(ValueError, match=r"`monotone` gives a direction to feature 'q' \(index 4\), which is in one-hot"):
        _toy_space(monotone={"q": "increase"})
    with pytest.raises(ValueError, match=r"`monotone` gives a direction to feature 'd' \(index 6\), which a relation's"):
        _toy_space(monotone={"d": "increase"})
    # the inputs of a derived feature, and immutable features, may have a direction
    assert _toy_space(monotone={"a": "increase", "c": "decrease"}).monotone.tolist() == [1, 0, -1, 0, 0, 0, 0]


def test_monotone_repair_projection_and_random_start_keep_the_direction():
    space = _monotone_space()
    x = np.array([[10.0, 500.0, 20.0, 5.0, 3.0]] * 64, np.float32)
    wrong = x + np.array([-3.6, -100.0, 7.0, 1.0, 1.0], np.float32)
    out = space.repair(tf.constant(wrong), tf.constant(x)).numpy()
    np.testing.assert_array_equal(out[0], [10.0, 500.0, 20.0, 6.0, 3.0])
    for norm in (ka.norms.Linf(), ka.norms.L2()):
        rng = np.random.default_rng(0)
        far = x + rng.normal(size=x.shape).astype(np.float32) * space.scale
        proj = space.budget_project(tf.constant(x), tf.constant(far), 0.1, norm).numpy()
        start = space.random_start(tf.constant(x), 0.1, norm, tf.constant([1, 2])).numpy()
        for z in (proj, start):
            r = check_examples(space, z, x, epsilon=0.1, norm=norm.name)
            assert r.valid.all(), r.messages
            assert space.is_valid(tf.constant(z), tf.constant(x), 0.1, norm).numpy().all()
        # random starts are drawn on the allowed side, not piled up on the clean value
        assert (start[:, 1] > x[:, 1]).mean() > 0.9 and (start[:, 2] < x[:, 2]).mean() > 0.9


def test_checker_rejects_a_monotone_feature_moved_the_wrong_way():
    space = _monotone_space()
    x = np.array([[10.0, 500.0, 20.0, 5.0, 3.0]] * 3, np.float32)
    bad = x.copy()
    bad[1, 1] = 499.0   # bytes decreased
    bad[2, 2] = 21.0    # idle increased
    r = check_examples(space, bad, x)
    assert r.failures["monotone"].tolist() == [False, True, True]
    assert r.valid.tolist() == [True, False, False]
    assert r.messages == ["`x` decreases feature 'bytes' (index 1) of example 1 (500 -> 499), which `monotone` "
                          "says may only increase."]
    assert space.is_valid(tf.constant(bad), tf.constant(x)).numpy().tolist() == [True, False, False]
    assert check_examples(space, bad).valid.all()  # without the clean records there is no direction to check
    ok = x + np.array([2.0, 1.0, -1.0, -1.0, 0.0], np.float32)
    assert check_examples(space, ok, x).valid.all()


def test_monotone_survives_serialization_and_model_saving(tmp_path):
    space = _monotone_space()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(space))
    assert restored.get_config() == space.get_config()
    assert restored.monotone.tolist() == [1, 1, -1, 0, 1]
    attack = ka.attacks.CAPGD(0.1, domain=space, steps=2)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(attack))
    assert clone.domain.monotone.tolist() == [1, 1, -1, 0, 1] and clone.get_config() == attack.get_config()
    base = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    model = ka.AdversarialModel(base, attack=attack)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(np.array([[10.0, 500.0, 20.0, 5.0, 3.0]] * 4, np.float32), np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    path = str(tmp_path / "monotone.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.attack.domain.monotone.tolist() == [1, 1, -1, 0, 1]


def test_a_dataframe_is_read_by_its_columns_or_refused():
    # The audit's intrusion table: the same columns in another order once let CAPGD move the immutable
    # `dst_port` of 32 of 50 records without a word (records are read by position).
    rng = np.random.default_rng(0)
    table = _frame({"dst_port": rng.integers(0, 1024, 64).astype("float32"),
                    "src_bytes": rng.integers(0, 1024, 64).astype("float32"),
                    "duration": rng.uniform(0, 10, 64).astype("float32")})
    space = FeatureSpace.from_data(table, immutable=["dst_port"])
    y = (table.src_bytes.values > 500).astype("int64")
    base = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    attack = ka.attacks.CAPGD(epsilon=0.1, domain=space, steps=3, seed=0)
    shuffled = table[["src_bytes", "dst_port", "duration"]]
    message = r"`{}` is a DataFrame whose columns are not the FeatureSpace's names in order \(the same columns"
    with pytest.raises(ValueError, match=message.format("data") + r".*x\[space\.names\]"):
        attack.generate(base, shuffled, y, verbose=0)
    with pytest.raises(ValueError, match=message.format("data")):
        ka.evaluate_robustness(base, shuffled, y, attacks={"capgd": attack}, verbose=0)
    with pytest.raises(ValueError, match=message.format("x")):
        attack(base, shuffled, y)
    model = ka.AdversarialModel(base, attack=attack)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.copy() for w in base.get_weights()]
    with pytest.raises(ValueError, match=message.format("x")):
        model.fit(shuffled, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"missing \['duration'\], not in the space \['proto'\]"):
        attack.generate(base, table.rename(columns={"duration": "proto"}), y, verbose=0)
    for a, b in zip(base.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    # in the space's order, a DataFrame is the array it holds
    np.testing.assert_array_equal(attack.generate(base, shuffled[space.names], y, verbose=0),
                                  attack.generate(base, table.values, y, verbose=0))
    # an integer table gets the table's advice (cast), not the images' (/ 255)
    with pytest.raises(TypeError, match=r"`x` must hold floating-point records.*astype\('float32'\)"):
        model.fit(table.values.astype("int64"), y, epochs=1, verbose=0)
