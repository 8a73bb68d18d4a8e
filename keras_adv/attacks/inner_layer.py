"""Perturbing the output of an inner layer (typically the `Embedding` of a text model).

Token ids are discrete, so the standard defence for text (Miyato, Dai &
Goodfellow 2017, "Adversarial Training Methods for Semi-Supervised Text
Classification") perturbs the *embedded* sequence instead of the input.
`LayerPerturbation` does this for any Keras model, Sequential, functional or
subclassed, without splitting or rebuilding it: while the model runs, the
named layer's output `e` is replaced by `e + m ⊙ δ`, where `m` is the
layer's padding mask (`Embedding(mask_zero=True)`; all ones for layers that
do not mask). Nothing else changes: downstream masks, `TextVectorization`
inside the model, shared weights and the exported inference graph are those
of the unmodified model.

Attacks run on the embedded sequence as their input: `craft` hands the attack
the clean layer output `e` and a callable `z ↦ model(x with the layer output
replaced by e + m ⊙ (z − e))`. The attack's `bounds` and input checks belong
to the model's *input* and are not applied to `e` (an embedding is not in
[0, 1]); its norm and ε apply per example to the whole embedded sequence, so
with `norm="l2"` the budget is the L2 norm over all (position, dimension)
entries of one sequence, as in Miyato et al. (their `_scale_l2` over the
sequence). Padding positions are masked out of the gradient and of the
returned perturbation, so `‖m ⊙ δ‖ ≤ ‖δ‖ ≤ ε`.
"""

from __future__ import annotations

import threading
from typing import Optional, Union

import keras
import tensorflow as tf

from keras_adv import _compat

__all__ = ["LayerPerturbation", "find_layer"]


def _children(layer):
    """The layers `layer` holds: its public `layers` (models), then its public attributes.

    Attributes are read from the instance (`vars`): a `Layer`, or a list,
    tuple or dict of them (nested). Names starting with `_` (Keras'
    bookkeeping) are skipped; a model's privately named sub-layers are in its
    public `layers` already.
    """
    out = list(getattr(layer, "layers", None) or [])
    pending = [v for k, v in getattr(layer, "__dict__", {}).items() if not k.startswith("_")]
    while pending:
        value = pending.pop(0)
        if isinstance(value, keras.layers.Layer):
            out.append(value)
        elif isinstance(value, dict):
            pending[:0] = list(value.values())
        elif isinstance(value, (list, tuple)):
            pending[:0] = list(value)
    return out


def _all_layers(model):
    """Every layer reachable from `model` (depth first, each once), layers nested in custom layers too.

    Besides a model's `layers` (top level only in Keras), the walk enters the
    layers held in public attributes of any layer (the keras.io
    `TokenAndPositionEmbedding` pattern: `self.token_emb = Embedding(...)`),
    with public Keras API only.
    """
    seen, out, stack = {id(model)}, [], _children(model)[::-1]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        out.append(layer)
        stack.extend(_children(layer)[::-1])
    return out


def embeddings_of(model):
    """The `Embedding` layers reachable from `model` (`_all_layers`); `[]` where it cannot be walked."""
    try:
        return [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.Embedding)]
    except (AttributeError, TypeError, ValueError):
        return []


