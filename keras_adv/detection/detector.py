"""Adversarial-input detection on intermediate features, and rejection at inference.

Metzen et al. 2017, "On Detecting Adversarial Perturbations": a small
detector network reads the classifier's hidden features and outputs the
logit of "this input is adversarial". Carlini & Wagner 2017 ("Adversarial
Examples Are Not Easily Detected") showed that such detectors fall to an
attacker who knows them, so `evaluate_detection` always reports an adaptive
attack beside the non-adaptive one.
"""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from keras_adv import domains as domains_lib
from keras_adv import losses as losses_lib
from keras_adv.attacks.attack import Attack
from keras_adv.attacks.wrappers import _all_layers, _is_graph_model
from keras_adv.utils.validation import check_number
from keras_adv.evaluation import _common
from keras_adv.utils.data_checks import _as_array, input_shape

__all__ = ["build_detector", "train_detector", "RejectingModel", "adaptive_loss"]


def _feature_model(classifier: keras.Model, feature_layer):
    if feature_layer is None:
        layers = [l for l in classifier.layers if not isinstance(l, keras.layers.InputLayer)]
        if len(layers) < 2:
            raise ValueError("`classifier` needs a hidden layer to read features from; pass `feature_layer`.")
        feature_layer = layers[-2].name  # the penultimate layer
    if feature_layer == "input":
        return None
    try:
        layer = classifier.get_layer(feature_layer)
    except ValueError:
        raise ValueError(
            f"`feature_layer`: the classifier has no layer {feature_layer!r}; layers: "
            f"{[l.name for l in classifier.layers]}."
        ) from None
    try:
        return keras.Model(classifier.inputs, layer.output, name="detector_features")
    except Exception as e:  # subclassed models have no symbolic graph
        raise ValueError(
            "`classifier` must be a functional or Sequential model to read intermediate features "
            f"(or pass feature_layer='input'): {e}"
        ) from None


def build_detector(classifier: keras.Model, *, feature_layer: Optional[str] = None, hidden: int = 64,
                   name: str = "detector") -> keras.Model:
    """A detector model `x -> logit(adversarial)` on `classifier`'s hidden features.

    Args:
        classifier: the functional or Sequential classifier to protect.
        feature_layer: name of the layer whose output the detector reads;
            default the penultimate layer; `"input"` reads the raw input.
        hidden: width of the detector's hidden layer.
    """
    hidden = check_number("hidden", hidden, minimum=1, integer=True)
    features = _feature_model(classifier, feature_layer)
    inputs = keras.Input(classifier.input_shape[1:], name="x")
    h = inputs if features is None else features(inputs)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(hidden, activation="relu", name="detector_hidden")(h)
    out = keras.layers.Dense(1, name="detector_logit")(h)
    return keras.Model(inputs, out, name=name)


def train_detector(classifier: keras.Model, attack: Attack, x, y=None, *, feature_layer: Optional[str] = None,
                   hidden: int = 64, epochs: int = 20, batch_size: int = 64, learning_rate: float = 1e-3,
                   seed: int = 0, verbose=0) -> keras.Model:
    """Trains a Metzen-style detector to tell `attack`'s examples from clean ones.

    The classifier's weights are frozen (only the detector head learns);
    adversarial examples are crafted once against the classifier (a static
    adversary).

    Returns:
        The detector, a `keras.Model` mapping inputs to the logit of
        "adversarial" (positive: flagged at threshold 0). It remembers
        `attack`'s bounds: a `RejectingModel` built on it checks its inputs
        against them.
    """
    if not isinstance(attack, Attack):
        raise TypeError(f"`attack` must be a keras_adv.attacks.Attack, got {type(attack).__name__}.")
    x, y_raw = _common.to_numpy(x, y, argument="x")
    x_adv = _common.run_attack(attack, classifier, x, y_raw, batch_size=256, seed=seed)
    detector = build_detector(classifier, feature_layer=feature_layer, hidden=hidden)
    xs = np.concatenate([x, x_adv])
    labels = np.concatenate([np.zeros(len(x)), np.ones(len(x_adv))]).astype("float32")[:, None]
    trainable = {id(l): l.trainable for l in classifier.layers}
    for l in classifier.layers:
        l.trainable = False
    try:
        detector.compile(optimizer=keras.optimizers.Adam(learning_rate),
                         loss=keras.losses.BinaryCrossentropy(from_logits=True),
                         metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)])
        rng = np.random.default_rng(seed)
        idx = rng.permutation(len(xs))
        detector.fit(xs[idx], labels[idx], epochs=epochs, batch_size=batch_size, verbose=verbose)
    finally:
        for l in classifier.layers:
            l.trainable = trainable[id(l)]
    detector._keras_adv_domain = attack.domain  # the inputs' range, which RejectingModel checks against
    return detector


