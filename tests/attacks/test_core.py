"""The attack core (issue 9): one input-gradient helper, one restart loop, capabilities as
attributes, domains, serializable norms, the non-finite fallback and per-call ε checks."""

import logging
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from keras_adv.attacks import NoInputGradientError
from tests.attacks.conftest import run_graph
from tests.conftest import linear_model, run_in_fresh_process, subclassed_dense

W = np.array([[1.0, -1.0], [2.0, 0.5], [-0.5, 1.5], [0.3, 0.3]], "float32")


@pytest.fixture
def model():
    return linear_model(W, np.zeros(2), (4,))


def _rounding_model(shape=(4,)):
    inputs = keras.Input(shape)
    h = keras.layers.Flatten()(inputs)
    rounded = keras.layers.Lambda(lambda t: tf.stop_gradient(tf.round(t)))(h)
    return keras.Model(inputs, keras.layers.Dense(3)(rounded))


# ------------------------------------------------------------------ gradient helper
def test_value_and_gradient_is_exact_on_a_linear_function():
    x = tf.constant([[1.0, 2.0], [3.0, -1.0]])
    (value, extra), grad = ka.attacks.value_and_gradient(lambda t: (tf.reduce_sum(t * [2.0, -3.0], 1), 7), x)
    np.testing.assert_allclose(value.numpy(), [-4.0, 9.0])
    np.testing.assert_allclose(grad.numpy(), [[2.0, -3.0], [2.0, -3.0]])
    assert extra == 7


@pytest.mark.parametrize("make", [
    lambda: ka.attacks.PGD(epsilon=0.1, steps=2),
    lambda: ka.attacks.FGSM(epsilon=0.1),
    lambda: ka.attacks.APGD(epsilon=0.1, steps=2),
    lambda: ka.attacks.FAB(epsilon=0.1, steps=2, n_target_classes=1),
    lambda: ka.attacks.CarliniWagnerL2(steps=2, binary_search_steps=1),
])
def test_every_gradient_attack_raises_the_one_error_eagerly_and_in_graph(make):
    model = _rounding_model()
    x = np.full((2, 4), 0.5, "float32")
    y = np.array([0, 1])
    with pytest.raises(NoInputGradientError, match=r"no gradient with respect to its input"):
        make()(model, x, y)
    # Inside a user's tf.function the error is raised while tracing (TF may wrap its type).
    with pytest.raises(Exception, match=r"no gradient with respect to its input"):
        run_graph(make(), model, x, y)


def test_spatial_first_order_raises_it_with_its_own_hint():
    inputs = keras.Input((6, 6, 1))
    rounded = keras.layers.Lambda(lambda t: tf.stop_gradient(tf.round(t)))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(rounded)))
    attack = ka.attacks.SpatialTransformation(method="first_order", steps=2)
    with pytest.raises(NoInputGradientError, match=r"method='grid' or method='random'"):
        attack(model, np.full((2, 6, 6, 1), 0.5, "float32"), [0, 1])


def test_no_input_gradient_error_is_a_value_error_and_exported():
    assert issubclass(NoInputGradientError, ValueError)
    assert "NoInputGradientError" in ka.attacks.__all__


def test_diagnostics_report_no_gradient_through_the_helper():
    from keras_adv.evaluation.diagnostics import check_gradients

    out = check_gradients(_rounding_model(), np.full((3, 4), 0.5, "float32"), np.array([0, 1, 2]))
    assert [w.check for w in out] == ["no_gradient"]


def test_evaluator_reports_masking_instead_of_crashing():
    model = _rounding_model((4, 4, 1))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (12, 4, 4, 1)).astype("float32")
    y = rng.integers(0, 3, 12)
    report = ka.evaluate_robustness(
        model, x, y, verbose=0,
        attacks={"pgd": ka.attacks.PGD(epsilon=0.3, steps=2, seed=0),
                 "square": ka.attacks.Square(epsilon=0.3, queries=20, seed=0)},
    )
    assert list(report.not_applicable) == ["pgd"]
    assert "no_gradient" in [w.check for w in report.warnings]
    assert list(report.results) == ["square"]
    square_acc = report.robust_accuracy("square", 0.3)
    assert 0.0 <= square_acc <= report.clean_accuracy
    assert "pgd" in str(report) and "n/a" in str(report)
    assert report.to_dict()["not_applicable"] == {"pgd": "the model has no input gradient"}
    with pytest.raises(KeyError, match="not applicable"):
        report.robust_accuracy("pgd", 0.3)


