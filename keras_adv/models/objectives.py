"""Training objectives: how clean and adversarial losses combine.

An objective turns per-batch clean and adversarial outputs into the total loss
that `AdversarialModel` optimises, and the `clean_loss` / `adv_loss` it logs.
It may also replace the attack's inner loss (TRADES maximises a KL term).

Objectives are serializable like Keras objects: hyper-parameters go in
`get_config`, and `register` (usable as a class decorator) makes a custom
objective known both by its `name` (`objective="my_name"`) and to Keras'
serialization, so it survives `model.save` / `keras.models.load_model` in a
fresh process once the module defining it is imported.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Type

import keras
import tensorflow as tf

from keras_adv import losses as losses_lib
from keras_adv.utils import trust

__all__ = ["Objective", "CrossEntropyMixture", "Madry", "Trades", "Mart", "VirtualAdversarialTraining",
           "get", "available", "register", "serialize", "deserialize"]

_LOG_EPS = 1e-12


class Objective:
    """Base class. Subclasses implement `__call__`.

    Attributes:
        name: the `objective=` string.
        needs_clean_gradient: whether the clean forward pass contributes to
            the weight gradient (False lets the wrapper skip recording it).
        needs_clean_for_attack: whether `attack_loss` needs the clean outputs;
            the wrapper then computes them (outside the weight tape, with
            `training=False`) before crafting the adversarial examples.
    """

    name = ""
    needs_clean_gradient = True
    needs_clean_for_attack = False

    def get_config(self) -> dict:
        """The constructor's keyword arguments (none for the built-in objectives)."""
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Objective":
        return cls(**config)

    def attack_loss(self, y_clean, from_logits=None) -> Optional[Callable]:
        """A per-example loss `(y, outputs) -> (batch,)` for the inner attack, or None.

        Args:
            y_clean: the clean outputs of the batch (when
                `needs_clean_for_attack`), else None.
            from_logits: whether outputs are logits (True), probabilities
                (False) or unknown (None: detected per batch).
        """
        return None

    def __call__(self, *, y, y_clean, y_adv, sample_weight, compiled_loss, adv_weight,
                 from_logits=None):
        """Returns `(total, clean_loss, adv_loss)` scalars.

        `compiled_loss(y, y_pred, sample_weight)` is the model's compiled,
        batch-reduced loss. `from_logits` says whether outputs are logits
        (None: detected from the outputs).
        """
        raise NotImplementedError


class CrossEntropyMixture(Objective):
    """`L_clean + λ·L_adv` (Goodfellow et al. 2015), with the compiled loss."""

    name = "ce"

    def __call__(self, *, y, y_clean, y_adv, sample_weight, compiled_loss, adv_weight,
                 from_logits=None):
        clean = compiled_loss(y, y_clean, sample_weight)
        adv = compiled_loss(y, y_adv, sample_weight)
        return clean + adv_weight * adv, clean, adv


class Madry(Objective):
    """Pure adversarial training (Madry et al. 2018): only `λ·L_adv` is optimised.

    The clean loss is still computed and logged, but not differentiated.
    """

    name = "madry"
    needs_clean_gradient = False

    def __call__(self, *, y, y_clean, y_adv, sample_weight, compiled_loss, adv_weight,
                 from_logits=None):
        clean = compiled_loss(y, y_clean, sample_weight)
        adv = compiled_loss(y, y_adv, sample_weight)
        return adv_weight * adv, clean, adv


def kl_divergence(p_outputs, q_outputs, from_logits=None):
    """Per-example `KL(p ‖ q)` between two batches of outputs (logits or probabilities)."""
    log_p = losses_lib.to_log_probs(p_outputs, from_logits)
    log_q = losses_lib.to_log_probs(q_outputs, from_logits)
    return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)


def _batch_mean(per_example, sample_weight):
    """Keras' "sum over batch size" reduction of a per-example loss, with optional weights."""
    per_example = tf.cast(per_example, tf.float32)
    if sample_weight is not None:
        sw = tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
        per_example = per_example * sw
    return tf.reduce_sum(per_example) / tf.cast(tf.maximum(tf.size(per_example), 1), tf.float32)


