"""Checks of training / evaluation data, run before any weight changes.

`AdversarialModel.fit` / `evaluate` call `guarded_call`, which

1. checks in-memory data (numpy arrays, lists, eager tensors) *once, before
   the first step*: dtype, emptiness, lengths, finiteness, the attack's
   bounds, labels against the compiled loss and the number of classes,
   sample weights. A bad value anywhere (also in the last batch) raises a
   plain `ValueError`/`TypeError` naming the argument, and no step runs;
2. for streamed data (`tf.data`, generators), which cannot be read twice,
   the train/test steps check every batch in the graph (`batch_checks`,
   plus the attack's own finite-and-in-bounds check) *before* the weight
   update of that batch. When a check fails, the update of that batch is
   not applied, `fit` puts the weights and the optimizer state back to their
   values when `fit` started, and raises a plain `ValueError` with the
   check's message (instead of a 30-line graph traceback). So no bad batch,
   early or late, leaves a partial update behind.

Messages raised from the graph carry the marker `MARKER`, which is how
`guarded_call` recognises them.
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
import weakref
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

__all__ = ["MARKER", "guarded_call", "batch_checks", "check_arrays", "check_wrapper_attacks", "check_token_ids",
           "token_ids_message"]

MARKER = "[keras_adv input check]"

# Error texts of TensorFlow ops that a bad batch triggers before our own checks can.
_TF_LABEL_ERROR = re.compile(r"Received a label value of (-?\d+) which is outside the valid range of \[0, (\d+)\)")


# ----------------------------------------------------------------- helpers
def _loss_kind(loss) -> Optional[str]:
    """'sparse', 'categorical' or None (unknown) for a compiled loss."""
    if loss is None:
        return None
    if isinstance(loss, str):
        name = loss.lower()
    elif isinstance(loss, keras.losses.Loss):
        name = type(loss).__name__.lower()
        fn = getattr(loss, "fn", None)
        if fn is not None:
            name += " " + getattr(fn, "__name__", "").lower()
    else:
        name = getattr(loss, "__name__", "").lower()
    if "sparse" in name and ("categorical" in name or "crossentropy" in name):
        return "sparse"
    if "categorical" in name and "crossentropy" in name:
        return "categorical"
    if "binary" in name and "crossentropy" in name:
        return "binary"
    return None


def num_classes(model) -> Optional[int]:
    """The number of classes of the base model's output, when static."""
    base = getattr(model, "base_model", model)
    try:
        shape = base.outputs[0].shape
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    if shape is None or len(shape) < 2 or shape[-1] is None:
        return None
    return int(shape[-1])


def input_shape(model):
    """The base model's static input shape (with the batch axis), when it has one input of known shape."""
    inp = _single_input(model)
    return None if inp is None else tuple(inp.shape)


def _is_array_like(v) -> bool:
    if v is None or isinstance(v, (tf.data.Dataset, dict)):
        return False
    if isinstance(v, keras.utils.PyDataset) or inspect.isgenerator(v):
        return False
    if tf.is_tensor(v):
        return tf.executing_eagerly() and not isinstance(v, tf.SparseTensor)
    return isinstance(v, (np.ndarray, list, tuple)) or hasattr(v, "__array__")


def _as_array(name, v):
    try:
        arr = np.asarray(v.numpy() if tf.is_tensor(v) else v)
    except (ValueError, TypeError) as e:
        raise TypeError(f"`{name}` must be an array of numbers; could not convert it: {e}") from None
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(
            f"`{name}` must be numeric; got an array of dtype {arr.dtype} (strings or objects). "
            "Encode text into numbers first (e.g. with keras.layers.TextVectorization)."
        )
    return arr


# -------------------------------------------------------------- arrays
def _describe(bounds):
    lo, hi = bounds
    if np.ndim(lo) == 0 and np.ndim(hi) == 0:
        return (float(lo), float(hi))
    return "(per-feature lower/upper arrays)"