def find_layer(model: keras.Model, layer: Union[str, keras.layers.Layer], *, argument="perturb_layer"):
    """Resolves `layer` (a name or a layer object) to a layer of `model`.

    Nested models are searched, and layers held in the public attributes of
    custom layers (e.g. the `token_emb` of a `TokenAndPositionEmbedding`).
    A name that is no layer's name is looked up as the name of such an
    attribute: `"token_emb"` finds keras.io's `self.token_emb = Embedding(...)`
    (whose layer name is Keras' automatic `"embedding"`).

    Raises:
        ValueError: no such layer; the message names `argument` and lists the
            layer names that exist.
    """
    layers = _all_layers(model)
    if isinstance(layer, keras.layers.Layer):
        if any(l is layer for l in layers):
            return layer
        raise ValueError(f"`{argument}`: layer {layer.name!r} is not a layer of model {model.name!r}.")
    if not isinstance(layer, str) or not layer:
        raise TypeError(f"`{argument}` must be a layer name (str) or a keras Layer, got {layer!r}.")
    matches = [l for l in layers if l.name == layer]
    if not matches:
        # A layer held in a public attribute of that name (keras.io's `self.token_emb = Embedding(...)`,
        # whose layer name is Keras' automatic "embedding").
        held = []
        for parent in [model] + layers:
            value = getattr(parent, "__dict__", {}).get(layer)
            if isinstance(value, keras.layers.Layer) and all(value is not h for h, _ in held):
                held.append((value, parent))
        if len(held) == 1:
            return held[0][0]
        if len(held) > 1:
            raise ValueError(
                f"`{argument}`={layer!r} is an attribute of several layers ("
                + ", ".join(f"{p.name}.{layer} = layer {h.name!r}" for h, p in held)
                + "): pass the layer itself, e.g. model.get_layer(...)." + layer + "."
            )
        names = [l.name for l in layers]
        raise ValueError(
            f"`{argument}`={layer!r} is neither the name of a layer of model {model.name!r} nor a public "
            f"attribute of one of its layers. Its layers are: {names}. Pass the layer object itself (e.g. "
            "model.get_layer('token_and_position_embedding').token_emb), or name the layer when you build it "
            "(keras.layers.Embedding(..., name='token_embedding')) and pass that name."
        )
    return matches[0]


def _mask_of(layer, args, kwargs):
    """The layer's output mask (bool, shape of the output without the last axis), or None."""
    if not args:
        return None
    try:
        mask = layer.compute_mask(args[0], kwargs.get("mask"))
    except Exception:  # layers whose compute_mask does not accept these inputs
        return None
    if mask is None or isinstance(mask, (list, tuple, dict)):
        return None
    return tf.cast(mask, tf.bool)


def _check_floating(layer, dtype, argument="perturb_layer"):
    if not tf.as_dtype(dtype).is_floating:
        raise TypeError(
            f"`{argument}`={layer.name!r} outputs {tf.as_dtype(dtype).name} values: an inner-layer "
            "attack needs a floating-point output (e.g. the Embedding, not the TextVectorization "
            "or another integer-valued layer)."
        )


