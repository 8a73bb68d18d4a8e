"""`AdversarialModel`: adversarial training as a drop-in `keras.Model`.

Public Keras 3 API only: the compiled loss is read through `Model.compute_loss`,
the compiled metrics through `Model.compute_metrics` / `Model.metrics`, and the
`adv_` metrics live in a private, compiled, weightless `keras.Model` that owns
its own copy of the compiled metrics (so Keras resolves `"accuracy"` the same
way for both). Version-specific behaviour (loss scaling under `tf.distribute`)
is in `keras_adv._compat`.
"""

from __future__ import annotations

import contextlib
import inspect
import io
from typing import Optional

import keras
import tensorflow as tf

from keras_adv import _compat
from keras_adv import attacks as attacks_lib
from keras_adv import losses as losses_lib
from keras_adv.attacks.attack import draw_seed
from keras_adv.utils.validation import check_number
from keras_adv.metrics.robustness import RobustnessMargin
from keras_adv.models import objectives as objectives_lib
from keras_adv.utils import data_checks, trust
from keras_adv.attacks.inner_layer import LayerPerturbation, check_attackable_input

__all__ = ["AdversarialModel"]

# Layers whose training-mode output for one example depends on the rest of the batch.
_BATCH_DEPENDENT_LAYERS = (keras.layers.BatchNormalization,)

# Layers whose output does not depend on `training` (no dropout, noise, batch statistics or
# augmentation): a model built only from these computes the same clean outputs in training and
# inference mode, so TRADES/VAT can take the attack's clean target from the training forward.
_TRAINING_INVARIANT_LAYERS = tuple(getattr(keras.layers, n) for n in (
    "InputLayer", "Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D",
    "Conv2DTranspose", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "Flatten", "Reshape", "Permute", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU",
    "Softmax", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
    "LayerNormalization", "Embedding", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",
    "UpSampling1D", "UpSampling2D", "Identity", "Rescaling", "Normalization",
) if hasattr(keras.layers, n))


def _clone_metrics(metrics):
    """Fresh copies of metric objects (strings stay strings) so clean and adv never share state."""
    if metrics is None:
        return None
    if isinstance(metrics, dict):
        return {k: _clone_metrics(v) for k, v in metrics.items()}
    if isinstance(metrics, (list, tuple)):
        return [_clone_metrics(m) for m in metrics]
    if isinstance(metrics, keras.metrics.Metric):
        return type(metrics).from_config(metrics.get_config())
    return metrics


class _AdvMetrics(keras.Model):
    """A weightless model compiled with a copy of the user's metrics, fed adversarial outputs.

    `keras.Model.compile` resolves metric names (`"accuracy"` -> sparse /
    categorical / binary accuracy from the shapes) exactly as for the wrapper,
    through public API; `compute_metrics` updates them.
    """

    def __init__(self, metrics, weighted_metrics):
        super().__init__(name="adv_metrics")
        self.compile(optimizer="sgd", loss=None, metrics=metrics, weighted_metrics=weighted_metrics)

    def call(self, inputs):  # never called: it only holds metrics
        return inputs

    @property
    def result_metrics(self):
        """The compiled metrics (Keras' own, never-fed `loss` tracker excluded)."""
        return [m for m in self.metrics if m.name != "loss"]


def _check_weights_in_strategy_scope(base_model):
    """Under a `tf.distribute` strategy's scope, the base model's weights must have been created there.

    Otherwise `fit` fails deep inside Keras with "`colocate_vars_with` must only be passed a
    variable created in this tf.distribute.Strategy.scope()".
    """
    if not tf.distribute.has_strategy():
        return
    strategy = tf.distribute.get_strategy()
    outside = [v.path for v in base_model.weights
               if not strategy.extended.variable_created_in_scope(getattr(v, "value", v))]
    if outside:
        raise ValueError(
            f"`base_model` was built outside `strategy.scope()` ({type(strategy).__name__}): its weights "
            f"({', '.join(outside[:3])}{', ...' if len(outside) > 3 else ''}) are not the strategy's. "
            "Build the base model inside the same `with strategy.scope():` block as the AdversarialModel "
            "and its `compile` (docs/distributed.md)."
        )