def check_arrays(model, x, y=None, sample_weight=None, *, bounds=None, domain=None, arg_prefix="") -> None:
    """Checks in-memory data before `fit`/`evaluate`; raises `ValueError`/`TypeError` naming the argument.

    With `domain` (the attack's `keras_adv.domains.FeatureSpace`), `x` is checked by the space's own
    `check` (bounds, integers, one-hot groups, relations; the offending feature named) instead of `bounds`.
    """
    p = arg_prefix
    if getattr(model, "perturb_layer", None) is not None:
        # Inner-layer perturbation (text): the inputs are token ids or strings, the attack acts on
        # the named layer's output; the input checks of the attack's bounds do not apply to them.
        check_input_kind(model, f"{p}x", x.dtype if tf.is_tensor(x) else np.asarray(x).dtype)
        n = len(x)
        if n == 0:
            raise ValueError(f"`{p}x` is empty: there is nothing to train on or evaluate.")
        _check_token_ids(model, x, f"{p}x")
        if y is not None:
            y = _as_array(f"{p}y", y)
            if len(y) != n:
                raise ValueError(f"`{p}x` and `{p}y` must have the same length, got {n} and {len(y)}.")
            _check_labels(f"{p}y", y, _loss_kind(getattr(model, "loss", None)), num_classes(model))
        return
    if domain is not None and callable(getattr(domain, "check_columns", None)):
        domain.check_columns(x, argument=f"{p}x")  # a DataFrame is read by position
    x = _as_array(f"{p}x", x)
    if x.ndim == 0:
        raise ValueError(f"`{p}x` must be batched, shape (examples, ...), got a scalar.")
    n = len(x)
    if n == 0:
        raise ValueError(f"`{p}x` is empty: there is nothing to train on or evaluate.")
    if not np.issubdtype(x.dtype, np.floating) and domain is not None:
        raise TypeError(f"`{p}x` must hold floating-point records, got dtype {x.dtype}; cast the table first, "
                        "e.g. `x.astype('float32')` (the records stay in their FeatureSpace's units).")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"`{p}x` must be floating point, scaled to the attack bounds {bounds}; got dtype {x.dtype}. "
            "Convert integer images first, e.g. x.astype('float32') / 255; for the token ids of a text "
            "model pass `perturb_layer=` (e.g. perturb_layer='embedding') to attack the embedded sequence."
        )
    expected = input_shape(model)
    if expected is not None and (len(expected) != x.ndim or any(
            e is not None and e != a for e, a in zip(expected[1:], x.shape[1:]))):
        raise ValueError(
            f"`{p}x` has shape {x.shape}, but the model takes inputs of shape {tuple(expected)} "
            "(None: any size)."
        )
    finite = np.isfinite(x)
    if not finite.all():
        bad = int(np.argwhere(~finite.reshape(n, -1).all(axis=1))[0, 0])
        raise ValueError(f"`{p}x` contains NaN or infinite values (first at example {bad}).")
    if domain is not None:
        # a tabular record outside its space (bounds, integer, one-hot, relation) is refused naming the feature
        domain.check(x, argument=f"{p}x")
    elif bounds is not None:
        lo, hi = (np.asarray(b, dtype="float64") for b in bounds)  # scalars or per-feature arrays
        xmin, xmax = float(x.min()), float(x.max())
        if np.any(x < lo) or np.any(x > hi):
            raise ValueError(
                f"`{p}x` must lie inside the attack bounds {_describe(bounds)}; got values in "
                f"[{xmin:.4g}, {xmax:.4g}]. Rescale the data (e.g. x / 255 or x / 16) or give the "
                "attack the bounds your data uses."
            )
    if y is not None:
        y = _as_array(f"{p}y", y)
        if len(y) != n:
            raise ValueError(f"`{p}x` and `{p}y` must have the same length, got {n} and {len(y)}.")
        if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
            raise ValueError(f"`{p}y` contains NaN or infinite values.")
        _check_labels(f"{p}y", y, _loss_kind(getattr(model, "loss", None)), num_classes(model))
    if sample_weight is not None:
        sw = _as_array(f"{p}sample_weight", sample_weight)
        if len(sw) != n:
            raise ValueError(
                f"`{p}sample_weight` must have one weight per example: {len(sw)} weights for {n} examples."
            )
        if not np.isfinite(sw).all():
            raise ValueError(f"`{p}sample_weight` contains NaN or infinite values.")
        if (sw < 0).any():
            raise ValueError(f"`{p}sample_weight` must be >= 0, got a minimum of {float(sw.min()):.4g}.")