class LayerPerturbation:
    """Adds a perturbation to one inner layer's output while a model runs.

    Example:

    ```python
    lp = keras_adv.attacks.inner_layer.LayerPerturbation(text_model, "embedding")
    delta = lp.craft(keras_adv.attacks.PGD(epsilon=1.0, norm="l2"), token_ids, labels)
    logits_adv = lp.forward(token_ids, delta)          # the model with e + m⊙δ
    ```

    Args:
        model: any Keras model containing the layer (Sequential, functional,
            subclassed; nested models are searched).
        layer: the layer's name, or the layer itself. Its output must be a
            single floating-point tensor, and it must run once per forward
            pass.
    """

    def __init__(self, model: keras.Model, layer: Union[str, keras.layers.Layer]):
        self.model = model
        self.layer = find_layer(model, layer)
        self.layer_name = self.layer.name
        # Known output dtype up front (built functional/Sequential models).
        try:
            output = self.layer.output
        except (AttributeError, ValueError, RuntimeError):
            output = None
        if output is not None and not isinstance(output, (list, tuple, dict)):
            _check_floating(self.layer, output.dtype)
        self._inner_attacks = {}
        self._lock = threading.RLock()

    # ----------------------------------------------------------- forwards
    def ensure_built(self, x):
        """Builds an unbuilt model (a subclassed one before its first call) by calling it once on `x[:1]`.

        Keras builds such a model inside its first call by running `call` an
        extra time; done before the layer is intercepted, that build pass is
        not mistaken for a second call of the layer (a shared layer).
        """
        if not getattr(self.model, "built", True):
            self.model(x[:1], training=False)

    def capture(self, x, training=False):
        """Runs the model once; returns `(outputs, layer_output, mask)`.

        `mask` is a float tensor shaped like `layer_output` without its last
        axis plus a trailing 1 (1 = may be perturbed, 0 = padding).
        """
        self.ensure_built(x)
        record = {}

        def hook(out, args, kwargs):
            self._check_output(out, record)
            record["out"] = out
            record["mask"] = _mask_of(self.layer, args, kwargs)
            return out

        with self._lock, _compat.intercept_layer_output(self.layer, hook):
            outputs = self.model(x, training=training)
        return outputs, record["out"], self._float_mask(record["out"], record["mask"])

    def forward(self, x, delta, training=False):
        """The model's outputs on `x` with the layer's output `e` replaced by `e + m ⊙ δ`."""
        self.ensure_built(x)
        record = {}

        def hook(out, args, kwargs):
            self._check_output(out, record)
            mask = self._float_mask(out, _mask_of(self.layer, args, kwargs))
            return out + tf.cast(mask, out.dtype) * tf.cast(delta, out.dtype)

        with self._lock, _compat.intercept_layer_output(self.layer, hook):
            return self.model(x, training=training)

    def _check_output(self, out, record):
        if isinstance(out, (list, tuple, dict)):
            raise TypeError(
                f"`perturb_layer`={self.layer_name!r} returns {type(out).__name__} of outputs; "
                "an inner-layer attack needs a layer with one tensor output."
            )
        _check_floating(self.layer, out.dtype)
        if record.get("called"):
            raise ValueError(
                f"`perturb_layer`={self.layer_name!r} runs more than once in one forward pass "
                "(a shared layer); perturb a layer that is called once."
            )
        record["called"] = True

    @staticmethod
    def _float_mask(out, mask):
        if mask is None:
            return tf.ones(tf.concat([tf.shape(out)[:-1], [1]], 0), tf.float32)
        return tf.cast(mask, tf.float32)[..., tf.newaxis]

    # -------------------------------------------------------------- attack
    def inner_attack(self, attack):
        """A copy of `attack` for the layer's output: an unbounded domain, no input-range checks.

        The budget (ε, norm) and every other hyper-parameter are unchanged.
        """
        key = id(attack)
        entry = self._inner_attacks.get(key)
        if entry is None or entry[0] is not attack:
            from keras_adv import domains

            config = dict(attack.get_config())
            config.pop("bounds", None)
            config.pop("domain", None)
            config["check_inputs"] = False
            clone = type(attack).from_config(config)
            clone.domain = domains.Box(-float("inf"), float("inf"))
            entry = (attack, clone)
            self._inner_attacks[key] = entry
        return entry[1]

    def craft(self, attack, x, y, *, epsilon=None, seed=None, loss=None):
        """Runs `attack` on the layer's output for inputs `x`; returns the perturbation δ.

        δ has the layer output's shape, is zero at padding positions, obeys
        the attack's budget per example and carries no gradient.
        """
        _, e, mask = self.capture(x, training=False)
        e = tf.stop_gradient(tf.cast(e, tf.float32))
        mask = tf.stop_gradient(mask)

        def head(z, training=False):
            # stop_gradient *inside* the call: `z` may be `e` itself (an attack's first
            # step), and `e − e` would cancel the gradient w.r.t. the watched tensor.
            return self.forward(x, z - tf.stop_gradient(e), training=training)

        z_adv = self.inner_attack(attack)(head, e, y, epsilon=epsilon, seed=seed, loss=loss)
        return tf.stop_gradient((z_adv - e) * mask)

    def gradient(self, attack, x, y, loss_fn):
        """`(grad, objective, outputs, e, mask)`: the attack objective's gradient w.r.t. the layer output."""
        _, e, mask = self.capture(x, training=False)
        e = tf.stop_gradient(tf.cast(e, tf.float32))

        def head(z, training=False):
            # stop_gradient *inside* the call: `z` may be `e` itself (an attack's first
            # step), and `e − e` would cancel the gradient w.r.t. the watched tensor.
            return self.forward(x, z - tf.stop_gradient(e), training=training)

        grad, objective, outputs = attack.input_gradient(head, e, y, loss_fn)
        return grad * mask, objective, outputs, e, mask


def check_attackable_input(x, perturb_layer: Optional[str]):
    """A clear error for integer/string inputs given to an input-space attack."""
    dtype = tf.as_dtype(x.dtype)
    if dtype.is_floating:
        return
    kind = "strings" if dtype == tf.string else f"{dtype.name} values (token ids?)"
    raise TypeError(
        f"Inputs `x` are {kind}: an input-space attack needs floating point inputs. For a text "
        "model pass `perturb_layer=` (e.g. perturb_layer='embedding') to attack the embedded "
        "sequence; keras_adv.attacks.HotFlip attacks the token ids themselves (for evaluation)."
    )