# ------------------------------------------------------------------ restarts
def test_strongest_of_keeps_success_first_then_higher_objective():
    attack = ka.attacks.PGD(epsilon=0.1)
    cands = tf.constant([[[0.0], [0.0], [0.0]], [[1.0], [1.0], [1.0]], [[2.0], [2.0], [2.0]]])
    objs = tf.constant([[0.5, 0.1, 0.9], [0.7, 0.2, 0.1], [0.6, 0.3, 0.2]])
    oks = tf.constant([[False, True, False], [False, False, False], [True, True, False]])
    best, obj, ok = attack.strongest_of(3, lambda i: (cands[i], objs[i], oks[i]))
    # ex0: only candidate 2 succeeds; ex1: 0 and 2 succeed, 2 has the higher objective; ex2: none, 0 highest.
    np.testing.assert_array_equal(best.numpy().ravel(), [2.0, 2.0, 0.0])
    np.testing.assert_allclose(obj.numpy(), [0.6, 0.3, 0.9])
    np.testing.assert_array_equal(ok.numpy(), [True, True, False])
    best, _, _ = attack.strongest_of(3, lambda i: (cands[i], objs[i], oks[i]), first_success=True)
    np.testing.assert_array_equal(best.numpy().ravel(), [2.0, 0.0, 0.0])  # ex1 keeps its first success


def test_pgd_restarts_equal_the_stronger_of_single_runs(model):
    x = np.random.default_rng(0).uniform(0.2, 0.8, (6, 4)).astype("float32")
    y = np.array([0, 1, 0, 1, 1, 0])
    seed = tf.constant([3, 4])
    multi = ka.attacks.PGD(epsilon=0.2, steps=3, restarts=3)(model, x, y, seed=seed).numpy()
    single = ka.attacks.PGD(epsilon=0.2, steps=3)
    seeds = tf.random.experimental.stateless_split(seed, 3)
    runs = [single(model, x, y, seed=seeds[r]) for r in range(3)]
    logits = [model(r).numpy() for r in runs]
    ce = [-tf.nn.log_softmax(l).numpy()[np.arange(6), y] for l in logits]
    ok = [l.argmax(1) != y for l in logits]
    expected = []
    for i in range(6):
        best = 0
        for r in range(1, 3):
            if (ok[r][i] and not ok[best][i]) or (ok[r][i] == ok[best][i] and ce[r][i] > ce[best][i]):
                best = r
        expected.append(runs[best].numpy()[i])
    np.testing.assert_allclose(multi, np.stack(expected), atol=1e-6)


def test_square_restarts_go_through_the_base_class():
    assert ka.attacks.Square.independent_restarts and ka.attacks.APGD.independent_restarts
    assert not ka.attacks.FAB.independent_restarts  # FAB chains restarts from its best point


# ------------------------------------------------------------------ capabilities
def test_capabilities_are_class_attributes():
    A = ka.attacks
    assert A.Square.gradient_free and not A.PGD.gradient_free and not A.AutoAttack.gradient_free
    assert A.CarliniWagnerL2.minimal_perturbation and A.FAB.minimal_perturbation
    assert not A.PGD.minimal_perturbation
    assert A.CarliniWagnerL2.supported_norms == ("l2",)
    assert A.APGD.supported_norms == ("linf", "l2") == A.Square.supported_norms
    assert A.PGD.supported_norms is None  # any Norm
    assert A.Square.requires_images and A.SpatialTransformation.requires_images