class _Untracked:
    """A box Keras' attribute tracking does not look into (the holder is not a sublayer)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


@keras.saving.register_keras_serializable(package="keras_adv")
class AdversarialModel(keras.Model):
    """Wraps any Keras model so that `fit` trains on clean *and* adversarial inputs.

    Every training step crafts adversarial examples against the current
    weights with `attack` (before the weight tape opens, so the attack's
    passes are not recorded), then minimises the objective, by default
    `L_clean + λ·L_adv` with the compiled loss.

    Example:

    ```python
    base = keras.Sequential([...])
    model = keras_adv.AdversarialModel(
        base, attack=keras_adv.attacks.PGD(epsilon=0.3, steps=10), adv_weight=1.0)
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=10)   # logs loss, clean_loss, adv_loss, accuracy,
                                 # adv_accuracy, robustness_margin
    ```

    Args:
        base_model: the model to make robust (Sequential, functional or
            subclassed), single output.
        attack: the training attack, a `keras_adv.attacks.Attack`.
        adv_weight: λ ≥ 0, the weight of the adversarial loss (β for
            TRADES/MART).
        objective: `"ce"` (`L_clean + λ·L_adv`), `"madry"` (pure
            adversarial training: `λ·L_adv`), `"trades"` (Zhang et al.
            2019: `L_clean + β·KL(f(x)‖f(x_adv))`, the attack maximising the
            KL), `"mart"` (Wang et al. 2020), or another registered
            `keras_adv.models.objectives.Objective` (instance or name).
        eval_attack: the attack used by `evaluate()`/validation; defaults to
            `attack` at its own ε (`attack.epsilon`), whatever ε schedule
            (`model.epsilon`) the training is at.
        seed: seed of the wrapper's random stream (random starts). Under a
            `tf.distribute` strategy the seed is folded with the replica id,
            so replicas attack their shards with different random starts.
        fuse_passes: run the clean and adversarial training forwards as one
            concatenated batch (one pass of the network instead of two).
            `None` (default): fuse on a GPU/TPU when the objective
            differentiates both passes and the base model has no
            batch-dependent layer (`BatchNormalization`), where fusing is
            exactly the same computation; on CPU two passes (measured faster
            there). `True`: fuse also with BatchNorm, which then
            normalises with the statistics of the mixed clean+adversarial
            batch and updates its moving averages once per step with them
            (the joint-statistics choice); `False`: two separate passes, BatchNorm
            normalising each half with its own statistics, as in the
            reference implementations of Madry et al. and TRADES.
        jit_compile_attack: compile the attack's loop with XLA inside the
            training and test steps (the rest of the step stays in graph
            mode, with its input checks). Off by default: on CPU, XLA was
            measured slower than the plain graph for conv nets; on a GPU the
            attack loop measured faster under XLA, after a first compilation
            of up to minutes (`benchmarks/results/gpu.md`). `compile(jit_compile=True)`
            (the whole step under XLA) is refused: XLA drops the step's input
            checks.
        perturb_layer: the name of an inner layer (typically the
            `Embedding` of a text model) whose output is attacked instead of
            the model input; see `keras_adv.attacks.inner_layer`. The attack's
            ε and norm then apply per sequence to the embedded input, its
            `bounds` are not applied there, padding (the layer's mask) is
            never perturbed, and the inputs may be token ids or strings.

    Attributes:
        epsilon: the training attack's current ε (a variable that schedules
            may change between steps without retracing).
        adv_weight: the current λ (a variable, likewise).
    """

    def __init__(
        self,
        base_model: keras.Model,
        attack: Optional[attacks_lib.Attack] = None,
        adv_weight: float = 1.0,
        objective="ce",
        eval_attack: Optional[attacks_lib.Attack] = None,
        seed: Optional[int] = None,
        fuse_passes: Optional[bool] = None,
        jit_compile_attack: bool = False,
        perturb_layer: Optional[str] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(base_model, keras.Model):
            raise TypeError(
                f"`base_model` must be a keras.Model, got {type(base_model).__name__}."
            )
        outputs = getattr(base_model, "outputs", None)
        if isinstance(outputs, (list, tuple)) and len(outputs) > 1:
            raise ValueError(
                "AdversarialModel supports single-output models only; `base_model` "
                f"has {len(outputs)} outputs. Wrap the output to attack in its own model."
            )
        if attack is None:
            raise ValueError(
                "`attack` is required, e.g. attack=keras_adv.attacks.PGD(epsilon=0.3, steps=10)."
            )
        self.base_model = base_model
        self.attack = attacks_lib.get(attack)
        if self.attack.epsilon is None:
            raise ValueError(
                "The training `attack` must have a finite `epsilon` budget; "
                f"got {self.attack!r}."
            )
        self.eval_attack = attacks_lib.get(eval_attack)
        data_checks.check_wrapper_attacks(self.attack, self.eval_attack)
        self._objective = objectives_lib.get(objective)
        self.objective = self._objective.name
        adv_weight = check_number("adv_weight", adv_weight, minimum=0.0)
        self.seed = None if seed is None else check_number("seed", seed, integer=True)
        self._perturbation = None
        if perturb_layer is not None:
            self._perturbation = LayerPerturbation(base_model, perturb_layer)
            perturb_layer = self._perturbation.layer_name
        self.perturb_layer = perturb_layer
        if fuse_passes not in (None, True, False):
            raise ValueError(f"`fuse_passes` must be None, True or False, got {fuse_passes!r}.")
        if jit_compile_attack not in (True, False):
            raise ValueError(f"`jit_compile_attack` must be True or False, got {jit_compile_attack!r}.")
        self.fuse_passes = fuse_passes
        self.jit_compile_attack = bool(jit_compile_attack)

        self._adv_weight = keras.Variable(adv_weight, trainable=False, name="adv_weight", dtype="float32")
        self._epsilon = keras.Variable(self.attack.epsilon, trainable=False, name="epsilon", dtype="float32")
        try:
            self._seed_generator = keras.random.SeedGenerator(self.seed, name="adversarial_seed")
        except ValueError:  # Keras < 3.1 takes no `name`
            self._seed_generator = keras.random.SeedGenerator(self.seed)
        self._total_loss_tracker = keras.metrics.Mean(name="loss")
        self._clean_loss_tracker = keras.metrics.Mean(name="clean_loss")
        self._adv_loss_tracker = keras.metrics.Mean(name="adv_loss")
        self._margin_tracker = RobustnessMargin(name="robustness_margin")
        self._adv_metrics = _Untracked(None)
        self._from_logits = None
        self._input_spec_shape = None
        self._xla_attacks = {}
        if base_model.built:  # a wrapper of a built model is built (BackupAndRestore needs it)
            self.built = True

    # ----------------------------------------------------------- schedules
    @property
    def adv_weight(self) -> float:
        return float(self._adv_weight.numpy())  # not np.asarray: NumPy 2 warns on a tf.Variable

    @adv_weight.setter
    def adv_weight(self, value):
        self._adv_weight.assign(check_number("adv_weight", value, minimum=0.0))

    @property
    def epsilon(self) -> float:
        return float(self._epsilon.numpy())

    @epsilon.setter
    def epsilon(self, value):
        self._epsilon.assign(check_number("epsilon", value, minimum=0.0))

    # -------------------------------------------------------------- model
    def call(self, inputs, training=None):
        outputs = self.base_model(inputs, training=training)
        if isinstance(outputs, (list, tuple, dict)):
            raise ValueError(
                "AdversarialModel supports single-output models only; `base_model` "
                f"returned {type(outputs).__name__} of outputs."
            )
        return outputs

    def build(self, input_shape):
        self._input_spec_shape = input_shape
        # A base without a build() of its own (a subclassed model) creates its weights on its first call, as
        # in plain Keras; calling Keras' default build() on it would only warn about its "unbuilt state".
        if not self.base_model.built and type(self.base_model).build is not keras.layers.Layer.build:
            self.base_model.build(input_shape)
        self.built = True

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, **kwargs):
        if isinstance(loss, (list, tuple, dict)):
            raise ValueError(
                "AdversarialModel supports single-output models only; got a "
                f"{type(loss).__name__} of losses."
            )
        # The whole step under XLA drops the step's in-graph input checks (XLA ignores Assert ops:
        # a bad label or a NaN batch then trains silently into NaN weights), so Keras' "auto"
        # (XLA whenever a GPU is visible) resolves to graph mode here, and True is refused.
        jit_compile = kwargs.pop("jit_compile", "auto")
        if jit_compile is True:
            raise ValueError(
                "AdversarialModel does not support `jit_compile=True`: XLA drops the training step's "
                "input checks (labels, bounds, NaN), so a bad batch would silently corrupt the weights. "
                "Compile the attack loop, where the time goes, with "
                "`AdversarialModel(..., jit_compile_attack=True)` instead (docs/training.md)."
            )
        if jit_compile not in ("auto", False, None):
            raise ValueError(f"`jit_compile` must be 'auto' or False, got {jit_compile!r}.")
        _check_weights_in_strategy_scope(self.base_model)
        losses_lib.check_loss_matches_outputs(loss, self.base_model)
        kwargs["jit_compile"] = False
        super().compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights,
                        metrics=metrics, weighted_metrics=weighted_metrics, **kwargs)
        adv_metrics = None
        if metrics is not None or weighted_metrics is not None:
            adv_metrics = _AdvMetrics(_clone_metrics(metrics), _clone_metrics(weighted_metrics))
        self._adv_metrics = _Untracked(adv_metrics)
        from_logits = None
        if isinstance(loss, keras.losses.Loss):
            from_logits = loss.get_config().get("from_logits")
        if from_logits is None:  # e.g. a loss by name: the base model's last layer may say
            from_logits = losses_lib.infer_from_logits(self.base_model)
        self._margin_tracker.from_logits = from_logits
        self._from_logits = from_logits

    def compile_from_config(self, config):
        """Re-compiles a loaded model (our `compile` is overridden, so Keras does not)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def _adv_result_metrics(self):
        holder = self._adv_metrics.value
        return [] if holder is None else holder.result_metrics

    @property
    def metrics(self):
        """`loss`, `clean_loss`, `adv_loss`, the compiled metrics, their `adv_` copies, `robustness_margin`."""
        if not self.compiled:
            return []
        own = [self._total_loss_tracker, self._clean_loss_tracker, self._adv_loss_tracker, self._margin_tracker]
        # Keras' own "loss" tracker is replaced by ours (the total actually optimised).
        compiled = [
            m for m in super().metrics
            if not any(m is o for o in own) and m.name != "loss"
        ]
        return own[:3] + compiled + self._adv_result_metrics + [self._margin_tracker]

    def get_metrics_result(self):
        """The logged values; the adversarial copies of compiled metrics are prefixed `adv_`."""
        adv = self._adv_result_metrics
        logs = {}
        for metric in self.metrics:
            prefix = "adv_" if any(metric is m for m in adv) else ""
            result = metric.result()
            if isinstance(result, dict):
                logs.update({prefix + k: v for k, v in result.items()})
            else:
                logs[prefix + metric.name] = result
        if tf.executing_eagerly():  # plain Python numbers, as Keras' own (3.0-3.7 relied on it)
            logs = {k: _to_python(v) for k, v in logs.items()}
        return logs

    # ---------------------------------------------------------- the steps
    def _attack_loss(self, attack, objective_loss=None):
        """The inner attack's loss: the objective's, else the compiled loss unless the attack names one."""
        if objective_loss is not None:
            return objective_loss
        compiled = getattr(self, "loss", None)
        if attack.loss is None and compiled is not None:
            return losses_lib.per_example(compiled)
        return None

    def _replica_seed(self):
        """A fresh seed; under a strategy with several replicas, folded with the replica id."""
        return _compat.replica_seed(draw_seed(self._seed_generator))

    def _craft(self, attack, x, y, epsilon, loss=None):
        """The adversarial input, or with `perturb_layer` the inner layer's perturbation δ."""
        if not (isinstance(x, dict) and getattr(attack, "accepts_dict_inputs", False)):
            # (a dict of named features is attacked through the attack's FeatureSpace)
            self._check_single_input(x)
        seed = self._replica_seed()
        if not self.jit_compile_attack:
            return self._run_attack(attack, x, y, epsilon, seed, loss)
        if self._perturbation is None and not isinstance(x, dict):
            # The attack's own input checks (bounds, NaN) are Asserts, which XLA drops: run them here.
            x = attack._validate_x(x)
        # XLA: the attack runs in its own jit-compiled function (built once per attack/loss).
        key = (id(attack), id(loss), epsilon is None)
        fn = self._xla_attacks.get(key)
        if fn is None:
            def run(x, y, epsilon, seed):
                return self._run_attack(attack, x, y, epsilon, seed, loss)

            fn = tf.function(run, jit_compile=True, autograph=False)
            self._xla_attacks[key] = fn
        if epsilon is not None:  # a Keras variable: pass its value
            epsilon = tf.identity(tf.cast(epsilon, tf.float32))
        return fn(x, y, epsilon, seed)

    def _run_attack(self, attack, x, y, epsilon, seed, loss):
        if self._perturbation is not None:
            return self._perturbation.craft(attack, x, y, epsilon=epsilon, seed=seed, loss=loss)
        return attack(self.base_model, x, y, epsilon=epsilon, seed=seed, loss=loss)

    def _adversarial_forward(self, x, x_adv, training):
        """Outputs on the adversarial input (`x_adv` is δ of the inner layer with `perturb_layer`)."""
        if self._perturbation is not None:
            return self._perturbation.forward(x, x_adv, training=training)
        return self(x_adv, training=training)

    def _check_single_input(self, x):
        if isinstance(x, (list, tuple, dict)):
            raise ValueError(
                "AdversarialModel attacks a single input tensor; got "
                f"{type(x).__name__} of inputs."
            )
        if self._perturbation is not None:
            return
        if x.dtype.is_integer or x.dtype == tf.string:
            check_attackable_input(x, self.perturb_layer)
        if not x.dtype.is_floating:
            raise TypeError(
                f"Inputs `x` must be floating point (scaled to the attack bounds), got "
                f"{x.dtype.name}. Convert integer images first, e.g. x.astype('float32') / 255."
            )

    def _regularization(self):
        """The sum of the `add_loss`/regularizer terms (None when there are none)."""
        terms = [tf.reduce_sum(tf.cast(t, tf.float32)) for t in self.losses]
        return tf.add_n(terms) if terms else None

    def _compiled_loss(self, y, y_pred, sample_weight, x=None, regularization=None):
        """The compiled loss alone (true per-replica value, no regularization)."""
        if getattr(self, "loss", None) is None:
            raise ValueError("No loss to optimise: pass `loss=` to `compile()`.")
        value = tf.cast(self.compute_loss(x, y, y_pred, sample_weight), tf.float32)
        if regularization is not None:  # compute_loss adds it; the objective adds it once itself
            value = value - regularization
        scale = _compat.keras_loss_scale()
        return value if scale == 1.0 else value / scale

    def _total_loss(self, x, y, y_clean, y_adv, sample_weight):
        extra = {}
        if _accepts(self._objective.__call__, "from_logits"):  # objectives written before the argument
            extra["from_logits"] = getattr(self, "_from_logits", None)
        regularization = self._regularization()

        def compiled_loss(y_true, y_pred, sw=None):
            return self._compiled_loss(y_true, y_pred, sw, x=x, regularization=regularization)

        total, clean, adv = self._objective(
            y=y, y_clean=y_clean, y_adv=y_adv, sample_weight=sample_weight,
            compiled_loss=compiled_loss, adv_weight=self._adv_weight, **extra,
        )
        if regularization is not None:  # regularisation, once
            total = total + regularization
        return total, clean, adv

    def _track(self, x, total, clean, adv):
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        self._total_loss_tracker.update_state(total, sample_weight=batch)
        self._clean_loss_tracker.update_state(clean, sample_weight=batch)
        self._adv_loss_tracker.update_state(adv, sample_weight=batch)

    def _loss_for_gradient(self, total):
        """The per-replica share of the mean loss (the optimizer sums replicas), loss-scaled."""
        replicas = _compat.num_replicas()
        if replicas > 1:
            total = total / replicas
        return self.optimizer.scale_loss(total) if self.optimizer is not None else total

    def _objective_attack_loss(self, x, y_clean=None):
        """The objective's inner loss; clean outputs it needs (TRADES) are computed without a tape
        (or given: the training forward's, see `_reuses_clean_forward`)."""
        objective = self._objective
        if objective.needs_clean_for_attack:
            self._check_single_input(x)
            y_clean = tf.stop_gradient(self(x, training=False) if y_clean is None else y_clean)
        else:
            y_clean = None
        if _accepts(objective.attack_loss, "from_logits"):
            return objective.attack_loss(y_clean, getattr(self, "_from_logits", None))
        return objective.attack_loss(y_clean)

    # ------------------------------------------------------ fit / evaluate
    # One definition each: data pre-checks inside the multi-worker workaround (a second `def fit` had dropped it).
    def fit(self, *args, **kwargs):
        """`keras.Model.fit`, with the data checked before the first step (see `keras_adv.utils.data_checks`);
        also under `MultiWorkerMirroredStrategy` (see `keras_adv._compat.multi_worker_fit`)."""
        with _compat.multi_worker_fit(self):
            return data_checks.guarded_call(self, super().fit, "fit", args, kwargs)

    def evaluate(self, *args, **kwargs):
        """`keras.Model.evaluate`, with the data checked before the first step; also multi-worker.

        Without `return_dict`, the values come in the order of `metrics_names`.
        """
        args = list(args)
        return_dict = bool(args.pop(7)) if len(args) > 7 else bool(kwargs.pop("return_dict", False))
        kwargs["return_dict"] = True
        with _compat.multi_worker_fit(self):
            logs = data_checks.guarded_call(self, super().evaluate, "evaluate", tuple(args), kwargs)
        if return_dict:
            return logs
        # Keras orders a list by the metrics' names, which for the compiled metrics and their adversarial
        # copies are the same ("accuracy" twice): the list held the clean accuracy twice and the
        # adversarial one last, out of step with `metrics_names`.
        names = self.metrics_names
        values = [logs[name] for name in names if name in logs]
        values += [value for name, value in logs.items() if name not in names]
        return values[0] if len(values) == 1 else values

    def train_on_batch(self, *args, **kwargs):
        """`keras.Model.train_on_batch`, with `fit`'s input checks (a plain error naming the argument)."""
        return data_checks.guarded_call(self, super().train_on_batch, "train_on_batch", args, kwargs)

    def test_on_batch(self, *args, **kwargs):
        """`keras.Model.test_on_batch`, with `evaluate`'s input checks (a plain error naming the argument)."""
        return data_checks.guarded_call(self, super().test_on_batch, "test_on_batch", args, kwargs)

    def predict(self, *args, **kwargs):
        """`keras.Model.predict`; token ids outside the perturbed Embedding's vocabulary raise a plain `ValueError`."""
        return data_checks.guarded_call(self, super().predict, "predict", args, kwargs)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(data_checks.token_id_checks(self, x), training=False)

    @property
    def metrics_names(self):
        """The names of the logged values, in the order of `evaluate`'s list: `loss`, `clean_loss`,
        `adv_loss`, the compiled metrics, their `adv_` copies, `robustness_margin`."""
        return list(self.get_metrics_result()) if self.compiled else []

    def _fuses(self):
        """Whether the clean and adversarial training forwards run as one concatenated batch."""
        if not self._objective.needs_clean_gradient or self.fuse_passes is False:
            return False
        if self.fuse_passes:
            return True
        # Auto: only on an accelerator (on a 2-core CPU one pass over the doubled batch measured
        # slower than two passes: benchmarks/results/fit_overhead.md), and only where fusing is
        # the very same computation. Batch statistics live in BatchNormalization (moving
        # statistics are non-trainable weights, so a model with none has no hidden
        # batch-statistics layer either, even inside custom layers).
        if not _compat.has_accelerator():
            return False
        base = self.base_model
        if base.non_trainable_weights:
            return False
        return not any(isinstance(layer, _BATCH_DEPENDENT_LAYERS) for layer in _all_layers(base))

    def _training_forwards(self, x, x_adv):
        """Clean and adversarial outputs in training mode: one fused pass, or two."""
        if self._perturbation is not None:  # x_adv is the inner layer's δ
            if self._fuses():
                n = tf.shape(x)[0]
                delta = tf.concat([tf.zeros_like(x_adv), x_adv], axis=0)
                both = self._perturbation.forward(tf.concat([x, x], axis=0), delta, training=True)
                return both[:n], both[n:]
            return self(x, training=True), self._adversarial_forward(x, x_adv, training=True)
        if self._fuses() and not isinstance(x, dict):  # (dicts of named features: two passes)
            n = tf.shape(x)[0]
            both = self(tf.concat([x, tf.cast(x_adv, x.dtype)], axis=0), training=True)
            return both[:n], both[n:]
        return self(x, training=True), self(x_adv, training=True)

    def _reuses_clean_forward(self, x):
        """Whether the attack's clean target (TRADES, VAT) can be the training forward's clean outputs.

        True where the two are the very same computation: a Keras Functional or Sequential model
        built only from layers whose output does not depend on `training` (no dropout, noise,
        batch statistics or augmentation), attacked on its input, and the clean and adversarial
        forwards not fused into one pass. Saves one forward pass per step.
        """
        objective = self._objective
        if not (objective.needs_clean_for_attack and objective.needs_clean_gradient):
            return False
        if self._perturbation is not None or isinstance(x, (dict, list, tuple)) or self._fuses():
            return False
        def keras_container(layer):  # Functional/Sequential; a subclassed model's call may use `training`
            return isinstance(layer, keras.Model) and type(layer).__module__.startswith("keras.")

        base = self.base_model
        return keras_container(base) and all(
            isinstance(layer, _TRAINING_INVARIANT_LAYERS) or keras_container(layer) for layer in _all_layers(base))

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y, sample_weight = data_checks.batch_checks(self, y, sample_weight)
        x = data_checks.token_id_checks(self, x)
        objective = self._objective
        reuse = self._reuses_clean_forward(x)
        if not reuse:
            attack_loss = self._attack_loss(self.attack, self._objective_attack_loss(x))
            x_adv = self._craft(self.attack, x, y, self._epsilon, attack_loss)

        y_clean_fixed = None
        if not objective.needs_clean_gradient:
            y_clean_fixed = self(x, training=False)
        with tf.GradientTape() as tape:
            if reuse:
                # The clean training forward first; it gives the attack its (stopped) clean
                # target, the attack running outside the tape's recording.
                y_clean = self(x, training=True)
                with tape.stop_recording():
                    attack_loss = self._attack_loss(self.attack, self._objective_attack_loss(x, y_clean))
                    x_adv = self._craft(self.attack, x, y, self._epsilon, attack_loss)
                y_adv = self(x_adv, training=True)
            elif y_clean_fixed is None:
                y_clean, y_adv = self._training_forwards(x, x_adv)
            else:
                y_clean, y_adv = y_clean_fixed, self._adversarial_forward(x, x_adv, training=True)
            total, clean, adv = self._total_loss(x, y, y_clean, y_adv, sample_weight)
            scaled = self._loss_for_gradient(total)
        self._track(x, total, clean, adv)
        data_checks.assert_finite_loss(total)
        weights = self.trainable_weights
        grads = tape.gradient(scaled, weights)
        self.optimizer.apply_gradients(zip(grads, weights))
        return self.compute_metrics(x, y, y_clean, sample_weight, y_pred_adv=y_adv)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y, sample_weight = data_checks.batch_checks(self, y, sample_weight)
        x = data_checks.token_id_checks(self, x)
        if self.eval_attack is not None:
            x_adv = self._craft(self.eval_attack, x, y, None, self._attack_loss(self.eval_attack))
        else:
            # The attack's own ε, the threat model, not the scheduled training ε (`self.epsilon`,
            # 0 during a DelayedStart): val_adv_* must mean the same thing every epoch.
            x_adv = self._craft(
                self.attack, x, y, None,
                self._attack_loss(self.attack, self._objective_attack_loss(x)),
            )
        y_clean = self(x, training=False)
        y_adv = self._adversarial_forward(x, x_adv, training=False)
        total, clean, adv = self._total_loss(x, y, y_clean, y_adv, sample_weight)
        self._track(x, total, clean, adv)
        return self.compute_metrics(x, y, y_clean, sample_weight, y_pred_adv=y_adv)

    def compute_metrics(self, x, y, y_pred, sample_weight=None, y_pred_adv=None):
        """Updates clean metrics with `y_pred` and `adv_` metrics with `y_pred_adv`."""
        if y_pred_adv is None:  # Keras' symbolic build passes clean outputs only.
            y_pred_adv = y_pred
        holder = self._adv_metrics.value
        if holder is not None:
            holder.compute_metrics(x, y, y_pred_adv, sample_weight)
        self._margin_tracker.update_state(y, y_pred, y_pred_adv, sample_weight)
        # Keras' own: updates the compiled (clean) metrics, returns `get_metrics_result()`.
        return super().compute_metrics(x, y, y_pred, sample_weight)

    # ------------------------------------------------------ serialization
    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "base_model": keras.saving.serialize_keras_object(self.base_model),
            "attack": keras.saving.serialize_keras_object(self.attack),
            "adv_weight": self.adv_weight,
            "objective": objectives_lib.serialize(self._objective),
            "eval_attack": (
                None if self.eval_attack is None else keras.saving.serialize_keras_object(self.eval_attack)
            ),
            "seed": self.seed,
        }
        if self.perturb_layer is not None:
            config["perturb_layer"] = self.perturb_layer
        # Written only when not the default, so configs from older versions stay identical.
        if self.fuse_passes is not None:
            config["fuse_passes"] = self.fuse_passes
        if self.jit_compile_attack:
            config["jit_compile_attack"] = True
        return config

    def save(self, filepath, *args, **kwargs):
        """Keras' `Model.save`, in the Keras format (`.keras`) only.

        Keras' legacy HDF5 format (`.h5`) cannot reload this wrapper (its
        loader does not know the attack, and the optimizer state does not
        match), so it is refused before anything is written. The network
        alone can go to HDF5: `model.base_model.save("robust.h5")`.
        """
        if str(filepath).lower().endswith((".h5", ".hdf5")):
            raise ValueError(
                f"`filepath` {str(filepath)!r} asks for Keras' legacy HDF5 format, which cannot reload an "
                "AdversarialModel (its attack and training state): save to a `.keras` file, or save the network "
                "alone with `model.base_model.save(...)`.")
        return super().save(filepath, *args, **kwargs)

    def save_own_variables(self, store):
        """Keras' own variables plus the seed generator's state, so a restored run continues its random stream."""
        super().save_own_variables(store)
        store["seed_generator_state"] = self._seed_generator.state.numpy()

    def load_own_variables(self, store):
        keys = list(store.keys())
        if "seed_generator_state" in keys:  # files written before it was saved load too
            self._seed_generator.state.assign(store["seed_generator_state"])
            store = {k: store[k] for k in keys if k != "seed_generator_state"}
        super().load_own_variables(store)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)  # the keras_adv parts are checked before anything is deserialized
        for field in ("attack", "eval_attack"):
            if config.get(field) is not None or field == "attack":
                trust.check_serialized_attack(config.get(field), field, custom_objects,
                                              attack_class=attacks_lib.Attack)
        if config.get("objective") is not None and not isinstance(config["objective"], str):
            objectives_lib.check_serialized(config["objective"], custom_objects)
        for field in ("base_model", "attack", "eval_attack"):  # errors name the field and the root cause
            if config.get(field) is not None:
                config[field] = trust.deserialize(field, config[field], custom_objects)
        config["objective"] = objectives_lib.deserialize(config.get("objective", "ce"), custom_objects)
        return cls(**config)

    # -------------------------------------------------------------- export
    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None,
               input_name: Optional[str] = None, **kwargs):
        """Exports the *base model's* inference graph as a SavedModel for TF Serving.

        The attack, the optimizer and the training state are not exported. The
        `serving_default` signature takes one input named `input_name`
        (default: the base model's input name, or `"inputs"`) and returns
        `{"predictions": ...}`. A functional base model with several inputs
        (a list, or a dict of named features as for tables) takes them as
        keyword inputs under the base model's input names.

        Args:
            filepath: the SavedModel directory to write.
            format: only `"tf_saved_model"`.
            verbose: `None` (default) prints one line with the path and the
                serving signature's input and output; `True` adds Keras' full
                listing (endpoints and every captured variable); `False` prints
                nothing.
            input_signature: optional `tf.TensorSpec` for the input; inferred
                from the base model otherwise.
            input_name: the serving input's name.
        """
        if format != "tf_saved_model":
            raise ValueError(f"`format` must be 'tf_saved_model', got {format!r}.")
        if verbose not in (None, True, False):
            raise ValueError(f"`verbose` must be None, True or False, got {verbose!r}.")
        base = self.base_model
        inputs = getattr(base, "inputs", None)
        if inputs and len(inputs) > 1:
            return self._export_inputs(filepath, base, verbose, input_signature, input_name)
        if input_signature is None:
            if inputs:
                shape, dtype = inputs[0].shape, inputs[0].dtype
            elif self._input_spec_shape is not None:
                shape, dtype = self._input_spec_shape, "float32"
            else:
                raise ValueError(
                    "Cannot infer the serving input shape: call the model on data first "
                    "or pass `input_signature=[tf.TensorSpec(...)]`."
                )
            if input_name is None:
                input_name = _meaningful_input_name(base)
            spec = tf.TensorSpec(shape=(None,) + tuple(shape)[1:], dtype=dtype, name=input_name)
        else:
            spec = input_signature[0] if isinstance(input_signature, (list, tuple)) else input_signature
            if input_name is not None:
                spec = tf.TensorSpec(spec.shape, spec.dtype, name=input_name)
        _write_serving(filepath, base, tf.TensorSpec(spec.shape, spec.dtype, name=spec.name or "inputs"), verbose)

    def _export_inputs(self, filepath, base, verbose, input_signature, input_name):
        """`export` of a functional base model with several inputs: one keyword input per model input."""
        names = [t.name for t in base.inputs]
        if input_signature is not None or input_name is not None:
            raise ValueError(
                f"The base model has {len(names)} inputs ({', '.join(names)}): the serving signature takes them "
                "under these names, so `input_signature` and `input_name` (for a single input) must be None.")
        if len(set(names)) != len(names):
            raise ValueError(f"The base model's inputs must have distinct names to be served, got {names}.")
        specs = keras.tree.map_structure(
            lambda t: tf.TensorSpec((None,) + tuple(t.shape)[1:], t.dtype, name=t.name), base.input)
        _write_serving(filepath, base, specs, verbose)