@keras.saving.register_keras_serializable(package="keras_adv")
class RejectingModel(keras.Model):
    """A classifier that rejects inputs its detector flags: `K + 1` outputs, the last one "rejected".

    Outputs logits `[z_1, …, z_K, max_k z_k + (d(x) − threshold)]` where
    `z` are the classifier's logits and `d(x)` the detector's logit. The
    arg-max is the extra class `K` exactly when `d(x) > threshold`, and the
    outputs stay differentiable, so an adaptive attacker can attack the whole
    system (Carlini & Wagner 2017).

    Example:

    ```python
    detector = keras_adv.detection.train_detector(clf, keras_adv.attacks.PGD(0.2), x, y)
    guarded = keras_adv.detection.RejectingModel(clf, detector)
    guarded.calibrate(x_clean, false_positive_rate=0.05)
    pred, rejected = guarded.predict_with_rejection(x_new)
    ```

    Args:
        classifier: the classifier, a `keras.Model` (must output logits or
            probabilities over K classes).
        detector: a `keras.Model` `x -> logit(adversarial)` with one output
            unit, e.g. from `train_detector`.
        threshold: detector logit above which an input is rejected.
        bounds: the range of valid inputs, `(min, max)` (scalars or
            per-feature arrays) or a `keras_adv.domains.Domain`. Default:
            the bounds of the attack the detector was trained against (by
            `train_detector`), else `(0, 1)`, every attack's default.
            `calibrate`, `detector_scores` and `predict_with_rejection`
            refuse integer, NaN/infinite and out-of-bounds inputs (a
            0-255 image would give a meaningless threshold).
    """

    def __init__(self, classifier: keras.Model, detector: keras.Model, threshold: float = 0.0, bounds=None,
                 **kwargs):
        if not isinstance(classifier, keras.Model):
            raise TypeError(f"`classifier` must be a keras.Model (the classifier to protect), got "
                            f"{type(classifier).__name__}.")
        if not isinstance(detector, keras.Model):
            raise TypeError(
                "`detector` must be a keras.Model mapping inputs to the logit of \"adversarial\" (e.g. from "
                f"keras_adv.detection.train_detector), got {type(detector).__name__}."
            )
        units = _output_units(detector)
        if units is not None and units != 1:
            raise ValueError(f"`detector` must have one output unit (the logit of \"adversarial\"), "
                             f"got {units}.")
        threshold = check_number("threshold", threshold)
        if bounds is None:
            domain = getattr(detector, "_keras_adv_domain", None) or domains_lib.Box(0.0, 1.0)
        elif isinstance(bounds, (domains_lib.Domain, dict)):
            domain = domains_lib.get(bounds)
        else:
            try:
                domain = domains_lib.Box(*bounds)
            except TypeError:
                raise TypeError(f"`bounds` must be a pair (min, max) or a keras_adv.domains.Domain, "
                                f"got {bounds!r}.") from None
        super().__init__(**kwargs)
        self.classifier = classifier
        self.detector = detector
        self.domain = domain
        self._threshold = self.add_weight(shape=(), initializer=keras.initializers.Constant(threshold),
                                          trainable=False, name="threshold")
        # No state of its own beyond the threshold (created above): built when its parts are.
        self.built = bool(getattr(classifier, "built", False) and getattr(detector, "built", False))

    @property
    def threshold(self) -> float:
        return float(self._threshold.numpy())

    @threshold.setter
    def threshold(self, value):
        self._threshold.assign(check_number("threshold", value))

    def call(self, x, training=False):
        z = self.classifier(x, training=training)
        z = tf.cast(z, tf.float32)
        probs = tf.reduce_all(z >= 0) & tf.reduce_all(tf.abs(tf.reduce_sum(z, -1) - 1.0) < 1e-3)
        z = tf.where(probs, tf.math.log(tf.clip_by_value(z, 1e-12, 1.0)), z)  # logits either way
        d = tf.cast(self.detector(x, training=training), tf.float32)
        reject = tf.reduce_max(z, axis=-1, keepdims=True) + (d - self._threshold)
        return tf.concat([z, reject], axis=-1)

    @property
    def reject_index(self) -> int:
        return int(self.classifier.output_shape[-1])

    def detector_scores(self, x, batch_size: int = 256) -> np.ndarray:
        """The detector's logits on `x` (higher = more likely adversarial)."""
        x = self._checked_inputs("x", x)
        batch_size = check_number("batch_size", batch_size, minimum=1, integer=True)
        return _common.predict(self.detector, x, batch_size)[:, 0]

    def calibrate(self, x_clean, false_positive_rate: float = 0.05, batch_size: int = 256) -> float:
        """Sets the threshold so that `false_positive_rate` of `x_clean` is rejected; returns it.

        `x_clean` must be clean, held-out, floating-point inputs inside the
        model's `bounds` (without NaN): anything else is refused before the
        threshold changes.
        """
        fpr = check_number("false_positive_rate", false_positive_rate, minimum=0.0)
        if fpr >= 1:
            raise ValueError(f"`false_positive_rate` must be < 1, got {false_positive_rate}.")
        x_clean = self._checked_inputs("x_clean", x_clean)
        batch_size = check_number("batch_size", batch_size, minimum=1, integer=True)
        s = _common.predict(self.detector, x_clean, batch_size)[:, 0]
        if not np.isfinite(s).all():
            raise ValueError("The detector gives NaN or infinite scores on `x_clean`; the threshold is "
                             "left unchanged.")
        self.threshold = float(np.quantile(s, 1.0 - fpr))
        return self.threshold

    def predict_with_rejection(self, x, batch_size: int = 256):
        """`(predicted class, rejected)` numpy arrays; the class is the classifier's even when rejected."""
        x = self._checked_inputs("x", x)
        batch_size = check_number("batch_size", batch_size, minimum=1, integer=True)
        out = _common.predict(self, x, batch_size)
        return out[:, :-1].argmax(-1), out.argmax(-1) == out.shape[-1] - 1

    def _checked_inputs(self, name, x) -> np.ndarray:
        """`x` as float32 numpy, refused (naming `name`) unless floating, batched, finite and inside `bounds`."""
        x = _as_array(name, x)
        desc = _describe_domain(self.domain)
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(
                f"`{name}` must be floating-point inputs scaled to {desc}, got dtype {x.dtype}. Convert "
                "integer images first, e.g. `x.astype('float32') / 255`."
            )
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(f"`{name}` must be a non-empty batch of inputs, shape (examples, ...), "
                             f"got shape {x.shape}.")
        expected = input_shape(self.detector)
        if expected is not None and (len(expected) != x.ndim or any(
                e is not None and e != a for e, a in zip(expected[1:], x.shape[1:]))):
            raise ValueError(f"`{name}` has shape {x.shape}, but the detector takes inputs of shape "
                             f"{tuple(expected)} (None: any size).")
        finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if not finite.all():
            raise ValueError(f"`{name}` contains NaN or infinite values (first at example "
                             f"{int(np.argmin(finite))}).")
        inside = np.asarray(self.domain.contains(x.astype(np.float32, copy=False)))
        if not inside.all():
            raise ValueError(
                f"`{name}` must lie inside {desc}; got values in [{float(x.min()):.4g}, {float(x.max()):.4g}] "
                f"(first outside at example {int(np.argmin(inside))}). Rescale the data (e.g. x / 255), or "
                "give RejectingModel the `bounds` your data uses."
            )
        return x.astype(np.float32, copy=False)

    def get_config(self):
        return {
            **super().get_config(),
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "detector": keras.saving.serialize_keras_object(self.detector),
            "threshold": self.threshold,
            "bounds": keras.saving.serialize_keras_object(self.domain),
            "shared_layers": _shared_layer_names(self.classifier, self.detector),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        shared = config.pop("shared_layers", None) or []
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        config["detector"] = keras.saving.deserialize_keras_object(config["detector"])
        if shared:  # the detector reads the classifier's own layers again, as when it was saved
            config["detector"] = _relink(config["detector"], config["classifier"], shared)
        return cls(**config)


def _output_units(model):
    """The static size of `model`'s last output axis, or None (subclassed, unbuilt, several outputs)."""
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return None
    if not outputs or len(outputs) != 1 or outputs[0].shape[-1] is None:
        return None
    return int(outputs[0].shape[-1])


def _describe_domain(domain) -> str:
    if getattr(domain, "is_scalar", False):
        return f"the bounds ({float(domain.lower):g}, {float(domain.upper):g})"
    return f"the per-feature bounds of {domain!r}"


def _layer_tree(model):
    """`model` and every layer inside it, nested models included (depth first)."""
    return [model] + _all_layers(model)


def _shared_layer_names(classifier, detector):
    """Names of the classifier's layers (or the classifier itself) that the detector calls.

    The default detector reads the classifier's hidden features through the classifier's own layers.
    Serialized on their own, the two configs would load as two separate sets of layers (and the
    detector's copies would find no weights in the file), so `from_config` links them again by name.
    """
    if not isinstance(detector, keras.Model) or not isinstance(classifier, keras.Model):
        return []
    ours = {id(l): l for l in _layer_tree(classifier)}
    shared, names = [], {}
    for l in _layer_tree(detector)[1:]:
        if id(l) in ours and not isinstance(l, keras.layers.InputLayer) and l.name not in shared:
            shared.append(l.name)
    if shared:
        for l in _layer_tree(classifier):
            names.setdefault(l.name, set()).add(id(l))
        ambiguous = sorted(n for n in shared if len(names[n]) > 1)
        if ambiguous:
            raise ValueError(
                f"The detector shares the classifier's layers {ambiguous}, whose names are not unique "
                "inside the classifier, so the saved model could not link them again: give those "
                "layers unique names."
            )
        if not _is_graph_model(detector):
            raise ValueError(
                "The detector shares layers with the classifier but is a subclassed model, whose "
                "layer graph cannot be rebuilt on loading: build it with the functional or Sequential "
                "API (as `build_detector` does)."
            )
    return shared


def _relink(detector, classifier, shared):
    """`detector` rebuilt so that the layers named `shared` are the classifier's (weights shared)."""
    by_name = {l.name: l for l in _layer_tree(classifier)}
    missing = [n for n in shared if n not in by_name]
    if missing:
        raise ValueError(f"The saved detector shares layers {missing} that the classifier does not have.")
    names = set(shared)

    def clone(layer):
        if layer.name in names:
            return by_name[layer.name]
        if _is_graph_model(layer) and any(l.name in names for l in _layer_tree(layer)[1:]):
            return keras.models.clone_model(layer, clone_function=clone)
        return layer

    return keras.models.clone_model(detector, clone_function=clone)


def adaptive_loss(y_true, outputs):
    """Per-example loss for attacking a `RejectingModel` (Carlini & Wagner 2017).

    On its `K + 1` logits, `max_{k ∉ {y, reject}} z_k − max(z_y, z_reject)`:
    positive exactly when the input is misclassified *and* not rejected, so
    maximising it fools classifier and detector at once.
    """
    outputs = tf.cast(outputs, tf.float32)
    k1 = tf.shape(outputs)[-1]
    y = losses_lib.label_class(y_true)
    blocked = tf.one_hot(y, k1) + tf.one_hot(tf.fill(tf.shape(y), k1 - 1), k1)
    other = tf.reduce_max(outputs - 1e9 * blocked, axis=-1)
    guard = tf.reduce_max(outputs - 1e9 * (1.0 - blocked), axis=-1)
    return other - guard