@pytest.mark.parametrize("make,err,match", [
    (lambda: ka.attacks.FGSM(0.1, steps=5), TypeError, r"FGSM .* no `steps`.*PGD"),
    (lambda: ka.attacks.FGSM(0.1, restarts=2), TypeError, r"no `restarts`"),
    (lambda: ka.attacks.CarliniWagnerL2(norm="linf"), ValueError, r"CarliniWagnerL2 supports norm 'l2', got 'linf'"),
    (lambda: ka.attacks.APGD(0.1, norm="l1"), ValueError, r"APGD supports norm 'linf' or 'l2', got 'l1'"),
    (lambda: ka.attacks.Square(0.1, norm="l1"), ValueError, r"Square supports norm"),
    (lambda: ka.attacks.AutoAttack(0.1, norm="l1"), ValueError, r"AutoAttack supports norm"),
])
def test_unsupported_arguments_raise(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_diagnostics_read_the_gradient_free_attribute():
    from keras_adv.evaluation.diagnostics import _is_gradient_free

    class MyQueries(ka.attacks.Attack):
        gradient_free = True

    assert _is_gradient_free(MyQueries(epsilon=0.1))
    assert _is_gradient_free(ka.attacks.Square(0.1)) and not _is_gradient_free(ka.attacks.PGD(0.1))


def test_no_detection_by_class_name_left_in_the_package():
    import pathlib
    import re

    root = pathlib.Path(ka.__file__).parent
    hits = [f"{p}:{i}" for p in root.rglob("*.py") for i, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(r"__name__ (==|in|not in) \(?[\"'][A-Z]|getattr\(attacks(_lib)?, \"[A-Z]", line)]
    assert hits == []


# ------------------------------------------------------------------ lower image module
@pytest.mark.slow
def test_no_import_cycle_between_attacks_and_layers():
    # The attack module first (it used to import layers/, which imports attacks/).
    out = run_in_fresh_process("""
        import keras_adv.attacks.spatial as S
        import keras_adv.ops.image as ops, keras_adv.layers.spatial_transform as L
        print(L.transform_images is ops.transform_images, S.transform_images is ops.transform_images)
    """)
    assert out.split() == ["True", "True"]


def test_spatial_module_does_not_import_layers():
    import ast
    import pathlib

    for mod in ("attacks/spatial.py", "ops/image.py"):
        tree = ast.parse((pathlib.Path(ka.__file__).parent / mod).read_text())
        imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not any(m and m.startswith("keras_adv.layers") for m in imported), mod


# ------------------------------------------------------------------ validation module
def test_validation_helpers_keep_the_messages():
    from keras_adv.utils.validation import check_bounds, check_number

    assert check_number("steps", 3.0, minimum=1, integer=True) == 3
    assert check_number("eps", np.float32(0.25), minimum=0.0) == 0.25
    for kw, match in [(dict(value=-1, minimum=0), r"`x` must be >= 0"), (dict(value=0, minimum=0, strict=True), r"`x` must be > 0"),
                      (dict(value=2.5, integer=True), r"`x` must be an integer"), (dict(value=np.inf), r"`x` must be finite"),
                      (dict(value=None), r"`x` is required"), (dict(value=5, maximum=4), r"`x` must be <= 4")]:
        with pytest.raises(ValueError, match=match):
            check_number("x", **kw)
    with pytest.raises(TypeError, match=r"`x` must be a number, got bool"):
        check_number("x", True)
    assert check_bounds((0, 255)) == (0.0, 255.0)
    with pytest.raises(ValueError, match=r"`bounds` must satisfy min < max"):
        check_bounds((1, 1))


def test_the_private_check_number_is_gone():
    import pathlib

    root = pathlib.Path(ka.__file__).parent
    assert not [p for p in root.rglob("*.py") if "_check_number" in p.read_text()]


# ------------------------------------------------------------------ norms
@pytest.mark.parametrize("norm", [ka.norms.Linf(), ka.norms.L2(), ka.norms.L1(sparsity=0.9)])
def test_norms_round_trip_through_keras_serialization(norm):
    config = keras.saving.serialize_keras_object(norm)
    back = keras.saving.deserialize_keras_object(config)
    assert back == norm and type(back) is type(norm)
    assert ka.norms.get(config) == norm


def test_norm_dicts_by_name_deserialize_properly():
    assert ka.norms.get({"name": "linf"}) == ka.norms.Linf()
    assert ka.attacks.PGD(0.1, norm={"name": "linf"}).norm == ka.norms.Linf()
    assert ka.attacks.PGD(0.1, norm={"name": "l2"}).norm == ka.norms.L2()
    assert ka.norms.get({"name": "l1", "sparsity": 0.5}) == ka.norms.L1(0.5)
    with pytest.raises(ValueError, match=r"Unknown `norm`"):
        ka.norms.get({"name": "l7"})
    with pytest.raises(ValueError, match=r"Unknown `norm`"):
        ka.norms.get({"class_name": "NoSuchNorm", "module": None, "config": {}, "registered_name": "x>NoSuchNorm"})
    with pytest.raises(ValueError, match=r"does not take the arguments \['p'\]"):
        ka.norms.get({"name": "linf", "p": 3})


def test_attack_config_serializes_the_norm_object():
    attack = ka.attacks.PGD(0.1, norm=ka.norms.L1(sparsity=0.8))
    config = attack.get_config()
    assert config["norm"]["config"] == {"sparsity": 0.8}
    back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(attack))
    assert back.norm == ka.norms.L1(0.8)