def _single_input(model):
    """The base model's one input (a KerasTensor), or None (several inputs, not built, unknown)."""
    base = getattr(model, "base_model", model)
    try:
        inputs = base.inputs
    except (AttributeError, ValueError):
        return None
    return inputs[0] if inputs and len(inputs) == 1 else None


def input_kind_message(model, name, dtype) -> Optional[str]:
    """Why raw inputs of `dtype` cannot feed a model taking token ids or strings (None when they can).

    A model whose input is integer (token ids) would truncate floats (ids scaled to [0, 1) all become 0,
    the padding) and cannot take strings; a model whose input is tf.string (it vectorizes inside) cannot
    take numbers. Models with floating inputs, several inputs or no static input say nothing.
    """
    inp = _single_input(model)
    if inp is None:
        return None
    try:
        want = tf.as_dtype(inp.dtype)
        got = tf.as_dtype(dtype) if tf.is_tensor(dtype) or isinstance(dtype, tf.dtypes.DType) else None
        kind = ("string" if got == tf.string else "float" if got.is_floating else "int" if got.is_integer
                else None) if got is not None else {"U": "string", "S": "string", "O": "string", "f": "float",
                                                    "i": "int", "u": "int"}.get(np.dtype(dtype).kind)
        shown = got.name if got is not None else np.dtype(dtype).name
    except (TypeError, ValueError):
        return None
    where = f"its input {inp.name!r} is {want.name}"
    if want == tf.string and kind in ("int", "float"):
        return (f"`{name}` holds {shown} values, but the model takes strings ({where}: it vectorizes inside, "
                "e.g. with a TextVectorization layer): pass the raw texts.")
    if want.is_integer and kind == "string":
        return (f"`{name}` holds strings, but the model takes token ids ({where}): vectorize the texts first, "
                "ids = vectorizer(texts), with the vectorizer the model was built with.")
    if want.is_integer and kind == "float":
        return (f"`{name}` holds floating-point values ({shown}), but the model takes integer token ids ({where}), "
                "so they would be truncated (ids scaled to [0, 1) all become 0, the padding). Pass the ids as "
                "integers, the vectorizer's output.")
    return None


def check_input_kind(model, name, dtype) -> None:
    """`input_kind_message` as a `TypeError` naming `name`."""
    message = input_kind_message(model, name, dtype)
    if message is not None:
        raise TypeError(message)


def _check_dataset_kind(model, name, data) -> None:
    """A `tf.data.Dataset`'s input dtype, read from its element spec, checked like arrays (`check_input_kind`)."""
    if not isinstance(data, tf.data.Dataset) or getattr(model, "perturb_layer", None) is None:
        return
    spec = data.element_spec
    if isinstance(spec, (tuple, list)) and spec:
        spec = spec[0]
    if isinstance(spec, tf.TensorSpec):
        check_input_kind(model, name, spec.dtype)


def _direct_embedding(model):
    """The perturbed `Embedding` when it takes the model's input itself (functional / Sequential), else None."""
    base = getattr(model, "base_model", model)
    layer = getattr(getattr(model, "_perturbation", None), "layer", None)  # the wrapper's resolved layer
    try:
        direct = isinstance(layer, keras.layers.Embedding) and layer.input is base.inputs[0]
    except (AttributeError, IndexError, RuntimeError, TypeError, ValueError):
        return None
    return layer if direct else None


def _check_token_ids(model, x, name) -> None:
    """Integer inputs fed straight to the perturbed `Embedding` must be ids in `[0, input_dim)`.

    Checked only where the Embedding takes the model's input itself (functional
    and Sequential models): otherwise an id out of range would fail as a raw
    gather error inside the first step.
    """
    layer = _direct_embedding(model)
    if layer is not None:
        check_token_ids(name, x, layer.name, layer.input_dim)


