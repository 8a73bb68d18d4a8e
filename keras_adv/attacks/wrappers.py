"""Attack wrappers that defeat obfuscated gradients: BPDA and EOT.

Athalye, Carlini & Wagner (2018), "Obfuscated Gradients Give a False Sense of
Security", name three ways a defence can hide its gradients without being
robust: *shattered* gradients (non-differentiable or numerically unstable
layers), *stochastic* gradients (randomness at inference) and *vanishing or
exploding* gradients. Two of their remedies are model transformations, so here
they are attack wrappers that change the model the wrapped attack sees and
nothing else: the attack's own loop (PGD, APGD, C&W, ...) runs unchanged.

* `BPDA` (Backward Pass Differentiable Approximation): named layers run their
  real forward pass, but the backward pass is the gradient of a substitute,
  the identity by default (straight-through).
* `EOT` (Expectation over Transformation): the attack targets the average
  prediction over `samples` draws of a randomised model or of a random
  transformation of the input, whose gradient is the average of the per-draw
  gradients. Decisions of a randomised model are judged on the same average
  (`EOT.wrap_model`).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import keras
import tensorflow as tf

from keras_adv.attacks.attack import Attack
from keras_adv.utils.validation import check_number

__all__ = ["BPDA", "EOT", "substitute_layers", "ExpectationModel"]


# ------------------------------------------------------------- model surgery
def _is_graph_model(layer) -> bool:
    """A Sequential or functional model (its layer graph can be rebuilt), not a subclassed one."""
    if isinstance(layer, keras.Sequential):
        return True
    return isinstance(layer, keras.Model) and hasattr(layer, "_run_through_graph")


def _all_layers(model):
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        if isinstance(layer, keras.Model):
            out.extend(_all_layers(layer))
    return out


def rebuild(model: keras.Model, wrap: Callable, select: Callable) -> keras.Model:
    """The same computation as `model`, with some layer calls wrapped (in nested models too).

    Layers are reused (weights shared, nothing copied). Each call of a layer
    `select(layer)` accepts, with a single tensor input `x` and output `y`,
    is replaced by `wrap(layer, x, y)` (a KerasTensor). `select` is asked
    about `keras.layers.Layer`s only: the other operations of a functional
    graph (`keras.ops` calls, such as the `NotEqual` that computes the mask
    of an `Embedding(mask_zero=True)`) are re-run unchanged. Functional models are
    rebuilt through `keras.models.clone_model(..., call_function=...)`,
    Sequential ones layer by layer, nested models that contain a selected
    layer recursively; a subclassed model is called as one opaque layer (an
    error if a selected layer lies inside it).
    """

    def call_fn(layer, *args, **kwargs):
        if isinstance(layer, keras.Model):
            if _is_graph_model(layer) and any(select(l) for l in _all_layers(layer)):
                return _rebuild(layer)(*args, **kwargs)
            hidden = [l.name for l in _all_layers(layer) if select(l)]
            if hidden:
                raise ValueError(
                    f"layers {hidden} lie inside the subclassed model {layer.name!r}, whose layer "
                    "graph cannot be rebuilt: build the model with the functional or Sequential API, "
                    "or substitute the subclassed model as a whole (by its name)."
                )
        out = layer(*args, **kwargs)
        if isinstance(layer, keras.layers.Layer) and select(layer):
            if len(args) != 1 or not isinstance(args[0], keras.KerasTensor) or not isinstance(out, keras.KerasTensor):
                raise ValueError(f"layer {layer.name!r} must take one tensor and return one tensor.")
            out = wrap(layer, args[0], out)
        return out

    def _rebuild(m):
        if not isinstance(m, keras.Sequential):
            return keras.models.clone_model(m, clone_function=lambda l: l, call_function=call_fn)
        try:
            spec = m.inputs[0]
        except (AttributeError, IndexError, ValueError):
            raise ValueError(f"the Sequential model {m.name!r} is not built: give it an Input.") from None
        inputs = keras.Input(batch_shape=tuple(spec.shape), dtype=spec.dtype)
        h = inputs
        for layer in m.layers:
            h = call_fn(layer, h)
        return keras.Model(inputs, h, name=m.name)

    if not _is_graph_model(model):
        raise ValueError(
            f"the model {getattr(model, 'name', model)!r} is a subclassed model, whose layer graph "
            "cannot be rebuilt: build it with the functional or Sequential API (or wrap the "
            "non-differentiable operation yourself with `keras_adv.attacks.BPDA.straight_through`)."
        )
    if len(model.inputs) != 1:
        raise ValueError(f"the model {model.name!r} must have a single input, has {len(model.inputs)}.")
    with tf.init_scope():  # built eagerly even when first needed inside a tf.function trace
        return _rebuild(model)


def _straight_through(x, y, substitute):
    """Forward: `y` exactly; backward: the vector-Jacobian product of `substitute` at `x` (identity if None)."""

    @tf.custom_gradient
    def op(x):
        def grad(dy):
            if substitute is None:
                return tf.cast(dy, x.dtype)
            with tf.GradientTape() as tape:
                tape.watch(x)
                approx = substitute(x)
            g = tape.gradient(approx, x, output_gradients=tf.cast(dy, approx.dtype))
            if g is None:
                raise ValueError("a BPDA substitute must be differentiable; its gradient is None.")
            return g

        return tf.identity(tf.stop_gradient(y)), grad

    return op(x)


class _BackwardSubstitute(keras.layers.Layer):
    """`[x, y] -> y` whose gradient with respect to `x` is that of `substitute(x)`."""

    def __init__(self, substitute=None, **kwargs):
        super().__init__(**kwargs)
        self.substitute = substitute
        self.supports_masking = True  # `y`'s mask (an Embedding's padding) goes on downstream

    def call(self, inputs):
        x, y = inputs
        return _straight_through(x, tf.cast(y, x.dtype), self.substitute)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[1].shape, dtype=inputs[0].dtype)

    def compute_mask(self, inputs, mask=None):
        return mask[1] if isinstance(mask, (list, tuple)) else mask


class _Apply(keras.layers.Layer):
    """`x -> fn(x)`: a substitute replacing a layer in the forward pass too."""

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn

    def call(self, x):
        return self.fn(x)


def substitute_layers(model: keras.Model, substitutes: Mapping[str, Optional[Callable]],
                      replace_forward: Sequence[str] = ()) -> keras.Model:
    """A model with `model`'s forward pass whose named layers back-propagate through substitutes.

    Args:
        model: a functional or Sequential Keras model (nested models allowed).
        substitutes: `{layer name: None or callable}` (a key that names no
            layer may name a layer class, e.g. `"Quantize"`: every layer of
            that class). `None` is the identity (straight-through estimator);
            a callable `g(x)` of the layer's input is a differentiable
            approximation whose gradient replaces the layer's.
        replace_forward: names (among `substitutes`) whose substitute replaces
            the forward pass as well: the rebuilt model is then a surrogate,
            e.g. with a saturated softmax removed to expose its logits.

    Returns:
        A Keras model sharing `model`'s layers and weights: identical outputs
        (except through `replace_forward` layers), BPDA gradients.
    """
    if not _is_graph_model(model):
        rebuild(model, None, None)  # the clear "subclassed model" error
    layers = _all_layers(model)
    names = {l.name for l in layers}
    classes = {type(l).__name__ for l in layers}
    replace_forward = set(replace_forward)
    missing = sorted((set(substitutes) | replace_forward) - names - classes)
    if missing:
        raise ValueError(f"`substitutes` names layers {missing} that the model does not have; its layers "
                         f"are {sorted(names)} (classes {sorted(classes)}).")
    stray = sorted(replace_forward - set(substitutes))
    if stray:
        raise ValueError(f"`replace_forward` names {stray}, which are not in `substitutes`.")

    def key(layer):  # a layer's own name first, else its class name
        return layer.name if layer.name in substitutes else type(layer).__name__

    def wrap(layer, x, y):
        k = key(layer)
        sub = substitutes[k]
        if sub is None and tuple(x.shape) != tuple(y.shape):
            raise ValueError(
                f"layer {layer.name!r} changes the shape {tuple(x.shape)} -> {tuple(y.shape)}: the "
                "identity cannot substitute it; give a differentiable approximation in `substitutes`."
            )
        if k in replace_forward:
            return x if sub is None else _Apply(sub, name=f"surrogate_{layer.name}")(x)
        return _BackwardSubstitute(sub, name=f"bpda_{layer.name}")([x, y])

    return rebuild(model, wrap, lambda l: l.name in substitutes or type(l).__name__ in substitutes)


# ---------------------------------------------------------- expectation model
def _probabilities(outputs):
    """Class probabilities from logits or probabilities (auto-detected like the losses)."""
    from keras_adv import losses as losses_lib

    outputs = tf.cast(outputs, tf.float32)
    if outputs.shape[-1] == 1:
        in_unit = tf.reduce_all((outputs >= 0.0) & (outputs <= 1.0))
        return tf.where(in_unit, outputs, tf.sigmoid(outputs))
    return tf.exp(losses_lib.to_log_probs(outputs))


@keras.saving.register_keras_serializable(package="keras_adv")
class ExpectationModel(keras.Model):
    """`x -> mean over samples of the class probabilities of model(t(x))` (EOT's attacked function).

    A `keras.Model`: call it on a batch, or use `predict`, `evaluate` (after
    `compile`, with a loss on probabilities, e.g.
    `keras.losses.SparseCategoricalCrossentropy()`), `summary` and `save`.
    Its outputs are class probabilities (one unit: the averaged sigmoid
    probability), whatever `model` outputs.

    Args:
        model: the (possibly randomised) classifier.
        samples: number of draws averaged per call.
        transformation: optional random transformation `t(x, seed)` applied
            before the model, `seed` a stateless int32 seed of shape (2,)
            (a registered serializable function, for `save`).
        seeds: optional fixed seeds, int32 `(samples, 2)`, for `transformation`
            (exact reproducibility); else fresh seeds are drawn on each call from
            a `keras.random.SeedGenerator(seed)`.
        seed: seed of that generator (constructed eagerly, outside `tf.function`).
        vary_with_input: with fixed `seeds`, fold a hash of the input into them,
            so that each attack iterate sees fresh but reproducible draws.
    """

    def __init__(self, model, samples: int, transformation=None, seeds=None, seed=None,
                 vary_with_input: bool = False, **kwargs):
        if not callable(model):
            raise TypeError(f"`model` must be a Keras model, got {type(model).__name__}.")
        samples = check_number("samples", samples, minimum=1, integer=True)
        transformation = _deserialize_fn(transformation)
        if transformation is not None and not callable(transformation):
            raise TypeError(f"`transformation` must be a callable t(x, seed), got {transformation!r}.")
        seeds = None if seeds is None else tf.cast(tf.convert_to_tensor(seeds), tf.int32)
        if seeds is not None and (seeds.shape.rank != 2 or seeds.shape[0] != samples or seeds.shape[1] != 2):
            raise ValueError(f"`seeds` must have shape (samples={samples}, 2), got {seeds.shape}.")
        inner = re.sub(r"[^A-Za-z0-9_.-]", "_", str(getattr(model, "name", type(model).__name__)))
        kwargs.setdefault("name", f"eot{samples}_{inner}")  # a valid Keras name scope
        super().__init__(**kwargs)
        self.model = model
        self.vary_with_input = bool(vary_with_input)
        self.samples = samples
        self.transformation = transformation
        self.seeds = seeds
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed) if transformation is not None and seeds is None else None
        self.built = bool(getattr(model, "built", True))  # no weights of its own

    def with_model(self, model) -> "ExpectationModel":
        """The same expectation (samples, transformation, seeds) over another model."""
        out = ExpectationModel(model, self.samples, self.transformation, seeds=self.seeds,
                               vary_with_input=self.vary_with_input, name=self.name)
        out._seed_generator = self._seed_generator  # the same stream of draws: nothing created here
        return out

    def _draw_seeds(self):
        if self.seeds is not None:
            return self.seeds
        return tf.cast(keras.random.randint((self.samples, 2), 0, 2**31 - 1, seed=self._seed_generator,
                                            dtype="int32"), tf.int32)

    def call(self, x, training=False):
        seeds = self._draw_seeds() if self.transformation is not None else None
        if seeds is not None and self.vary_with_input and self.seeds is not None:
            # Fresh, reproducible draws at each attack step without state: fold the iterate in.
            salt = tf.bitcast(tf.reduce_sum(tf.cast(x, tf.float32)), tf.int32)
            seeds = tf.map_fn(lambda s: tf.random.experimental.stateless_fold_in(s, salt), seeds)
        total = 0.0
        for i in range(self.samples):
            xi = self.transformation(x, seeds[i]) if seeds is not None else x
            total = total + _probabilities(self.model(xi, training=training))
        return total / float(self.samples)

    def compute_output_spec(self, x, training=False):
        out = self.model.compute_output_spec(x)
        return keras.KerasTensor(out.shape, dtype="float32")

    def get_config(self):
        return {
            **super().get_config(),
            "model": keras.saving.serialize_keras_object(self.model),
            "samples": self.samples,
            "transformation": _serialize_fn(self.transformation),
            "seeds": None if self.seeds is None else self.seeds.numpy().tolist(),
            "seed": self.seed,
            "vary_with_input": self.vary_with_input,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


# ---------------------------------------------------------------- wrappers
class _AttackWrapper(Attack):
    """An attack that runs `attack` against a transformed model. Threat model and seed are `attack`'s."""

    def __init__(self, attack, *, name: Optional[str] = None):
        from keras_adv import attacks as attacks_lib

        if isinstance(attack, dict):
            attack = keras.saving.deserialize_keras_object(attack)
        attack = attacks_lib.get(attack)
        if attack is None:
            raise ValueError("`attack` is required: the attack to run, e.g. keras_adv.attacks.PGD(0.1).")
        self.attack = attack  # first: the capability properties below read it during __init__
        self.allows_unbounded = attack.allows_unbounded
        super().__init__(epsilon=attack.epsilon, norm=attack.norm, domain=attack.domain,
                         targeted=attack.targeted, loss=attack.loss, seed=attack.seed,
                         check_inputs=attack.check_inputs, name=name)

    def __getattr__(self, item):
        # Hyper-parameters and capabilities of the wrapped attack (steps, restarts, ...).
        attack = self.__dict__.get("attack")
        if attack is None or item.startswith("_"):  # private state (caches) is never shared
            raise AttributeError(item)
        return getattr(attack, item)

    # Capabilities are the wrapped attack's.
    gradient_free = property(lambda self: self.attack.gradient_free)
    minimal_perturbation = property(lambda self: self.attack.minimal_perturbation)
    supported_norms = property(lambda self: self.attack.supported_norms)
    requires_images = property(lambda self: self.attack.requires_images)
    restarts = property(lambda self: getattr(self.attack, "restarts", 1))

    def wrap_model(self, model):
        raise NotImplementedError

    def _attacked_model(self, model, seed):
        return self.wrap_model(model)

    def perturb_with_restarts(self, model, x, y, epsilon, seed, loss_fn):
        # The wrapped attack's own restart rule, against the transformed model.
        return self.attack.perturb_with_restarts(self._attacked_model(model, seed), x, y, epsilon, seed, loss_fn)

    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        return self.attack.perturb(self._attacked_model(model, seed), x, y, epsilon, seed, loss_fn)

    def get_config(self):
        return {"attack": keras.saving.serialize_keras_object(self.attack), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        extra = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k not in ("attack", "name"))
        return f"keras_adv.attacks.{type(self).__name__}({self.attack!r}{', ' + extra if extra else ''})"


def _serialize_fn(fn):
    return None if fn is None else keras.saving.serialize_keras_object(fn)


def _deserialize_fn(fn):
    return keras.saving.deserialize_keras_object(fn) if isinstance(fn, (dict, str)) else fn


@keras.saving.register_keras_serializable(package="keras_adv")
class BPDA(_AttackWrapper):
    """Backward Pass Differentiable Approximation (Athalye, Carlini & Wagner
    2018, "Obfuscated Gradients Give a False Sense of Security", §4.1).

    Runs `attack` against the model with the named layers' *forward* pass
    unchanged and their *backward* pass replaced by the gradient of a
    substitute: the identity by default (the straight-through estimator, right
    for rounding, quantisation, JPEG-like compression and other preprocessing
    that approximately preserves its input), or a differentiable approximation
    `g(x)` of the layer. The attacked model is rebuilt once per model with
    the same layers (weights shared); its outputs equal the model's.

    Example:

    ```python
    attack = keras_adv.attacks.BPDA(
        keras_adv.attacks.PGD(epsilon=0.1, steps=40),
        substitutes={"quantize": None, "jpeg": None})
    x_adv = attack(defended_model, x, y)
    ```

    Args:
        attack: the attack to run (any `keras_adv.attacks.Attack`).
        substitutes: `{layer name: None | callable}`, or a list of layer names
            (all identity); a key that names no layer may name a layer class
            (every layer of that class). Layers may sit inside nested
            functional or Sequential models. `keras_adv.evaluation.diagnostics.probe_layers`
            finds the layers whose gradient is missing, zero or inconsistent.
        replace_forward: layers (among `substitutes`) whose substitute also
            replaces the forward pass *inside the attack*: the attack then
            optimises against a surrogate, e.g. a saturated softmax removed to
            expose the logits (Carlini & Wagner 2016, "Defensive Distillation
            is Not Robust to Adversarial Examples"). Whether the result fools
            the real model is judged by the caller (`evaluate_robustness`
            predicts with the real model).
        name: a name for reports.
    """

    def __init__(self, attack, *, substitutes: Union[Mapping[str, Any], Sequence[str]],
                 replace_forward: Sequence[str] = (), name=None):
        super().__init__(attack, name=name)
        if name is None:
            self.name = f"BPDA({self.attack.name})"
        if isinstance(substitutes, str) or substitutes is None:
            raise TypeError("`substitutes` must be a dict {layer name: None or callable} or a list of "
                            f"layer names, got {substitutes!r}.")
        if not isinstance(substitutes, Mapping):
            substitutes = {str(n): None for n in substitutes}
        if not substitutes:
            raise ValueError("`substitutes` must name at least one layer.")
        subs = {}
        for k, v in substitutes.items():
            v = _deserialize_fn(v)
            if v is not None and not callable(v):
                raise TypeError(f"`substitutes[{k!r}]` must be None (identity) or a callable, got {v!r}.")
            subs[str(k)] = v
        self.substitutes = subs
        if isinstance(replace_forward, str):
            raise TypeError(f"`replace_forward` must be a list of layer names, got {replace_forward!r}.")
        self.replace_forward = [str(n) for n in replace_forward]
        stray = sorted(set(self.replace_forward) - set(subs))
        if stray:
            raise ValueError(f"`replace_forward` names {stray}, which are not in `substitutes`.")
        self._models = None

    @staticmethod
    def straight_through(x, y, substitute: Optional[Callable] = None):
        """`y` in the forward pass, the gradient of `substitute(x)` (identity: `x`) in the backward pass."""
        return _straight_through(x, y, substitute)

    def wrap_model(self, model):
        """The BPDA model: `model`'s outputs, gradients through the substitutes (built once per model)."""
        import weakref

        if isinstance(model, ExpectationModel):  # EOT outside, BPDA inside each draw
            return model.with_model(self.wrap_model(model.model))
        if self._models is None:
            self._models = weakref.WeakKeyDictionary()
        wrapped = self._models.get(model)
        if wrapped is None:
            wrapped = substitute_layers(model, self.substitutes, self.replace_forward)
            self._models[model] = wrapped
        return wrapped

    def get_config(self):
        return {**super().get_config(),
                "substitutes": {k: _serialize_fn(v) for k, v in self.substitutes.items()},
                "replace_forward": list(self.replace_forward)}


@keras.saving.register_keras_serializable(package="keras_adv")
class EOT(_AttackWrapper):
    """Expectation over Transformation (Athalye, Engstrom, Ilyas & Kwok 2018,
    "Synthesizing Robust Adversarial Examples"; Athalye, Carlini & Wagner 2018,
    §4.3).

    Runs `attack` against the *expected* prediction of a randomised model,
    `E[softmax(model(t(x)))]` estimated from `samples` draws per call: the
    model's own randomness (noise, random resizing or dropout at inference)
    and, when given, a random `transformation(x, seed)` of the input. The
    gradient the attack follows is therefore the average of the per-draw
    gradients, and the attack's success is judged on the averaged
    prediction, which is also how a randomised defence should be scored
    (`EOT.wrap_model(model)` gives that averaged classifier).

    Example:

    ```python
    attack = keras_adv.attacks.EOT(keras_adv.attacks.PGD(epsilon=0.1, steps=40), samples=16)
    x_adv = attack(randomised_model, x, y)
    ```

    Args:
        attack: the attack to run.
        samples: draws averaged per forward pass (≥ 1).
        transformation: optional random input transformation `t(x, seed)`
            (a registered serializable function), `seed` a stateless int32
            seed of shape (2,).
        fixed_seeds: when True, the `samples` transformation seeds are drawn
            once per attack call (from the attack's stateless seed) and reused
            at every step; otherwise every step sees fresh, reproducible draws
            (the seeds with a hash of the current iterate folded in).
        name: a name for reports.
    """

    def __init__(self, attack, *, samples: int = 8, transformation=None, fixed_seeds: bool = False, name=None):
        super().__init__(attack, name=name)
        self.samples = check_number("samples", samples, minimum=1, integer=True)
        if name is None:
            self.name = f"EOT({self.attack.name}, {self.samples})"
        transformation = _deserialize_fn(transformation)
        if transformation is not None and not callable(transformation):
            raise TypeError(f"`transformation` must be a callable t(x, seed), got {transformation!r}.")
        self.transformation = transformation
        self.fixed_seeds = bool(fixed_seeds)

    def wrap_model(self, model, seeds=None):
        """The averaged classifier `E[softmax(model(t(x)))]` over `samples` draws, a `keras.Model`.

        Its outputs are probabilities: call it, `predict` with it, or
        `compile` it with a loss on probabilities (e.g.
        `keras.losses.SparseCategoricalCrossentropy()`) and `evaluate`;
        `save` stores it with `model` (a transformation must be a
        registered serializable function).

        Args:
            model: the randomised classifier.
            seeds: optional fixed transformation seeds `(samples, 2)`.
        """
        return ExpectationModel(model, self.samples, self.transformation, seeds=seeds, seed=self.seed)

    def _attacked_model(self, model, seed):
        seeds = None
        if self.transformation is not None:
            seeds = tf.random.experimental.stateless_split(seed, self.samples)
        return ExpectationModel(model, self.samples, self.transformation, seeds=seeds,
                                vary_with_input=not self.fixed_seeds)

    def get_config(self):
        return {**super().get_config(), "samples": self.samples,
                "transformation": _serialize_fn(self.transformation), "fixed_seeds": self.fixed_seeds}