_CUSTOM_NORM = '''
import keras, tensorflow as tf
import keras_adv as ka

@keras.saving.register_keras_serializable(package="my_norms")
class ScaledLinf(ka.norms.Linf):
    name = "scaled_linf"
    def __init__(self, scale=1.0):
        self.scale = float(scale)
    def project(self, delta, epsilon):
        return super().project(delta, self.scale * tf.cast(epsilon, delta.dtype))
    def get_config(self):
        return {"scale": self.scale}
'''


@pytest.mark.slow
def test_custom_registered_norm_survives_save_and_load_in_a_fresh_process(tmp_path):
    (tmp_path / "my_norms.py").write_text(_CUSTOM_NORM)
    path = str(tmp_path / "m.keras")
    run_in_fresh_process(f"""
        import sys; sys.path.insert(0, {str(tmp_path)!r})
        import keras, numpy as np, keras_adv as ka
        from my_norms import ScaledLinf
        base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model = ka.AdversarialModel(base, attack=ka.attacks.PGD(0.1, steps=2, norm=ScaledLinf(0.5)))
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(np.full((4, 4), 0.5, "float32"), np.array([0, 1, 0, 1]), verbose=0)
        model.save({path!r})
    """)
    out = run_in_fresh_process(f"""
        import sys; sys.path.insert(0, {str(tmp_path)!r})
        import keras, numpy as np, keras_adv as ka
        import my_norms
        model = keras.models.load_model({path!r})
        norm = model.attack.norm
        x = np.full((2, 4), 0.5, "float32")
        x_adv = model.attack(model.base_model, x, [0, 1])
        print(type(norm).__name__, norm.scale, float(np.abs(x_adv - x).max()) <= 0.05 + 1e-6)
    """)
    assert out.split() == ["ScaledLinf", "0.5", "True"]


# ------------------------------------------------------------------ domains
def test_scalar_bounds_are_a_box_domain_and_configs_are_unchanged():
    attack = ka.attacks.PGD(0.1, bounds=(-1.0, 1.0))
    assert attack.domain == ka.domains.Box(-1.0, 1.0)
    assert attack.bounds == (-1.0, 1.0)
    config = attack.get_config()
    assert config["bounds"] == [-1.0, 1.0] and "domain" not in config
    assert ka.attacks.PGD.from_config(config).domain == attack.domain
    with pytest.raises(ValueError, match=r"either `bounds` or `domain`"):
        ka.attacks.PGD(0.1, bounds=(0, 1), domain=ka.domains.Box(0, 1))


def test_per_feature_box_with_infinite_sides(model):
    lo = np.array([0.0, -np.inf, 0.2, 0.0], "float32")
    hi = np.array([1.0, np.inf, 0.6, 0.0], "float32")  # feature 3 is frozen at 0
    domain = ka.domains.Box(lo, hi)
    attack = ka.attacks.PGD(0.5, steps=5, domain=domain, seed=1)
    x = np.array([[0.5, 3.0, 0.4, 0.0], [0.9, -7.0, 0.2, 0.0]], "float32")
    x_adv = attack(model, x, [0, 1]).numpy()
    assert np.all(x_adv >= lo) and np.all(x_adv <= hi)
    assert np.abs(x_adv - x).max() <= 0.5 + 1e-6
    assert np.all(x_adv[:, 3] == 0.0)
    assert np.abs(x_adv[:, 1] - x[:, 1]).max() > 0.1  # the unbounded feature moved
    np.testing.assert_array_equal(domain.contains(x_adv).numpy(), [True, True])
    # Round trip (±inf survive JSON).
    import json

    config = json.loads(json.dumps(keras.saving.serialize_keras_object(attack)))
    back = keras.saving.deserialize_keras_object(config)
    assert back.domain == domain and "bounds" not in back.get_config()
    np.testing.assert_array_equal(back(model, x, [0, 1], seed=tf.constant([1, 2])).numpy(),
                                  attack(model, x, [0, 1], seed=tf.constant([1, 2])).numpy())