def token_ids_message(name, layer_name, vocab) -> str:
    """The error for token ids outside an Embedding's vocabulary `[0, vocab)`."""
    return (f"`{name}` holds token ids outside [0, {vocab}), the vocabulary of the Embedding {layer_name!r} "
            f"(input_dim={vocab}): use the vectorizer the model was built with (an id >= input_dim has no "
            "embedding; ids are never negative).")


def check_token_ids(name, x, layer_name, vocab) -> None:
    """Eagerly: integer ids `x` inside `[0, vocab)`, else a `ValueError` naming `name` and the range found."""
    ids = np.asarray(x.numpy() if tf.is_tensor(x) else x)
    if ids.dtype.kind not in "iu" or not ids.size:
        return
    lo, hi = ids.min(), ids.max()
    if lo < 0 or hi >= vocab:
        raise ValueError(f"{token_ids_message(name, layer_name, vocab)} Got ids in [{lo}, {hi}].")


def _check_labels(name, y, kind, classes):
    if kind is None:
        return
    if kind == "sparse":
        if y.ndim == 2 and y.shape[1] > 1:
            raise ValueError(
                f"`{name}` looks one-hot (shape {y.shape}) but the compiled loss is sparse: give integer "
                "class labels of shape (examples,), e.g. y.argmax(-1), or compile with "
                "keras.losses.CategoricalCrossentropy."
            )
        if y.ndim > 2:
            raise ValueError(f"`{name}` must be integer labels of shape (examples,), got shape {y.shape}.")
        if np.issubdtype(y.dtype, np.floating) and not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(
                f"`{name}` holds non-integer values (e.g. {y[np.mod(y, 1) != 0].flat[0]!r}) but the compiled "
                "loss is sparse: give integer class labels (or compile with a loss for soft labels)."
            )
        if not np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_:
            raise TypeError(f"`{name}` must be integer class labels, got dtype {y.dtype}.")
        if y.size:
            lo, hi = float(y.min()), float(y.max())
            if lo < 0 or (classes is not None and hi >= classes):
                limit = f"[0, {classes})" if classes is not None else "[0, classes)"
                raise ValueError(
                    f"`{name}` has labels outside {limit} (the model's output has "
                    f"{classes if classes is not None else 'unknown'} classes); got labels in [{lo:g}, {hi:g}]."
                )
    elif kind == "binary":  # targets in [0, 1]: class 0 or 1 (or a soft target between them)
        if classes == 1 and y.ndim == 2 and y.shape[1] > 1:
            raise ValueError(
                f"`{name}` looks one-hot (shape {y.shape}) but the model has one sigmoid output and the compiled "
                "loss is binary crossentropy: give labels 0 or 1 of shape (examples,), e.g. y.argmax(-1)."
            )
        if not np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_:
            if y.dtype != np.bool_:
                raise TypeError(f"`{name}` must be numeric labels 0 or 1, got dtype {y.dtype}.")
        elif y.size:
            lo, hi = float(y.min()), float(y.max())
            if lo < 0 or hi > 1:
                raise ValueError(
                    f"`{name}` has labels outside [0, 1], the targets of the compiled binary crossentropy "
                    f"(class 0 or 1); got labels in [{lo:g}, {hi:g}]. For more than two classes use a softmax "
                    "output and keras.losses.SparseCategoricalCrossentropy."
                )
    else:  # categorical
        if y.ndim != 2 or (classes is not None and y.shape[1] != classes):
            raise ValueError(
                f"`{name}` must be one-hot of shape (examples, {classes if classes else 'classes'}) for the "
                f"compiled categorical loss, got shape {y.shape}. Use "
                "keras.losses.SparseCategoricalCrossentropy for integer labels."
            )