class Trades(Objective):
    """TRADES (Zhang et al. 2019, "Theoretically Principled Trade-off between
    Robustness and Accuracy"): `CE(f(x), y) + β·KL(f(x) ‖ f(x_adv))`.

    β is the model's `adv_weight` (the paper uses 1–6). The inner attack
    maximises the per-example `KL(f(x) ‖ f(x'))` from the *clean* output
    (computed without the weight tape), not the cross-entropy, so use an
    attack with a random start (at `x' = x` the KL gradient is zero). Both
    terms are differentiated, as in the authors' code.

    Logged: `clean_loss` = the compiled loss on clean inputs, `adv_loss` =
    the KL regulariser (batch mean), `loss` = `clean_loss + β·adv_loss`.
    """

    name = "trades"
    needs_clean_for_attack = True

    def attack_loss(self, y_clean, from_logits=None):
        p_clean = tf.stop_gradient(y_clean)

        def kl_loss(y_true, outputs):
            return kl_divergence(p_clean, outputs, from_logits)

        return kl_loss

    def __call__(self, *, y, y_clean, y_adv, sample_weight, compiled_loss, adv_weight,
                 from_logits=None):
        clean = compiled_loss(y, y_clean, sample_weight)
        adv = _batch_mean(kl_divergence(y_clean, y_adv, from_logits), sample_weight)
        return clean + tf.cast(adv_weight, tf.float32) * adv, clean, adv


class Mart(Objective):
    """MART (Wang et al. 2020, "Improving Adversarial Robustness Requires
    Revisiting Misclassified Examples").

    `BCE(f(x_adv), y) + β·mean_i[KL(f(x_i) ‖ f(x_adv_i))·(1 − p_y(x_i))]`,
    where the boosted cross-entropy is the compiled loss on the adversarial
    inputs plus `−log(1 − max_{k≠y} p_k(x_adv))`; the KL term weighs each
    example by how *mis*classified its clean input is. β is `adv_weight`
    (the paper uses 5–6). The inner attack is the ordinary cross-entropy
    attack.

    Logged: `clean_loss` = the compiled loss on clean inputs (logged, not
    optimised), `adv_loss` = the weighted KL regulariser, `loss` = the total.
    """

    name = "mart"

    def __call__(self, *, y, y_clean, y_adv, sample_weight, compiled_loss, adv_weight,
                 from_logits=None):
        clean = compiled_loss(y, y_clean, sample_weight)
        log_p_adv = losses_lib.to_log_probs(y_adv, from_logits)
        log_p_clean = losses_lib.to_log_probs(y_clean, from_logits)
        p_adv, p_clean = tf.exp(log_p_adv), tf.exp(log_p_clean)
        label = losses_lib.label_class(y)
        true_mask = tf.one_hot(label, tf.shape(p_adv)[-1], dtype=tf.float32)
        # Largest wrong-class probability under attack.
        wrong_max = tf.reduce_max(p_adv - 2.0 * true_mask, axis=-1)
        margin = -tf.math.log(tf.maximum(1.0 - wrong_max, 0.0) + _LOG_EPS)
        bce = compiled_loss(y, y_adv, sample_weight) + _batch_mean(margin, sample_weight)
        p_true_clean = tf.reduce_sum(p_clean * true_mask, axis=-1)
        kl = tf.reduce_sum(p_clean * (log_p_clean - log_p_adv), axis=-1)
        adv = _batch_mean(kl * (1.0 - p_true_clean), sample_weight)
        return bce + tf.cast(adv_weight, tf.float32) * adv, clean, adv


