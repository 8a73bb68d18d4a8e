"""`AdversarialModel`: adversarial training as a drop-in `keras.Model`."""

from __future__ import annotations

import copy
import inspect
from typing import Optional

import keras
import tensorflow as tf
from keras.src.losses import loss as _keras_loss_module
from keras.src.trainers.compile_utils import CompileMetrics
from keras.src.utils.tracking import no_automatic_dependency_tracking

from keras_adv import attacks as attacks_lib
from keras_adv import losses as losses_lib
from keras_adv.attacks.attack import _check_number, draw_seed
from keras_adv.metrics.robustness import RobustnessMargin
from keras_adv.models import objectives as objectives_lib
from keras_adv.utils import data_checks, trust

__all__ = ["AdversarialModel"]


class _PrefixedCompileMetrics(CompileMetrics):
    """Compiled metrics whose results are reported under a prefix (`adv_accuracy`)."""

    def __init__(self, metrics, weighted_metrics, prefix, output_names=None):
        super().__init__(metrics, weighted_metrics, name=f"{prefix}compile_metric", output_names=output_names)
        self.prefix = prefix

    def result(self):
        return {f"{self.prefix}{k}": v for k, v in super().result().items()}


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
            `attack`.
        seed: seed of the wrapper's random stream (random starts).

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
        self.objective = objectives_lib.get(objective).name
        self._objective = objectives_lib.get(objective)
        adv_weight = _check_number("adv_weight", adv_weight, minimum=0.0)
        self.seed = None if seed is None else _check_number("seed", seed, integer=True)

        self._adv_weight = keras.Variable(adv_weight, trainable=False, name="adv_weight", dtype="float32")
        self._epsilon = keras.Variable(self.attack.epsilon, trainable=False, name="epsilon", dtype="float32")
        self._seed_generator = keras.random.SeedGenerator(self.seed, name="adversarial_seed")
        self._clean_loss_tracker = keras.metrics.Mean(name="clean_loss")
        self._adv_loss_tracker = keras.metrics.Mean(name="adv_loss")
        self._margin_tracker = RobustnessMargin(name="robustness_margin")
        self._adv_compile_metrics = None
        self._from_logits = None
        if base_model.built:  # a wrapper of a built model is built (BackupAndRestore needs it)
            self.built = True

    # ----------------------------------------------------------- schedules
    @property
    def adv_weight(self) -> float:
        return float(keras.ops.convert_to_numpy(self._adv_weight.value))

    @adv_weight.setter
    def adv_weight(self, value):
        self._adv_weight.assign(_check_number("adv_weight", value, minimum=0.0))

    @property
    def epsilon(self) -> float:
        return float(keras.ops.convert_to_numpy(self._epsilon.value))

    @epsilon.setter
    def epsilon(self, value):
        self._epsilon.assign(_check_number("epsilon", value, minimum=0.0))

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
        if not self.base_model.built:
            self.base_model.build(input_shape)
        self.built = True

    @no_automatic_dependency_tracking
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, **kwargs):
        if isinstance(loss, (list, tuple, dict)):
            raise ValueError(
                "AdversarialModel supports single-output models only; got a "
                f"{type(loss).__name__} of losses."
            )
        super().compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights,
                        metrics=metrics, weighted_metrics=weighted_metrics, **kwargs)
        self._adv_compile_metrics = None
        if metrics is not None or weighted_metrics is not None:
            self._adv_compile_metrics = _PrefixedCompileMetrics(
                _clone_metrics(metrics), _clone_metrics(weighted_metrics), prefix="adv_",
                output_names=getattr(self, "output_names", None),
            )
        from_logits = None
        if isinstance(loss, keras.losses.Loss):
            from_logits = loss.get_config().get("from_logits")
        self._margin_tracker.from_logits = from_logits
        self._from_logits = from_logits

    def compile_from_config(self, config):
        """Re-compiles a loaded model (our `compile` is overridden, so Keras does not)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        out = []
        if self.compiled and self._loss_tracker is not None:
            out += [self._loss_tracker, self._clean_loss_tracker, self._adv_loss_tracker]
            if self._compile_metrics is not None:
                out.append(self._compile_metrics)
            if self._adv_compile_metrics is not None:
                out.append(self._adv_compile_metrics)
            out.append(self._margin_tracker)
            if self._compile_loss is not None:
                out.extend(self._compile_loss.metrics)
        return out

    # ---------------------------------------------------------- the steps
    def _attack_loss(self, attack, objective_loss=None):
        """The inner attack's loss: the objective's, else the compiled loss unless the attack names one."""
        if objective_loss is not None:
            return objective_loss
        compiled = getattr(self, "loss", None)
        if attack.loss is None and compiled is not None:
            return losses_lib.per_example(compiled)
        return None

    def _craft(self, attack, x, y, epsilon, loss=None):
        self._check_single_input(x)
        return attack(self.base_model, x, y, epsilon=epsilon, seed=draw_seed(self._seed_generator), loss=loss)

    @staticmethod
    def _check_single_input(x):
        if isinstance(x, (list, tuple, dict)):
            raise ValueError(
                "AdversarialModel attacks a single input tensor; got "
                f"{type(x).__name__} of inputs."
            )
        if not x.dtype.is_floating:
            raise TypeError(
                f"Inputs `x` must be floating point (scaled to the attack bounds), got "
                f"{x.dtype.name}. Convert integer images first, e.g. x.astype('float32') / 255."
            )

    def _compiled_loss(self, y, y_pred, sample_weight):
        if self._compile_loss is None:
            raise ValueError("No loss to optimise: pass `loss=` to `compile()`.")
        return self._compile_loss(y, y_pred, sample_weight)

    def _total_loss(self, x, y, y_clean, y_adv, sample_weight):
        extra = {}
        if _accepts(self._objective.__call__, "from_logits"):  # objectives written before the argument
            extra["from_logits"] = getattr(self, "_from_logits", None)
        total, clean, adv = self._objective(
            y=y, y_clean=y_clean, y_adv=y_adv, sample_weight=sample_weight,
            compiled_loss=self._compiled_loss, adv_weight=self._adv_weight, **extra,
        )
        for extra in self.losses:  # regularisation, once
            total = total + self._aggregate_additional_loss(extra)
        return total, clean, adv

    def _track(self, x, total, clean, adv):
        batch = tf.shape(x)[0]
        unscale = _keras_loss_module.unscale_loss_for_distribution
        self._loss_tracker.update_state(unscale(total), sample_weight=batch)
        self._clean_loss_tracker.update_state(unscale(clean), sample_weight=batch)
        self._adv_loss_tracker.update_state(unscale(adv), sample_weight=batch)

    def _objective_attack_loss(self, x):
        """The objective's inner loss; clean outputs it needs (TRADES) are computed without a tape."""
        objective = self._objective
        y_clean = None
        if objective.needs_clean_for_attack:
            self._check_single_input(x)
            y_clean = tf.stop_gradient(self(x, training=False))
        if _accepts(objective.attack_loss, "from_logits"):
            return objective.attack_loss(y_clean, getattr(self, "_from_logits", None))
        return objective.attack_loss(y_clean)

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`, with the data checked before the first step (see `keras_adv.utils.data_checks`)."""
        return data_checks.guarded_call(self, super().fit, "fit", args, kwargs)

    def evaluate(self, *args, **kwargs):
        """`keras.Model.evaluate`, with the data checked before the first step."""
        return data_checks.guarded_call(self, super().evaluate, "evaluate", args, kwargs)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        data_checks.batch_checks(self, y, sample_weight)
        objective = self._objective
        attack_loss = self._attack_loss(self.attack, self._objective_attack_loss(x))
        x_adv = self._craft(self.attack, x, y, self._epsilon, attack_loss)

        y_clean_fixed = None
        if not objective.needs_clean_gradient:
            y_clean_fixed = self(x, training=False)
        with tf.GradientTape() as tape:
            y_clean = self(x, training=True) if y_clean_fixed is None else y_clean_fixed
            y_adv = self(x_adv, training=True)
            total, clean, adv = self._total_loss(x, y, y_clean, y_adv, sample_weight)
            self._track(x, total, clean, adv)
            scaled = self.optimizer.scale_loss(total) if self.optimizer is not None else total
        data_checks.assert_finite_loss(total)
        weights = self.trainable_weights
        grads = tape.gradient(scaled, weights)
        self.optimizer.apply_gradients(zip(grads, weights))
        return self.compute_metrics(x, y, y_clean, sample_weight, y_pred_adv=y_adv)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        data_checks.batch_checks(self, y, sample_weight)
        if self.eval_attack is not None:
            x_adv = self._craft(self.eval_attack, x, y, None, self._attack_loss(self.eval_attack))
        else:
            x_adv = self._craft(
                self.attack, x, y, self._epsilon,
                self._attack_loss(self.attack, self._objective_attack_loss(x)),
            )
        y_clean = self(x, training=False)
        y_adv = self(x_adv, training=False)
        total, clean, adv = self._total_loss(x, y, y_clean, y_adv, sample_weight)
        self._track(x, total, clean, adv)
        return self.compute_metrics(x, y, y_clean, sample_weight, y_pred_adv=y_adv)

    def compute_metrics(self, x, y, y_pred, sample_weight=None, y_pred_adv=None):
        """Updates clean metrics with `y_pred` and `adv_` metrics with `y_pred_adv`."""
        if y_pred_adv is None:  # Keras' symbolic build passes clean outputs only.
            y_pred_adv = y_pred
        if self._compile_metrics is not None:
            self._compile_metrics.update_state(y, y_pred, sample_weight)
        if self._adv_compile_metrics is not None:
            self._adv_compile_metrics.update_state(y, y_pred_adv, sample_weight)
        self._margin_tracker.update_state(y, y_pred, y_pred_adv, sample_weight)
        return self.get_metrics_result()

    # ------------------------------------------------------ serialization
    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "base_model": keras.saving.serialize_keras_object(self.base_model),
            "attack": keras.saving.serialize_keras_object(self.attack),
            "adv_weight": self.adv_weight,
            "objective": self.objective,
            "eval_attack": (
                None if self.eval_attack is None else keras.saving.serialize_keras_object(self.eval_attack)
            ),
            "seed": self.seed,
        }
        return config

    def save_own_variables(self, store):
        """Keras' own variables plus the seed generator's state, so a restored run continues its random stream."""
        super().save_own_variables(store)
        store["seed_generator_state"] = keras.ops.convert_to_numpy(self._seed_generator.state.value)

    def load_own_variables(self, store):
        keys = list(store.keys())
        if "seed_generator_state" in keys:  # files written before it was saved load too
            self._seed_generator.state.assign(store["seed_generator_state"])
            store = {k: store[k] for k in keys if k != "seed_generator_state"}
        super().load_own_variables(store)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(trust.check_model_config(config, custom_objects))
        for field in ("base_model", "attack", "eval_attack"):  # errors name the field and the root cause
            if config.get(field) is not None:
                config[field] = trust.deserialize(field, config[field], custom_objects)
        return cls(**config)

    # -------------------------------------------------------------- export
    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None,
               input_name: Optional[str] = None, **kwargs):
        """Exports the *base model's* inference graph as a SavedModel for TF Serving.

        The attack, the optimizer and the training state are not exported. The
        `serving_default` signature takes one input named `input_name`
        (default: the base model's input name, or `"inputs"`) and returns
        `{"predictions": ...}`.

        Args:
            filepath: the SavedModel directory to write.
            format: only `"tf_saved_model"`.
            input_signature: optional `tf.TensorSpec` for the input; inferred
                from the base model otherwise.
            input_name: the serving input's name.
        """
        if format != "tf_saved_model":
            raise ValueError(f"`format` must be 'tf_saved_model', got {format!r}.")
        from keras.src.export import ExportArchive

        base = self.base_model
        if input_signature is None:
            inputs = getattr(base, "inputs", None)
            if inputs:
                shape, dtype = inputs[0].shape, inputs[0].dtype
            elif getattr(self, "_build_shapes_dict", None):
                shape, dtype = list(self._build_shapes_dict.values())[0], "float32"
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
        name = spec.name or "inputs"

        archive = ExportArchive()
        archive.track(base)

        def serve(inputs):
            return {"predictions": base(inputs, training=False)}

        fn = tf.function(serve, input_signature=[tf.TensorSpec(spec.shape, spec.dtype, name=name)], autograph=False)
        archive.add_endpoint("serve", fn)
        archive.add_endpoint("serving_default", fn)
        archive.write_out(filepath, verbose=True if verbose is None else verbose)


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