def check_callback_data(callback, model, attack, x, y, *, arg_prefix="") -> None:
    """A callback's own examples, checked against its attack when training begins (not after an epoch).

    The errors of `check_arrays` (bounds, NaN, dtype, shapes, labels), prefixed with the callback's class
    name so that they do not read as if `fit`'s own `x` were at fault.
    """
    if attack is None or not getattr(attack, "check_inputs", True):
        return
    domain = getattr(attack, "domain", None)
    try:
        check_arrays(model, x, y, bounds=getattr(attack, "bounds", None),
                     domain=domain if callable(getattr(domain, "check", None)) else None, arg_prefix=arg_prefix)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{type(callback).__name__}: {e}") from None


def _check_dataset(name, data):
    if isinstance(data, tf.data.Dataset):
        card = int(data.cardinality().numpy())
        if card == 0:
            raise ValueError(f"`{name}` (a tf.data.Dataset) is empty: it yields no batches.")


# ------------------------------------------------------------- in graph
def batch_checks(model, y, sample_weight):
    """In-graph checks of one batch's labels and sample weights (asserts named with `MARKER`).

    Returns `(y, sample_weight)` gated on the checks: every op of the step that
    reads them (the attack, the losses, a label gather) runs only after the
    checks passed, so a bad batch raises the named error — never a raw op error
    such as an out-of-range gather — and stops the step before its weight update.
    `x` is checked by the attack (finite, in bounds).
    """
    kind = _loss_kind(getattr(model, "loss", None))
    classes = num_classes(model)
    checks = []
    if kind == "sparse" and y is not None and classes is not None and (y.dtype.is_integer or y.dtype.is_floating):
        in_range = tf.reduce_all((y >= tf.cast(0, y.dtype)) & (y < tf.cast(classes, y.dtype)))
        checks.append(tf.debugging.Assert(in_range, [
            f"{MARKER} `y` has labels outside [0, {classes}) (the model has "
            f"{classes} classes); min/max label in the batch:", tf.reduce_min(y), tf.reduce_max(y)]))
    if kind == "binary" and y is not None and (y.dtype.is_integer or y.dtype.is_floating):
        in_range = tf.reduce_all((y >= tf.cast(0, y.dtype)) & (y <= tf.cast(1, y.dtype)))
        checks.append(tf.debugging.Assert(in_range, [
            f"{MARKER} `y` has labels outside [0, 1], the targets of the compiled binary crossentropy; "
            "min/max label in the batch:", tf.reduce_min(y), tf.reduce_max(y)]))
    if sample_weight is not None and sample_weight.dtype.is_floating:
        ok = tf.reduce_all(tf.math.is_finite(sample_weight) & (sample_weight >= 0))
        checks.append(tf.debugging.Assert(
            ok, [f"{MARKER} `sample_weight` contains NaN, infinite or negative values."]))
    if not checks:
        return y, sample_weight
    with tf.control_dependencies(checks):
        y = tf.nest.map_structure(tf.identity, y) if y is not None else None
        sample_weight = tf.identity(sample_weight) if sample_weight is not None else None
    return y, sample_weight


def token_id_checks(model, x):
    """In-graph: a batch of ids fed to the perturbed `Embedding` must lie in `[0, input_dim)`.

    The streamed counterpart of `check_arrays`' id check (same message, with `MARKER`): returns `x`
    gated on the assert, so the Embedding's gather (a raw `GatherV2` error on a CPU, a silent zero row
    on a GPU) never sees an out-of-vocabulary id and the step stops before its weight update. Only where
    the Embedding takes the model's input itself; any other `x` is returned as it is.
    """
    layer = _direct_embedding(model)
    if layer is None or not tf.is_tensor(x) or not x.dtype.is_integer:
        return x
    vocab = int(layer.input_dim)
    ok = tf.reduce_all((x >= tf.cast(0, x.dtype)) & (x < tf.cast(vocab, x.dtype)))
    check = tf.debugging.Assert(ok, [f"{MARKER} {token_ids_message('x', layer.name, vocab)} Min/max id in the batch:",
                                     tf.reduce_min(x), tf.reduce_max(x)])
    with tf.control_dependencies([check]):
        return tf.identity(x)