def _write_serving(filepath, base, signature, verbose):
    """Writes `base`'s `serve`/`serving_default` endpoint taking `signature` (a TensorSpec or a structure)."""
    archive = keras.export.ExportArchive()
    archive.track(base)

    def serve(inputs):
        return {"predictions": base(inputs, training=False)}

    fn = tf.function(serve, input_signature=[signature], autograph=False)
    archive.add_endpoint("serve", fn)
    archive.add_endpoint("serving_default", fn)
    # Keras' own listing only for verbose=True (Keras < 3.6 has no `verbose`; some versions print
    # the "Saved artifact" listing even with verbose=False).
    with contextlib.redirect_stdout(io.StringIO()) if not verbose else contextlib.nullcontext():
        if _accepts(archive.write_out, "verbose"):
            archive.write_out(filepath, verbose=bool(verbose))
        else:
            archive.write_out(filepath)
    if verbose is None:
        out = fn.get_concrete_function().structured_outputs["predictions"]
        inputs = ", ".join(f"{s.name}: {s.dtype.name}{_shape_str(s.shape)}" for s in keras.tree.flatten(signature))
        print(f"Saved the serving model to '{filepath}': serving_default({inputs}) -> "
              f"predictions: {out.dtype.name}{_shape_str(out.shape)}")


def _to_python(value):
    value = keras.ops.convert_to_numpy(value)
    return value.item() if value.ndim == 0 else value


def _shape_str(shape):
    return "[" + ", ".join("None" if d is None else str(d) for d in tf.TensorShape(shape).as_list()) + "]"


def _all_layers(model):
    """Every layer inside `model`, nested models included (public `layers` / `_flatten`-free walk)."""
    out, stack = [], list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        out.append(layer)
        stack.extend(getattr(layer, "layers", []) or [])
    return out


def _accepts(fn, name):
    """Whether `fn` takes keyword `name` (or **kwargs)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind == p.VAR_KEYWORD for p in params)


def _meaningful_input_name(base):
    try:
        name = base.inputs[0].name
    except (AttributeError, IndexError, TypeError):
        return "inputs"
    generic = ("input_layer", "keras_tensor", "input", "args")
    if not name or any(name.startswith(g) for g in generic):
        return "inputs"
    return name.split(":")[0]