class VirtualAdversarialTraining(Objective):
    """Virtual adversarial training (Miyato et al. 2018, "Virtual Adversarial
    Training: A Regularization Method for Supervised and Semi-Supervised
    Learning"; for text, Miyato, Dai & Goodfellow 2017).

    `L_sup + λ·mean_i KL(p(·|x_i) ‖ p(·|x_i + r_i))`: the inner attack
    maximises the KL from the clean prediction, which needs no label (use
    `keras_adv.attacks.VirtualAdversarial` for the paper's power
    iteration), and the clean prediction in the KL is a constant, as in the
    authors' code. λ is the model's `adv_weight` (the paper's α, 1 by default).

    Unlabeled examples: the supervised term is the compiled loss *with* the
    sample weights, the VAT term is the plain mean over *every* example of
    the batch. So feed unlabeled examples with `sample_weight=0` and any
    valid placeholder label (e.g. 0); `keras_adv.datasets.with_unlabeled`
    builds such `(x, y, sample_weight)` arrays.

    Logged: `clean_loss` = the supervised term, `adv_loss` = the VAT term
    (batch mean KL), `loss` = `clean_loss + λ·adv_loss`.
    """

    name = "vat"
    needs_clean_for_attack = True
    attack_loss = Trades.attack_loss  # KL(p_clean ‖ p(x')) from the fixed clean prediction

    def __call__(self, *, y, y_clean, y_adv, sample_weight, compiled_loss, adv_weight,
                 from_logits=None):
        supervised = compiled_loss(y, y_clean, sample_weight)
        vat = tf.reduce_mean(kl_divergence(tf.stop_gradient(y_clean), y_adv, from_logits))
        return supervised + tf.cast(adv_weight, tf.float32) * vat, supervised, vat


_REGISTRY: Dict[str, Type[Objective]] = {}


def register(cls: Type[Objective]) -> Type[Objective]:
    """Registers an `Objective` subclass under its `name` and with Keras' serialization.

    Usable as a class decorator. A class already registered with
    `keras.saving.register_keras_serializable` keeps its registered name;
    otherwise it is registered under the package `"keras_adv"`.
    """
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise TypeError(f"`register` expects an Objective subclass, got {cls!r}.")
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty `name` class attribute to be registered.")
    _REGISTRY[cls.name] = cls
    if keras.saving.get_registered_object(keras.saving.get_registered_name(cls)) is not cls:
        keras.saving.register_keras_serializable(package="keras_adv")(cls)
    return cls


for _cls in (CrossEntropyMixture, Madry, Trades, Mart, VirtualAdversarialTraining):
    register(_cls)


def available():
    return sorted(_REGISTRY)


def check_serialized(serialized, custom_objects=None) -> None:
    """A serialized objective read from a file must name a registered `Objective` subclass.

    Raises:
        keras_adv.utils.trust.UntrustedConfigError: it names anything else (docs/trust_model.md).
    """
    registered = serialized.get("registered_name") or serialized.get("class_name") if isinstance(
        serialized, dict) else None
    try:
        cls = keras.saving.get_registered_object(str(registered), custom_objects=custom_objects)
    except Exception:  # noqa: BLE001 - a lookup failure is "not registered"
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise trust.UntrustedConfigError(
            f"`objective` in a saved config must be a registered objective name ({', '.join(available())}) "
            f"or a serialized registered Objective; got {registered if registered else type(serialized).__name__!r}."
        )


def get(objective) -> Objective:
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, str) and objective.lower() in _REGISTRY:
        return _REGISTRY[objective.lower()]()
    if isinstance(objective, dict):
        return deserialize(objective)
    raise ValueError(
        f"Unknown `objective`: {objective!r}. Expected one of {available()}, an Objective instance, "
        "or a serialized objective."
    )


def serialize(objective: Objective):
    """A built-in objective with default settings serializes to its name; others to a Keras config."""
    objective = get(objective)
    if _REGISTRY.get(objective.name) is type(objective) and not objective.get_config():
        return objective.name
    return keras.saving.serialize_keras_object(objective)


def deserialize(config, custom_objects=None) -> Objective:
    """Inverse of `serialize`: a name or a Keras config dict."""
    if isinstance(config, dict):
        objective = keras.saving.deserialize_keras_object(config, custom_objects=custom_objects)
        if not isinstance(objective, Objective):
            raise ValueError(f"The serialized objective did not load as an Objective: {objective!r}.")
        return objective
    return get(config)