def assert_finite_loss(loss) -> None:
    """In-graph: the step's total loss must be finite before the weights are updated."""
    tf.debugging.Assert(
        tf.reduce_all(tf.math.is_finite(loss)),
        [f"{MARKER} the training loss became NaN or infinite (the model's outputs or the data overflow; "
         "under mixed precision check for values too large for float16). The update was not applied."],
    )


# ------------------------------------------------------ wrapper checks
def check_wrapper_attacks(attack, eval_attack) -> None:
    """Construction-time checks of the wrapper's attacks."""
    for arg, a in (("attack", attack), ("eval_attack", eval_attack)):
        if a is None:
            continue
        if getattr(a, "discrete_inputs", False):
            raise ValueError(
                f"`{arg}` is {type(a).__name__}, a token attack (it substitutes token ids): AdversarialModel "
                "trains and evaluates against a continuous perturbation. For a text model pass a continuous "
                "attack (keras_adv.attacks.PGD, FGSM or VirtualAdversarial) with perturb_layer='embedding' "
                "(adversarial training in embedding space), and measure robustness to substitutions with "
                "keras_adv.evaluate_robustness(base_model, token_ids, labels, "
                f"attacks={{'hotflip': {type(a).__name__}(...)}})."
            )
        if getattr(a, "targeted", False):
            raise ValueError(
                f"`{arg}` is targeted ({a!r}), but AdversarialModel passes the *true* labels to it: a targeted "
                "attack would move inputs towards their own class and report robustness that is not there. "
                "Use an untargeted attack (targeted=False)."
            )
        eps, bounds = getattr(a, "epsilon", None), getattr(a, "bounds", None)
        norm = getattr(getattr(a, "norm", None), "name", None)
        width = None if bounds is None else np.asarray(bounds[1], float) - np.asarray(bounds[0], float)
        if eps is not None and width is not None and norm == "linf" and bool(np.all(eps >= width)):
            warnings.warn(
                f"`{arg}`'s epsilon={eps:g} is at least the width of its bounds {tuple(bounds)}: every input "
                "is reachable, so no model can be robust at this budget.", UserWarning, stacklevel=3)


# -------------------------------------------------------- fit/evaluate
def _bind(method_name, args, kwargs):
    sig = inspect.signature(getattr(keras.Model, method_name))
    bound = sig.bind_partial(None, *args, **kwargs)
    out = dict(bound.arguments)
    out.pop("self", None)
    return out


def _checked_attack(model, method_name):
    """The attack whose input checks apply to `method_name`'s data (None when it checks nothing)."""
    attack = getattr(model, "attack", None)
    if method_name in ("evaluate", "test_on_batch") and getattr(model, "eval_attack", None) is not None:
        attack = model.eval_attack
    if attack is None or not getattr(attack, "check_inputs", True):
        return None
    return attack


def _bounds_of(model, method_name):
    return getattr(_checked_attack(model, method_name), "bounds", None)


def _feature_space_of(model, method_name):
    """The attack's domain when it checks records itself, naming the feature (a `FeatureSpace`), else None."""
    domain = getattr(_checked_attack(model, method_name), "domain", None)
    return domain if callable(getattr(domain, "check", None)) else None


def precheck(model, method_name, args, kwargs) -> None:
    """The once-before-the-first-step checks of `fit(...)` / `evaluate(...)` arguments."""
    a = _bind(method_name, args, kwargs)
    x, y, sw = a.get("x"), a.get("y"), a.get("sample_weight")
    bounds = _bounds_of(model, method_name)
    _check_dataset("x", x)
    _check_dataset_kind(model, "x", x)
    multi_input = isinstance(x, (list, tuple)) and any(isinstance(e, (np.ndarray, tf.Tensor)) for e in x)
    if _is_array_like(x) and not multi_input:
        check_arrays(model, x, y if _is_array_like(y) else None, sw if _is_array_like(sw) else None,
                     bounds=bounds, domain=_feature_space_of(model, method_name))
    elif x is None:
        raise ValueError(f"`x` is required by {method_name}(): pass the training inputs.")
    if method_name == "fit":
        vd = a.get("validation_data")
        _check_dataset("validation_data", vd)
        _check_dataset_kind(model, "validation_data", vd)
        if isinstance(vd, (list, tuple)) and len(vd) in (2, 3) and _is_array_like(vd[0]):
            check_arrays(model, vd[0], vd[1], vd[2] if len(vd) == 3 else None,
                         bounds=_bounds_of(model, "evaluate"), domain=_feature_space_of(model, "evaluate"),
                         arg_prefix="validation_data ")