def test_box_errors_name_the_feature(model):
    with pytest.raises(ValueError, match=r"feature 1 has lower=2.0 > upper=1.0"):
        ka.domains.Box([0.0, 2.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"must not contain NaN"):
        ka.domains.Box([0.0, np.nan], 1.0)
    domain = ka.domains.Box(np.zeros(4), np.array([1, 1, 0.5, 1]))
    attack = ka.attacks.FGSM(0.1, domain=domain)
    x = np.full((2, 4), 0.7, "float32")
    with pytest.raises(ValueError, match=r"feature 2 must lie in \[0.0, 0.5\].*max=0.7"):
        attack(model, x, [0, 1])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`x` must lie inside"):
        run_graph(attack, model, x, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"does not broadcast to one example"):
        ka.attacks.FGSM(0.1, domain=ka.domains.Box(np.zeros(3), np.ones(3)))(model, np.zeros((2, 4), "float32"), [0, 1])


@pytest.mark.parametrize("norm,epsilon", [("linf", 0.3), ("l2", 3.0)])
def test_fab_and_autoattack_keep_a_per_channel_box(norm, epsilon):
    # FAB projected flat examples onto the box's own (3,) shape: "Incompatible shapes: [3] vs. [16,768]"
    # on RGB images (vision audit); AutoAttack crashed whenever a point was still robust at FAB-T.
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, 8, 8, 3)).astype("float32")
    x[..., 2] *= 0.5  # channel 2 lives in [0, 0.5]
    y = rng.integers(0, 4, 8)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)])
    y = np.argmax(model.predict(x, verbose=0), -1)  # every point starts correct: FAB has work to do
    box = ka.domains.Box(np.zeros(3, "float32"), np.array([1, 1, 0.5], "float32"))
    for attack in (ka.attacks.FAB(epsilon=epsilon, norm=norm, steps=5, n_target_classes=2, domain=box, seed=0),
                   ka.attacks.AutoAttack(epsilon, norm=norm, attacks=["fab-t"], steps=5, n_target_classes=2,
                                         domain=box, seed=0)):
        x_adv = attack(model, x, y).numpy()
        assert x_adv.min() >= 0.0 and x_adv[..., :2].max() <= 1.0 and x_adv[..., 2].max() <= 0.5
        distance = (np.abs(x_adv - x).reshape(8, -1).max(1) if norm == "linf" else
                    np.linalg.norm((x_adv - x).reshape(8, -1), axis=1))
        assert distance.max() <= epsilon + 1e-5
        assert (np.argmax(model.predict(x_adv, verbose=0), -1) != y).any()  # it found something


def test_autoattack_members_share_the_domain():
    domain = ka.domains.Box(-1.0, 2.0)
    aa = ka.attacks.AutoAttack(0.1, domain=domain, attacks=["apgd-ce", "square"])
    assert all(m.domain == domain for m in aa.attacks)


# ------------------------------------------------------------------ reliability
def test_model_returning_nan_gives_the_clean_input_not_nan():
    inputs = keras.Input((4,))
    out = keras.layers.Lambda(lambda t: t[:, :2] * np.nan)(inputs)
    model = keras.Model(inputs, out)
    x = np.full((3, 4), 0.5, "float32")
    for attack in (ka.attacks.PGD(0.1, steps=2), ka.attacks.FGSM(0.1), ka.attacks.PGD(0.5, norm="l2", steps=2)):
        x_adv = attack(model, x, [0, 1, 0]).numpy()
        np.testing.assert_array_equal(x_adv, x)
        x_adv = run_graph(attack, model, x, np.array([0, 1, 0]))
        np.testing.assert_array_equal(x_adv, x)


@pytest.mark.parametrize("eps", [np.float32(-0.1), tf.constant(-0.1), np.array(-0.1), tf.Variable(-0.1)])
def test_negative_per_call_epsilon_is_refused_eagerly(model, eps):
    with pytest.raises(ValueError, match=r"`epsilon` must be >= 0"):
        ka.attacks.FGSM(0.1)(model, np.full((2, 4), 0.5, "float32"), [0, 1], epsilon=eps)


def test_negative_per_call_epsilon_is_refused_in_graph(model):
    attack = ka.attacks.FGSM(0.1)
    fn = tf.function(lambda x, y, e: attack(model, x, y, epsilon=e, seed=tf.constant([1, 1])))
    x = tf.fill((2, 4), 0.5)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`epsilon` must be a finite number >= 0"):
        fn(x, tf.constant([0, 1]), tf.constant(-0.1))
    assert fn(x, tf.constant([0, 1]), tf.constant(0.1)).shape == (2, 4)


