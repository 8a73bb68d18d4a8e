"""Property-based fuzzing (hypothesis) of every exported attack and norm.

For random input shapes, batch sizes, ε, bounds, seeds and input dtypes, every
attack's result has the input's shape and dtype, is finite, lies inside the
bounds and within ε of the input in the attack's norm; every norm's projection
lands in the ball and its random start inside it.

Profiles: the default run draws `KERAS_ADV_FUZZ_EXAMPLES` examples per attack
(default 5, eager calls on a random linear classifier); the slow test
`test_attack_guarantees_long_profile` draws 20× more (run it with `-m slow`,
or set the variable).
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_adv as ka
from keras_adv import norms
from keras_adv.domains import FeatureSpace, LessEqual, Relation
from keras_adv.evaluation import planted

# The fuzz draws budgets beyond the width of the domain on purpose (the guarantees must hold there
# too); the attack's warning that such a budget measures nothing is expected, not a finding.
pytestmark = pytest.mark.filterwarnings("ignore:.*is larger than the width of the input domain:UserWarning")

EXAMPLES = int(os.environ.get("KERAS_ADV_FUZZ_EXAMPLES", "5"))
SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
                database=None)


class Linear:
    """A random linear classifier on the flattened input (float32 inside, any float dtype outside)."""

    def __init__(self, features, classes, seed):
        rng = np.random.default_rng(seed)
        self.w = tf.constant(rng.normal(size=(features, classes)).astype("float32"))
        self.b = tf.constant(rng.normal(size=(classes,)).astype("float32"))

    def __call__(self, x, training=False):
        flat = tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1])
        return tf.matmul(flat, self.w) + self.b


def _make(name, eps, norm, bounds, seed):
    common = dict(bounds=bounds, seed=seed)
    if name == "FGSM":
        return ka.attacks.FGSM(epsilon=eps, norm=norm, random_start=bool(seed % 2), **common)
    if name == "PGD":
        return ka.attacks.PGD(epsilon=eps, norm=norm, steps=3, restarts=1 + seed % 2, **common)
    if name == "APGD":
        return ka.attacks.APGD(epsilon=eps, norm=norm, steps=3, loss=("ce", "dlr")[seed % 2], **common)
    if name == "Square":
        return ka.attacks.Square(epsilon=eps, norm=norm, queries=8, **common)
    if name == "FAB":
        return ka.attacks.FAB(epsilon=eps, norm=norm, steps=3, n_target_classes=2, **common)
    if name == "AutoAttack":
        return ka.attacks.AutoAttack(epsilon=eps, norm=norm, steps=2, queries=4, n_target_classes=2, **common)
    if name == "CarliniWagnerL2":
        return ka.attacks.CarliniWagnerL2(epsilon=eps if seed % 2 else None, steps=3, binary_search_steps=2,
                                          **common)
    if name == "SpatialTransformation":
        return ka.attacks.SpatialTransformation(max_rotation=20.0, max_translation=1.0, n_rotations=3,
                                                n_translations=3, **common)
    if name == "VirtualAdversarial":
        return ka.attacks.VirtualAdversarial(epsilon=eps, norm=norm, **common)
    if name == "EOT":  # the wrapper keeps its inner attack's guarantees
        return ka.attacks.EOT(ka.attacks.PGD(epsilon=eps, norm=norm, steps=2, **common), samples=2)
    if name == "BPDA":  # PGD through the straight-through gradient of the model's rounding layer
        return ka.attacks.BPDA(ka.attacks.PGD(epsilon=eps, norm=norm, steps=2, restarts=1 + seed % 2, **common),
                               substitutes=["quantize"])
    raise AssertionError(name)


def _model(name, input_shape, classes, seed):
    """The fuzzed classifier: `Linear`, or for BPDA a Keras model whose first layer rounds (no gradient)."""
    linear = Linear(int(np.prod(input_shape)), classes, seed)
    if name != "BPDA":
        return linear
    inputs = keras.Input(input_shape)
    quantized = planted.Quantize(levels=2 + seed % 7, name="quantize")(inputs)
    dense = keras.layers.Dense(classes)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(quantized)))
    dense.set_weights([linear.w.numpy(), linear.b.numpy()])
    return model


ATTACKS = ["FGSM", "PGD", "APGD", "Square", "FAB", "AutoAttack", "CarliniWagnerL2", "SpatialTransformation",
           "VirtualAdversarial", "EOT", "BPDA"]
NORMS = {"FGSM": ["linf", "l2", "l1"], "PGD": ["linf", "l2", "l1"], "APGD": ["linf", "l2"],
         "Square": ["linf", "l2"], "FAB": ["linf", "l2"], "AutoAttack": ["linf", "l2"],
         "CarliniWagnerL2": ["l2"], "SpatialTransformation": ["linf"],
         "VirtualAdversarial": ["l2"], "EOT": ["linf", "l2", "l1"], "BPDA": ["linf", "l2", "l1"]}


# Attacks on other inputs, fuzzed below with their own strategies and guarantees: records in a random
# `FeatureSpace` (checked by `_check_records`, numpy code of this file) and integer token ids (HotFlip).
CONSTRAINED = ["CAPGD", "Evolutionary", "ConstrainedAutoAttack", "ConstrainedAttack"]
TOKENS = ["HotFlip"]
# Exported attacks that cannot be fuzzed, each with the reason (none left).
NOT_YET_FUZZED = ()


def test_every_exported_attack_is_fuzzed():
    exported = {name for name in ka.attacks.__all__
                if isinstance(getattr(ka.attacks, name), type) and issubclass(getattr(ka.attacks, name), ka.attacks.Attack)
                and name not in ("Attack", "GradientAttack") + NOT_YET_FUZZED}
    fuzzed = set(ATTACKS) | set(CONSTRAINED) | set(TOKENS)
    assert exported <= fuzzed, exported - fuzzed


@st.composite
def cases(draw, name):
    images = name in ("SpatialTransformation", "Square", "AutoAttack") or draw(st.booleans())  # Square: images only
    batch = draw(st.integers(1, 4))
    if images:
        shape = (batch, draw(st.integers(4, 7)), draw(st.integers(4, 7)), draw(st.sampled_from([1, 3])))
    else:
        shape = (batch, draw(st.integers(1, 12)))
    lo = draw(st.floats(-2.0, 1.0, allow_nan=False))
    width = draw(st.floats(0.1, 4.0, allow_nan=False))
    bounds = (lo, lo + width)
    norm = draw(st.sampled_from(NORMS[name]))
    eps = draw(st.floats(0.0, 1.5 * width, allow_nan=False)) * (1.0 if norm == "linf" else 3.0)
    seed = draw(st.integers(0, 2**16))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    # DLR losses (APGD-DLR, AutoAttack) need >= 4 classes and say so with a clear error.
    classes = draw(st.integers(4 if name in ("APGD", "AutoAttack") else 2, 6))
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, lo + width, size=shape).astype(dtype)
    if draw(st.booleans()):  # some inputs exactly on the bounds
        x.reshape(-1)[:: 3] = bounds[int(seed % 2)]
    y = rng.integers(0, classes, size=batch).astype("int32")
    return dict(x=x, y=y, bounds=bounds, norm=norm, eps=eps, seed=seed, classes=classes)


def _check_attack(name, case, moved=None):
    x, bounds, norm_name = case["x"], case["bounds"], case["norm"]
    model = _model(name, x.shape[1:], case["classes"], case["seed"])
    attack = _make(name, case["eps"], norm_name, bounds, case["seed"])
    x_adv = attack(model, x, case["y"])
    assert x_adv.shape == x.shape
    assert x_adv.dtype == tf.as_dtype(x.dtype)
    x_adv = x_adv.numpy().astype("float64")
    assert np.isfinite(x_adv).all()
    tol = 1e-5 * max(1.0, abs(bounds[0]), abs(bounds[1]))
    assert x_adv.min() >= bounds[0] - tol and x_adv.max() <= bounds[1] + tol
    if attack.epsilon is not None:
        delta = (x_adv - x.astype("float64")).reshape(len(x), -1)
        size = {"linf": np.abs(delta).max(1), "l2": np.sqrt((delta ** 2).sum(1)),
                "l1": np.abs(delta).sum(1)}[norm_name]
        assert (size <= attack.epsilon * (1 + 1e-5) + tol).all(), (size, attack.epsilon)
    if moved is not None:
        moved.append(int((x_adv != x).reshape(len(x), -1).any(1).sum()))


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_guarantees(name):
    moved = []

    @settings(max_examples=EXAMPLES, **SETTINGS)
    @given(cases(name))
    def run(case):
        _check_attack(name, case, moved)

    run()
    assert len(moved) == EXAMPLES and sum(moved) > 0, moved  # (BPDA: the rounding layer has no gradient itself)


@pytest.mark.slow
@pytest.mark.parametrize("name", ATTACKS)
def test_attack_guarantees_long_profile(name):
    @settings(max_examples=20 * EXAMPLES, **SETTINGS)
    @given(cases(name))
    def run(case):
        _check_attack(name, case)

    run()


@pytest.mark.parametrize("norm_name", ["linf", "l2", "l1"])
@settings(max_examples=4 * EXAMPLES, **SETTINGS)
@given(shape=st.lists(st.integers(1, 6), min_size=2, max_size=4), eps=st.floats(0.0, 5.0),
       scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_norm_guarantees(norm_name, shape, eps, scale, seed):
    norm = norms.get(norm_name)
    rng = np.random.default_rng(seed)
    delta = tf.constant((scale * rng.normal(size=shape)).astype("float32"))
    projected = norm.project(delta, eps).numpy()
    assert projected.shape == tuple(shape) and np.isfinite(projected).all()
    size = norm.norm(tf.constant(projected)).numpy()
    # float32 rounding of inputs of magnitude `scale` (the projection subtracts a threshold from them)
    assert (size <= eps * (1 + 1e-5) + 1e-6 * max(1.0, scale)).all(), (size, eps)
    start = norm.random_start(tf.constant(shape), eps, tf.constant([seed, 1]), tf.float32).numpy()
    assert start.shape == tuple(shape) and np.isfinite(start).all()
    assert (norm.norm(tf.constant(start)).numpy() <= eps * (1 + 1e-5) + 1e-6).all()
    direction = norm.normalize(delta).numpy()
    assert np.isfinite(direction).all()
    assert np.isfinite(norm.normalize(tf.zeros(shape)).numpy()).all()  # a zero gradient gives no NaN


# ----------------------------------------------------------------------------------------------------------------
# Constrained (tabular) attacks: random FeatureSpaces, checked by an independent numpy checker.
#
# The space is drawn as a plain numpy *spec* (bounds, masks, one-hot groups, relations); the FeatureSpace is
# built from it, and `_check_records` checks the results against the spec itself, without the library's
# repair, projection, `is_valid` or `check_examples`.

CONSTRAINED_EXAMPLES = {"CAPGD": 2 * EXAMPLES, "Evolutionary": 2 * EXAMPLES, "ConstrainedAutoAttack": EXAMPLES,
                        "ConstrainedAttack": 4 * EXAMPLES}  # no model gradient: cheap
DERIVED_TOLERANCE = 1e-4


class _SumOf:
    """The derived feature `x[c] = x[a] + x[b]`: a scale-free equality and its repair (plain TF ops)."""

    def __init__(self, a, b, c, n):
        self.a, self.b, self.c, self.n = a, b, c, n

    def relation(self, x):
        x = tf.convert_to_tensor(x)
        a, b, c = x[:, self.a], x[:, self.b], x[:, self.c]
        return (c - (a + b)) / (1.0 + tf.abs(a) + tf.abs(b))

    def repair(self, x):
        x = tf.convert_to_tensor(x)
        onehot = tf.one_hot(self.c, self.n, dtype=x.dtype)
        return x * (1.0 - onehot) + (x[:, self.a] + x[:, self.b])[:, None] * onehot


class _RandomProposals(ka.attacks.ConstrainedAttack):
    """The base class on its own: `perturb` proposes garbage (far outside the bounds, fractional integers,
    broken one-hot groups, changed immutable features); whatever it proposes, the returned records must
    satisfy the space (the base class's budget projection, repair and last-resort fallback)."""

    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        wide = 10.0 * tf.constant(np.where(np.isfinite(self.domain.scale), self.domain.scale, 1.0), x.dtype)
        return x + tf.random.stateless_normal(tf.shape(x), seed, dtype=x.dtype) * wide


@st.composite
def tables(draw):
    """A random feature space (as a numpy spec and a FeatureSpace) and valid records in it."""
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    numeric = draw(st.integers(1, 4))
    lower, upper, integer, mutable = [], [], [], []
    for _ in range(numeric):
        lo = draw(st.floats(-50.0, 50.0))
        lo = 0.0 if abs(lo) < 1e-6 else lo  # no subnormal bounds (the FeatureSpace refuses them) nor sums of them
        width = draw(st.sampled_from([3.0, 80.0, 0.5, 0.0]))  # 0: a constant feature
        hi = lo + width
        is_int = draw(st.booleans())
        if is_int:
            lo, hi = np.floor(lo), np.ceil(hi)
        side = draw(st.sampled_from(["closed", "closed", "no upper", "no lower"]))  # open sides: scale 1
        lower.append(-np.inf if side == "no lower" else lo)
        upper.append(np.inf if side == "no upper" else hi)
        integer.append(is_int)
        mutable.append(draw(st.sampled_from([True, False])))
    relations = []
    pair = None
    if numeric >= 1 and draw(st.booleans()):  # a `<=` relation: x[a] <= x[b], b a twin of a (same bounds/type)
        a = draw(st.integers(0, numeric - 1))
        lower.append(lower[a]), upper.append(upper[a]), integer.append(integer[a])
        mutable.append(draw(st.sampled_from([True, False])))
        pair = (a, len(lower) - 1)
        relations.append(("<=", pair))
    derived = None
    if len(lower) >= 2 and draw(st.booleans()):  # an `==` relation with a repair: x[c] = x[a] + x[b]
        a, b = draw(st.lists(st.integers(0, len(lower) - 1), min_size=2, max_size=2, unique=True))
        lower.append(lower[a] + lower[b]), upper.append(upper[a] + upper[b]), integer.append(False)
        mutable.append(True)  # a repair's output follows its inputs (the FeatureSpace refuses an immutable one)
        derived = (a, b, len(lower) - 1)
    groups = []
    for size in draw(st.lists(st.integers(2, 3), max_size=2)):
        grp = list(range(len(lower), len(lower) + size))
        group_mutable = draw(st.sampled_from([True, False]))
        for _ in grp:
            lower.append(0.0), upper.append(1.0), integer.append(False), mutable.append(group_mutable)
        groups.append(grp)
    n = len(lower)
    # monotone features (may only increase / decrease from the clean record): any but one-hot and derived ones.
    # Drawn from their own generator, so that the other draws (and the records) are those of spaces without them.
    monotone = np.zeros(n, np.int64)
    mono_rng = np.random.default_rng([seed, 1])
    if mono_rng.random() < 0.5:
        free = [j for j in range(n) if not any(j in g for g in groups) and (derived is None or j != derived[2])]
        monotone[free] = mono_rng.choice([1, -1, 0], size=len(free))
    lower, upper = np.array(lower, np.float32), np.array(upper, np.float32)
    spec = dict(lower=lower, upper=upper, integer=np.array(integer), mutable=np.array(mutable), groups=groups,
                pair=pair, derived=derived, n=n, monotone=monotone)
    width = upper.astype(np.float64) - lower
    custom_scale = draw(st.booleans())
    spec["scale"] = (rng.uniform(0.5, 20.0, n).astype(np.float32) if custom_scale
                     else np.where(np.isfinite(width) & (width > 0), width, 1.0).astype(np.float32))

    # valid records
    batch = draw(st.integers(1, 4))
    lo_f = np.where(np.isfinite(lower), lower, np.where(np.isfinite(upper), upper - 20.0, -10.0))
    hi_f = np.where(np.isfinite(upper), upper, lo_f + 20.0)
    x = rng.uniform(lo_f, hi_f, size=(batch, n))
    on_bound = rng.random((batch, n)) < 0.2  # some values exactly on a (finite) bound
    x = np.where(on_bound & np.isfinite(lower), lower, x)
    x[:, spec["integer"]] = np.clip(np.round(x[:, spec["integer"]]), lower[spec["integer"]],
                                    upper[spec["integer"]])
    if pair is not None:
        a, b = pair
        x[:, a], x[:, b] = np.minimum(x[:, a], x[:, b]), np.maximum(x[:, a], x[:, b])
    for grp in groups:
        x[:, grp] = np.eye(len(grp))[rng.integers(0, len(grp), batch)]
    dtype = draw(st.sampled_from(["float32", "float64"]))
    x = x.astype(dtype)
    if derived is not None:  # (clipped: the rounded sum may leave its float32-rounded bounds by an ulp)
        a, b, c = derived
        x[:, c] = np.clip(x[:, a] + x[:, b], lower[c], upper[c])

    rels = []
    if pair is not None:
        rels.append(Relation(LessEqual(left=[pair[0]], right=[pair[1]]), kind="<=", tolerance=0.0))
    if derived is not None:
        fn = _SumOf(*derived, n)
        rels.append(Relation(fn.relation, kind="==", tolerance=DERIVED_TOLERANCE, repair=fn.repair,
                             outputs=[derived[2]]))
    directions = ({int(j): ("increase" if monotone[j] > 0 else "decrease") for j in np.flatnonzero(monotone)}
                  if seed % 2 else monotone.tolist())  # both accepted forms
    space = FeatureSpace(lower=lower, upper=upper, mutable=spec["mutable"], integer=spec["integer"],
                         categorical=groups, relations=rels, scale=spec["scale"] if custom_scale else None,
                         monotone=directions if monotone.any() else None)
    classes = draw(st.integers(2, 4))
    return dict(spec=spec, space=space, x=x, classes=classes,
                eps=draw(st.sampled_from([0.3, 0.05, 1.0, 5.0, 0.0])), norm=draw(st.sampled_from(["linf", "l2"])),
                targeted=draw(st.booleans()), seed=seed)


def _check_records(spec, x_adv, x, epsilon, norm):
    """Independent check (numpy, from the spec) that every record of `x_adv` satisfies the space."""
    x_adv, x = np.asarray(x_adv, np.float64), np.asarray(x, np.float64)
    assert np.isfinite(x_adv).all()
    lower, upper = spec["lower"].astype(np.float64), spec["upper"].astype(np.float64)
    assert (x_adv >= lower).all() and (x_adv <= upper).all(), (x_adv, lower, upper)
    frozen = ~spec["mutable"]
    np.testing.assert_array_equal(x_adv[:, frozen], x[:, frozen])  # immutable features unchanged
    direction = spec.get("monotone", np.zeros(x.shape[1]))
    wrong = (x_adv - x) * direction < 0
    assert not wrong.any(), (np.argwhere(wrong), x_adv, x, direction)  # monotone features only their way
    ints = x_adv[:, spec["integer"]]
    np.testing.assert_array_equal(ints, np.round(ints))  # integer features integral
    for grp in spec["groups"]:
        v = x_adv[:, grp]
        assert np.isin(v, [0.0, 1.0]).all() and (v.sum(1) == 1).all(), v  # one-hot
    if spec["pair"] is not None:
        a, b = spec["pair"]
        assert (x_adv[:, a] <= x_adv[:, b]).all()  # tolerance 0
    budgeted = spec["mutable"].copy()
    for grp in spec["groups"]:
        budgeted[grp] = False
    if spec["derived"] is not None:
        a, b, c = spec["derived"]
        residual = (x_adv[:, c] - (x_adv[:, a] + x_adv[:, b])) / (1 + np.abs(x_adv[:, a]) + np.abs(x_adv[:, b]))
        assert (np.abs(residual) <= DERIVED_TOLERANCE).all(), residual
        budgeted[c] = False  # derived features follow the others, outside the budget
    if epsilon == 0:  # no budget, no change at all (not even a free one-hot switch or a derived feature)
        np.testing.assert_array_equal(x_adv, x)
    d = ((x_adv - x) / spec["scale"].astype(np.float64))[:, budgeted]
    size = np.abs(d).max(1, initial=0.0) if norm == "linf" else np.sqrt((d ** 2).sum(1))
    assert (size <= epsilon * (1 + 1e-5) + 1e-6).all(), (size, epsilon)


def _make_constrained(name, case):
    kw = dict(domain=case["space"], norm=case["norm"], seed=case["seed"])
    if name == "CAPGD":
        return ka.attacks.CAPGD(case["eps"], steps=3, restarts=1 + case["seed"] % 2, targeted=case["targeted"], **kw)
    if name == "Evolutionary":
        return ka.attacks.Evolutionary(case["eps"], generations=3, population=4, targeted=case["targeted"], **kw)
    if name == "ConstrainedAutoAttack":
        return ka.attacks.ConstrainedAutoAttack(case["eps"], steps=2, restarts=1, generations=2, population=3, **kw)
    if name == "ConstrainedAttack":
        return _RandomProposals(epsilon=case["eps"], **kw)
    raise AssertionError(name)


def _check_constrained(name, case, moved):
    x = case["x"]
    model = Linear(x.shape[1], case["classes"], case["seed"])
    attack = _make_constrained(name, case)
    # labels the model gets right (or, targeted, a class it does not predict): attacks leave records that are
    # already misclassified alone, and such records would test nothing
    pred = model(x).numpy().argmax(1)
    y = (pred + 1) % case["classes"] if attack.targeted else pred
    x_adv = attack(model, x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == tf.as_dtype(x.dtype)
    x_adv = x_adv.numpy()
    _check_records(case["spec"], x_adv, x, case["eps"], case["norm"])
    moved.append(int((x_adv != x).any(1).sum()))


def _run_constrained(name, examples):
    moved = []

    @settings(max_examples=examples, **SETTINGS)
    @given(tables())
    def run(case):
        _check_constrained(name, case, moved)

    run()
    assert len(moved) == examples
    assert sum(moved) > 0, "no record ever changed: the guarantees would hold trivially"


@pytest.mark.parametrize("name", CONSTRAINED)
def test_constrained_attack_guarantees(name):
    _run_constrained(name, CONSTRAINED_EXAMPLES[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", CONSTRAINED)
def test_constrained_attack_guarantees_long_profile(name):
    _run_constrained(name, 20 * CONSTRAINED_EXAMPLES[name])


def test_the_record_checker_rejects_each_kind_of_violation():
    """`_check_records` is the judge of the fuzz tests above: each violation must make it fail."""
    spec = dict(lower=np.array([0, 0, 0, 0, 0, 0], np.float32), upper=np.array([10, 10, 10, 20, 1, 1], np.float32),
                integer=np.array([True, False, False, False, False, False]),
                mutable=np.array([True, True, False, True, True, True]), groups=[[4, 5]], pair=(0, 1),
                derived=(0, 1, 3), n=6, scale=np.full(6, 10.0, np.float32))
    x = np.array([[2.0, 3.0, 1.0, 5.0, 1.0, 0.0]])
    _check_records(spec, x, x, 0.0, "linf")
    ok = x + [[1.0, 0.5, 0.0, 1.5, 0.0, 0.0]]  # within ε = 0.1 (scaled), relations hold
    _check_records(spec, ok, x, 0.1, "linf")
    for j, value in [(0, 2.5), (1, 11.0), (2, 2.0), (4, 0.0), (4, 0.5), (1, 1.0), (3, 6.0), (1, np.nan)]:
        bad = ok.copy()
        bad[0, j] = value
        with pytest.raises(AssertionError):
            _check_records(spec, bad, x, 0.1, "linf")
    with pytest.raises(AssertionError):  # over the budget (ε = 0.05 < 0.1)
        _check_records(spec, ok, x, 0.05, "linf")
    # feature 0 may only increase: ok raises it (2 -> 3); lowering it (to 1, derived 3 = 1 + 3.5) breaks only that
    lowered = ok.copy()
    lowered[0, [0, 3]] = [1.0, 4.5]
    _check_records(spec, lowered, x, 0.1, "linf")
    increasing = dict(spec, monotone=np.array([1, 0, 0, 0, 0, 0]))
    _check_records(increasing, ok, x, 0.1, "linf")
    with pytest.raises(AssertionError):
        _check_records(increasing, lowered, x, 0.1, "linf")
    switched = x.copy()
    switched[0, 4:6] = [0.0, 1.0]  # another category: outside the budget, but not free at ε = 0
    _check_records(spec, switched, x, 0.1, "linf")
    with pytest.raises(AssertionError):
        _check_records(spec, switched, x, 0.0, "linf")


# ----------------------------------------------------------------------------------------------------------------
# HotFlip: integer token ids in, integer token ids out.

HOTFLIP_EXAMPLES = 4 * EXAMPLES  # no tracing of a long loop: cheap


@st.composite
def texts(draw):
    vocab, length, batch = draw(st.integers(4, 12)), draw(st.integers(2, 7)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(batch, length))
    lengths = rng.integers(1, length + 1, size=batch)
    ids[np.arange(length)[None, :] >= lengths[:, None]] = 0  # trailing padding
    mask_zero = draw(st.booleans())
    protected = sorted(set(draw(st.lists(st.integers(0, vocab - 1), max_size=3))) | ({0} if not mask_zero else set()))
    allowed = draw(st.one_of(st.none(), st.lists(st.integers(0, vocab - 1), min_size=1, max_size=vocab)))
    candidates = None
    if draw(st.booleans()):
        candidates = {t: sorted(set(rng.integers(0, vocab, size=rng.integers(1, 4)).tolist())) for t in range(vocab)}
    return dict(ids=ids.astype(draw(st.sampled_from(["int32", "int64"]))), vocab=vocab, seed=seed, mask_zero=mask_zero,
                classes=draw(st.integers(2, 3)), k=draw(st.integers(1, 3)), epsilon=draw(st.sampled_from([None, 1, 2])),
                protected=protected, allowed=allowed, candidates=candidates, top_k=draw(st.integers(1, 8)),
                targeted=draw(st.booleans()))


def _text_model(case):
    keras.utils.set_random_seed(case["seed"])
    length = case["ids"].shape[1]
    return keras.Sequential([keras.Input((length,), dtype="int32"),
                             keras.layers.Embedding(case["vocab"], 3, mask_zero=case["mask_zero"]),
                             keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(case["classes"])])


def _check_hotflip(case, moved):
    ids = case["ids"]
    y = np.random.default_rng(case["seed"]).integers(0, case["classes"], len(ids))
    attack = ka.attacks.HotFlip(max_substitutions=case["k"], protected_tokens=case["protected"],
                                allowed_tokens=case["allowed"], candidates=case["candidates"], top_k=case["top_k"],
                                targeted=case["targeted"], seed=case["seed"])
    out = attack(_text_model(case), ids, y, epsilon=case["epsilon"])
    assert out.shape == ids.shape and out.dtype == tf.as_dtype(ids.dtype)
    out = out.numpy()
    changed = out != ids
    k = case["k"] if case["epsilon"] is None else case["epsilon"]
    assert (changed.sum(1) <= k).all(), (changed.sum(1), k)
    np.testing.assert_array_equal(out[ids == 0], 0)  # padding untouched
    assert ((out >= 0) & (out < case["vocab"])).all()
    old, new = ids[changed], out[changed]
    assert not np.isin(old, case["protected"]).any() and not np.isin(new, case["protected"]).any()
    if case["allowed"] is not None:
        assert np.isin(new, case["allowed"]).all(), (new, case["allowed"])
    if case["candidates"] is not None:
        assert all(b in case["candidates"][a] for a, b in zip(old, new)), (old, new)
    moved.append(int(changed.any(1).sum()))


def _run_hotflip(examples):
    moved = []

    @settings(max_examples=examples, **SETTINGS)
    @given(texts())
    def run(case):
        _check_hotflip(case, moved)

    run()
    assert len(moved) == examples and sum(moved) > 0


def test_hotflip_guarantees():
    _run_hotflip(HOTFLIP_EXAMPLES)


@pytest.mark.slow
def test_hotflip_guarantees_long_profile():
    _run_hotflip(20 * HOTFLIP_EXAMPLES)