def _snapshot(model):
    variables = list(model.variables)
    opt = getattr(model, "optimizer", None)
    if opt is not None and getattr(opt, "built", False):
        variables += [v for v in opt.variables if all(v is not w for w in variables)]
    return [(v, np.array(v.numpy())) for v in variables]


def _restore(snapshot):
    for v, value in snapshot:
        v.assign(value)


def _clean_message(e) -> Optional[str]:
    msg = str(getattr(e, "message", e))
    if MARKER in msg:
        tail = msg[msg.index(MARKER) + len(MARKER):]
        tail = tail.split("\n\t [[")[0].split("\n\n")[0].strip().replace("\n", " ").replace("\\'", "'")
        # tf.debugging.Assert prints "[text] [value] [value]": text and values, without the brackets.
        text, *values = tail.removesuffix("]").split("] [")
        return f"{text.strip()} {', '.join(values)}." if values else text.strip()
    m = _TF_LABEL_ERROR.search(msg)
    if m:
        return f"`y` has labels outside [0, {m.group(2)}) (got the label {m.group(1)})."
    for text in ("`x` contains NaN or infinite values", "`x` must lie inside bounds="):  # the attack's own checks
        if text in msg:
            # tf.debugging.Assert prints "[text] [value] [value]": text and values, without the brackets.
            line = msg[msg.index(text):].split("\n")[0].split("\t")[0].strip()
            line = line.split(" [[")[0].split(" [Op:")[0].strip().removesuffix("]")
            head, *values = line.split("] [")
            head = head.strip()
            return f"{head} {', '.join(v.strip() for v in values)}." if values else head.rstrip(".") + "."
    return None


class _ValidationCheckFailed(Exception):
    """A check failed in the `evaluate` that `fit` runs on `validation_data`: `fit` restores and reports it."""


_ACTIVE = weakref.WeakSet()  # models inside a guarded fit/evaluate/predict


def guarded_call(model, super_method, method_name, args, kwargs):
    """Runs `fit`/`evaluate`/`predict` with the pre-checks, and turns in-graph check failures into a plain error.

    For `fit`, the variables (model and optimizer) are snapshotted first; when
    a check fails mid-run (also in the evaluation of `validation_data` that
    `fit` runs, whose message then names `validation_data`) they are restored
    before the error is raised. `predict` has no pre-checks (it takes no
    labels, and the attack's bounds do not apply to it): only its in-graph
    token-id check is turned into a plain error.
    """
    if model in _ACTIVE:  # the evaluate() fit() runs on validation_data: fit restores and reports
        try:
            return super_method(*args, **kwargs)
        except (tf.errors.InvalidArgumentError, ValueError) as e:
            message = _clean_message(e)
            if message is None:
                raise
            raise _ValidationCheckFailed(re.sub(r"^`(x|y|sample_weight)`", r"`validation_data \1`", message)) \
                from None
    if method_name != "predict":
        precheck(model, method_name, args, kwargs)
    snapshot = _snapshot(model) if method_name == "fit" and model.built else None
    _ACTIVE.add(model)
    try:
        return super_method(*args, **kwargs)
    except _ValidationCheckFailed as e:
        message = str(e)
    except (tf.errors.InvalidArgumentError, ValueError) as e:
        message = _clean_message(e)
        if message is None:
            raise
    finally:
        _ACTIVE.discard(model)
    restored = ""
    if snapshot is not None:
        _restore(snapshot)
        restored = " The weights and optimizer state were restored to their values before fit()."
    raise ValueError(f"{method_name}(): {message}{restored}") from None