def test_epsilon_wider_than_the_bounds_warns():
    with pytest.warns(UserWarning, match=r"larger than the width of the input domain"):
        ka.attacks.PGD(8.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ka.attacks.PGD(8.0, bounds=(0, 255))
        ka.attacks.PGD(3.0, norm="l2")  # an L2 budget above the width is normal


def test_eager_calls_reuse_one_traced_function_per_model():
    model = linear_model(W, np.zeros(2), (4,))
    attack = ka.attacks.PGD(0.1, steps=3, seed=0)
    x = np.full((2, 4), 0.5, "float32")
    a = attack(model, x, [0, 1], seed=tf.constant([1, 2])).numpy()
    fn = attack._traced_function(model, None)
    attack(model, x, [0, 1], epsilon=0.2, seed=tf.constant([3, 4]))
    attack(model, x, [1, 0], epsilon=tf.constant(0.05), seed=tf.constant([5, 6]))
    assert attack._traced_function(model, None) is fn
    assert fn.experimental_get_tracing_count() == 1
    # Without `seed=`, the attack's own seed stream is drawn inside the graph: one more trace, then reused.
    b = attack(model, x, [0, 1]).numpy()
    c = attack(model, x, [0, 1], epsilon=0.2).numpy()
    assert fn.experimental_get_tracing_count() == 2
    assert not np.array_equal(b, attack(model, x, [0, 1]).numpy())  # a fresh seed per call
    assert c.shape == b.shape
    np.testing.assert_allclose(a, run_graph(attack, model, x, np.array([0, 1])), atol=1e-7)
    del model, fn
    import gc

    gc.collect()
    assert len(attack._traced_fns) == 0  # the cache does not keep models alive


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_many_attacks_each_tracing_once_do_not_log_the_retracing_warning():
    """Each attack traces its own function once; TensorFlow must not pool them into one
    "N out of the last N calls triggered tf.function retracing" warning (AutoAttack's members
    and epsilon sweeps hit it). A function that really retraces on every call still warns."""
    from keras_adv.attacks._tracing import _compile, call_function

    model = linear_model(W, np.zeros(2), (4,))
    x = np.full((2, 4), 0.5, "float32")
    handler = _Records()
    tf.get_logger().addHandler(handler)
    try:
        for steps in range(1, 8):
            ka.attacks.PGD(0.1, steps=steps, seed=0)(model, x, [0, 1])
        models = [linear_model(W, np.zeros(2), (4,)) for _ in range(7)]
        for m in models:  # the evaluation's one inference function per model (a transfer matrix)
            call_function(m)(x)
        assert not [m for m in handler.messages if "retracing" in m]
        really_retracing = _compile(lambda k: tf.constant(k) * 2)
        for k in range(6):  # a new Python value each call: a trace each call
            assert int(really_retracing(k)) == 2 * k
        assert really_retracing.experimental_get_tracing_count() == 6
        assert [m for m in handler.messages if "triggered tf.function retracing" in m]
    finally:
        tf.get_logger().removeHandler(handler)


def test_free_adversarial_training_uses_the_one_helper_for_its_input_gradient():
    model = ka.FreeAdversarialModel(_rounding_model(), attack=ka.attacks.FGSM(0.1), replays=2)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(Exception, match=r"FreeAdversarialModel: the model has no gradient with respect to its input"):
        model.fit(np.full((4, 4), 0.5, "float32"), np.array([0, 1, 2, 0]), verbose=0)


# ------------------------------------------------------------------ per-call overhead
def test_the_eager_seed_stream_is_drawn_in_the_graph_and_equals_explicit_draws(model):
    """Without `seed=`, eager calls draw the attack's own stream inside the traced function:
    the very seeds `draw_seed` gives eagerly from a generator seeded alike."""
    from keras_adv.attacks.attack import draw_seed

    x = np.full((2, 4), 0.5, "float32")
    y = np.array([0, 1])
    streamed = ka.attacks.PGD(0.1, steps=2, seed=7)
    got = [streamed(model, x, y).numpy() for _ in range(3)]
    gen = keras.random.SeedGenerator(7)
    explicit = ka.attacks.PGD(0.1, steps=2, seed=7)
    want = [explicit(model, x, y, seed=draw_seed(gen)).numpy() for _ in range(3)]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(got[0], got[1])


def test_batch_seed_equals_tensorflow_fold_in():
    """`batch_seed` caches the seed's word; it must stay `stateless_fold_in(pair, index)` cast to int32."""
    from keras_adv.attacks import batch_seed

    for seed in (0, 7, 2**31 - 2, 2**40 + 5):
        pair = tf.constant([(seed // 2**31) % 2**31, seed % 2**31], tf.int64)
        for index in (0, 1, 99, np.int64(17), 2**31 + 3, 2**33 - 1):
            want = tf.cast(tf.random.experimental.stateless_fold_in(pair, tf.constant(index, tf.int64)), tf.int32)
            np.testing.assert_array_equal(batch_seed(seed, index).numpy(), want.numpy())
        np.testing.assert_array_equal(batch_seed(seed, tf.constant(5)).numpy(), batch_seed(seed, 5).numpy())


def _head(activation=None, layer=None, units=3):
    inputs = keras.Input((4,))
    h = keras.layers.Dense(5, activation="relu")(inputs)
    if layer is not None:
        out = layer(keras.layers.Dense(units)(h))
    else:
        out = keras.layers.Dense(units, activation=activation)(h)
    return keras.Model(inputs, out)


def test_infer_from_logits_reads_the_last_layer_and_is_none_when_unsure():
    infer = ka.losses.infer_from_logits
    assert infer(_head()) is True
    assert infer(_head("softmax")) is False
    assert infer(_head(layer=keras.layers.Softmax())) is False
    assert infer(_head("sigmoid", units=1)) is False
    assert infer(_head("linear", units=1)) is True
    assert infer(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])) is True
    assert infer(_head("sigmoid")) is None  # multi-label sigmoid: not a distribution
    assert infer(_head("relu")) is None
    assert infer(_head(layer=keras.layers.Activation("softmax"))) is False
    assert infer(keras.Sequential([keras.layers.Dense(3)])) is None  # unbuilt

    sub = subclassed_dense(3)
    sub(np.zeros((1, 4), "float32"))
    assert infer(sub) is None
    assert infer(lambda x: x) is None
    # a compiled subclassed model: its loss says what it outputs
    sub.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert infer(sub) is True
    sub.compile(loss="sparse_categorical_crossentropy")
    assert infer(sub) is False


def test_a_compiled_subclassed_logit_scorer_is_read_as_logits():
    # The tables audit's fraud scorer: one logit of 0.2 for every record (class 1). Guessed per batch, outputs
    # all in [0, 1] read as probabilities gave class 0 and clean accuracy 0.0 instead of 1.0.
    scorer = subclassed_dense(1)
    x = np.random.default_rng(0).uniform(0, 1, (32, 4)).astype("float32")
    scorer(x[:1])
    scorer.set_weights([np.zeros((4, 1), "float32"), np.full(1, 0.2, "float32")])
    with pytest.warns(UserWarning, match="cannot tell whether the model's single output is a logit"):
        ka.evaluate_robustness(scorer, x, np.ones(32, "int64"), attacks={"fgsm": ka.attacks.FGSM(0.1)}, verbose=0,
                               diagnose=False)
    scorer.compile(loss=keras.losses.BinaryCrossentropy(from_logits=True))
    report = ka.evaluate_robustness(scorer, x, np.ones(32, "int64"), attacks={"fgsm": ka.attacks.FGSM(0.1)},
                                    verbose=0, diagnose=False)
    assert report.clean_accuracy == 1.0


@pytest.mark.parametrize("activation", [None, "softmax"])
def test_the_inferred_loss_gives_the_very_examples_of_per_batch_detection(activation):
    """Reading logits/probabilities from the model changes the graph's cost, never the result."""
    keras.utils.set_random_seed(0)
    model = _head(activation)
    x = np.random.default_rng(0).uniform(0, 1, (16, 4)).astype("float32")
    y = np.arange(16) % 3
    seed = tf.constant([3, 4])
    inferred = ka.attacks.PGD(0.2, steps=5)(model, x, y, seed=seed).numpy()
    detected = ka.attacks.PGD(0.2, steps=5, loss=ka.losses.crossentropy)(model, x, y, seed=seed).numpy()
    np.testing.assert_array_equal(inferred, detected)
    assert np.abs(inferred - x).max() > 0.1  # the attack moved
