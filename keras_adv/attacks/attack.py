"""The attack base class: threat model, input domain and budget enforcement.

Every attack in keras_adv derives from `Attack`. The base class owns what must
hold for *every* attack, so no concrete attack re-implements it:

* the inputs are checked (floating dtype, labels of a matching shape) and
  handed to the attack's input domain (`attack.domain`, by default the box
  `bounds`), which checks they are finite and inside it, with errors that
  name the argument;
* the result is projected onto the ε-ball of the attack's norm, then put back
  into the domain (`Domain.project`: clipping for a box), so
  `‖x_adv − x‖ ≤ ε` and `x_adv ∈ domain` hold by construction; an example
  whose result is not finite (a model returning NaN) falls back to `x`;
* restarts (`restarts > 1`) run the attack from fresh seeds and keep, per
  example, the stronger result (`Attack.strongest_of`, `Attack.keep_stronger`);
* an eager call runs one traced function per model (compiled speed);
* the result is wrapped in `tf.stop_gradient`.

A concrete attack implements `perturb(model, x, y, epsilon, seed, loss_fn)`
(one run) and declares its capabilities as class attributes
(`gradient_free`, `minimal_perturbation`, `supported_norms`, ...).
"""

from __future__ import annotations

import functools
import warnings
import weakref
from typing import Any, Callable, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from keras_adv import domains as domains_lib
from keras_adv import losses as losses_lib
from keras_adv import norms as norms_lib
from keras_adv.attacks import _batches, _distribute
from keras_adv.attacks._tracing import _compile
from keras_adv.attacks.gradients import NoInputGradientError, value_and_gradient
from keras_adv.attacks.inner_layer import embeddings_of
from keras_adv.utils import data_checks, trust
from keras_adv.utils.validation import check_bool, check_bounds, check_model, check_number, is_number

__all__ = ["Attack", "NoInputGradientError"]


class Attack:
    """Base class of all keras_adv attacks.

    Args:
        epsilon: the perturbation budget ε in the attack's norm (`None` only
            for attacks with `allows_unbounded`, such as Carlini-Wagner).
        norm: the threat model: `"linf"`, `"l2"`, `"l1"`, a
            `keras_adv.norms.Norm` or a serialized norm; must be one of the
            attack's `supported_norms`.
        bounds: `(min, max)` of valid inputs (default `(0.0, 1.0)`); results
            are clipped to it and inputs outside it are rejected. Shorthand for
            `domain=keras_adv.domains.Box(min, max)`.
        domain: the input domain (`keras_adv.domains.Domain`): what the
            attacker may produce, e.g. per-feature bounds or a tabular feature
            space. Give `bounds` or `domain`, not both.
        targeted: when True, `y` holds the *target* class and the attack
            minimises the loss towards it instead of maximising the loss of
            the true class.
        loss: per-example loss `loss(y_true, y_pred) -> (batch,)` to
            maximise. `None` means cross-entropy, with logits or
            probabilities detected from the outputs (inside an
            `AdversarialModel`, the compiled loss is used instead).
        seed: integer seed for the attack's randomness (random starts).
        check_inputs: check inputs (finite, inside the domain) on each call.
        name: a name for reports.

    Call:
        `x_adv = attack(model, x, y)`: tensors in, tensor out; works eagerly
        (through one traced function per model, so at graph speed) and inside
        `tf.function`. `attack.generate(model, data)` runs over numpy arrays
        or a `tf.data.Dataset` in batches with a progress bar.

    Capabilities (class attributes, read by evaluators and the CLI instead of
    class names):
        gradient_free: the attack never asks for a gradient (works on models
            without one).
        minimal_perturbation: the attack looks for the smallest adversarial
            perturbation (its distances estimate the empirical robustness).
        allows_unbounded: `epsilon=None` is allowed.
        supported_norms: names of the norms the attack accepts (`None`: any
            `keras_adv.norms.Norm`).
        requires_images: inputs must be `(batch, height, width, channels)`.
        independent_restarts: `restarts` are independent runs from fresh
            seeds, combined by the base class (False when the attack chains
            its restarts itself).
    """

    gradient_free: bool = False
    minimal_perturbation: bool = False
    allows_unbounded: bool = False
    supported_norms: Optional[Tuple[str, ...]] = None
    requires_images: bool = False
    independent_restarts: bool = True
    #: Runs of the attack per call, combined per example (`strongest_of`).
    restarts: int = 1

    def __init__(
        self,
        *,
        epsilon: Optional[float],
        norm: norms_lib.NormLike = "linf",
        bounds: Optional[Sequence[float]] = None,
        domain: Optional[Any] = None,
        targeted: bool = False,
        loss: Any = None,
        seed: Optional[int] = None,
        check_inputs: bool = True,
        name: Optional[str] = None,
    ):
        self.epsilon = check_number(
            "epsilon", epsilon, minimum=0.0, allow_none=self.allows_unbounded
        )
        self.norm = norms_lib.get(norm)
        if self.supported_norms is not None and self.norm.name not in self.supported_norms:
            names = " or ".join(repr(n) for n in self.supported_norms)
            raise ValueError(
                f"{type(self).__name__} supports norm {names}, got {self.norm.name!r}."
            )
        if domain is not None and bounds is not None:
            raise ValueError(
                "Give either `bounds` or `domain`, not both (`bounds=(lo, hi)` is "
                "`domain=keras_adv.domains.Box(lo, hi)`)."
            )
        if domain is not None:
            self.domain = domains_lib.get(domain)
        else:
            self.domain = domains_lib.Box(*_bounds_pair(bounds))
        self.targeted = check_bool("targeted", targeted)
        self.loss = losses_lib.get(loss)
        self.seed = None if seed is None else check_number("seed", seed, integer=True)
        self.check_inputs = bool(check_inputs)
        self.name = name or type(self).__name__
        self._seed_generator = None
        self._traced_fns = None
        if self.epsilon is not None and self.norm.name == "linf" and self.epsilon > self.domain.width:
            warnings.warn(
                f"{type(self).__name__}: `epsilon`={self.epsilon:g} is larger than the width of the "
                f"input domain ({self.domain.width:g}): every valid input is reachable, so the attack "
                "measures nothing about robustness. Give ε on the scale of the inputs "
                f"(e.g. {self.epsilon:g}/255 for 0-255 budgets on [0, 1] images).",
                stacklevel=2,
            )

    @property
    def bounds(self):
        """`(min, max)` of the attack's domain (scalars, or per-feature arrays)."""
        return self.domain.bounds

    def _check_restarts(self, restarts):
        return check_number("restarts", restarts, minimum=1, integer=True)

    # ------------------------------------------------------------------ call
    def __call__(self, model, x, y, *, epsilon=None, seed=None, loss=None):
        """Returns adversarial examples for `x` (labels, or targets, `y`).

        Args:
            model: a callable Keras model returning logits or probabilities.
            x: a floating tensor of inputs inside the attack's domain.
            y: integer labels `(batch,)` or one-hot `(batch, classes)`; the
                target classes when `targeted=True`.
            epsilon: overrides the attack's ε for this call (a number or a
                scalar tensor/variable: schedules change it without retracing).
                A negative or non-finite value is refused.
            seed: a stateless seed, int tensor of shape (2,). Defaults to the
                attack's own seed generator.
            loss: overrides the per-example loss for this call.
        """
        check_model(model)
        _check_not_token_ids(self, model, x)
        x = self._validate_x(x)
        y = self._validate_y(y, x)
        self._check_labels_fit(model, y)
        epsilon = self._validate_epsilon(epsilon, x.dtype)
        if tf.executing_eagerly():
            fn = self._traced_function(model, loss)
            if fn is not None:
                if seed is None:
                    self._seed_generator_or_new()  # drawn inside the traced function (no eager ops)
                try:
                    return fn(x, y, epsilon, seed)
                except tf.errors.OpError:
                    raise
                except Exception:
                    # Tracing failed: run eagerly, which raises the attack's own error
                    # (e.g. NoInputGradientError) unwrapped, or succeeds for a model
                    # that cannot be traced (then this model stays on the eager path).
                    seed = self._next_seed() if seed is None else seed
                    out = self._run(model, x, y, epsilon, seed, self._loss_fn(loss, model))
                    self._mark_untraceable(model, loss)
                    return out
        if seed is None:
            seed = self._next_seed()
        return self._run(model, x, y, epsilon, seed, self._loss_fn(loss, model))

    def _loss_fn(self, loss, model=None):
        """The per-example loss of a call: `loss`, else the attack's, else cross-entropy.

        The default cross-entropy reads from `model`'s last layer whether it
        outputs logits or probabilities (`losses.infer_from_logits`), so each
        step computes one interpretation instead of both.
        """
        loss_fn = losses_lib.per_example(loss if loss is not None else self.loss)
        if loss_fn is not None:
            return loss_fn
        from_logits = losses_lib.infer_from_logits(model)
        if from_logits is None:
            return losses_lib.crossentropy
        return functools.partial(losses_lib.crossentropy, from_logits=from_logits)

    def _run(self, model, x, y, epsilon, seed, loss_fn):
        """The attack proper: restarts, budget and domain, non-finite fallback.

        Success decisions read from `model`'s last layer whether a single-unit
        output is a logit or a probability (`losses.outputs_from_logits`).
        """
        with losses_lib.outputs_from_logits(losses_lib.infer_from_logits(model)):
            if x.dtype == tf.float64:  # attacks compute in float32; the budget is enforced in float64
                eps_work = None if epsilon is None else tf.cast(epsilon, tf.float32)
                x_adv = self.perturb_with_restarts(model, tf.cast(x, tf.float32), y, eps_work, seed, loss_fn)
            else:
                x_adv = self.perturb_with_restarts(model, x, y, epsilon, seed, loss_fn)
        x_adv = self.enforce_budget(x, x_adv, epsilon)
        # A model that outputs NaN can make an attack step NaN: such an example
        # falls back to the clean input, which satisfies budget and domain.
        finite = tf.reduce_all(tf.reshape(tf.math.is_finite(x_adv), [tf.shape(x_adv)[0], -1]), axis=1)
        x_adv = tf.where(_batch_mask(finite, x_adv), x_adv, x)
        return tf.stop_gradient(x_adv)

    def _traced_function(self, model, loss):
        """One traced `_run` per (model, loss override), reused by eager calls and `generate`.

        Keys are weak: the cache does not keep a model alive (the traced
        function reaches the model through a weak reference).
        """
        if self._traced_fns is None:
            self._traced_fns = weakref.WeakKeyDictionary()
        try:
            per_model = self._traced_fns.get(model)
        except TypeError:  # not weak-referenceable: run eagerly
            return None
        if per_model is None:
            per_model = {}
            try:
                self._traced_fns[model] = per_model
            except TypeError:
                return None
        key = None if loss is None else id(loss)
        entry = per_model.get(key)
        if entry is not None and entry[0] is loss and entry[1] is None:
            return None  # this model runs eagerly (tracing it failed before)
        if entry is None or entry[0] is not loss:
            model_ref = weakref.ref(model)
            loss_fn = self._loss_fn(loss, model)

            def run(x, y, epsilon, seed):
                if seed is None:  # the attack's own stream, drawn in the graph
                    seed = draw_seed(self._seed_generator)
                return self._run(model_ref(), x, y, epsilon, seed, loss_fn)

            entry = (loss, _compile(run))
            if len(per_model) > 8:
                per_model.clear()
            per_model[key] = entry
        return entry[1]

    def _mark_untraceable(self, model, loss):
        try:
            self._traced_fns[model][None if loss is None else id(loss)] = (loss, None)
        except (TypeError, KeyError):
            pass

    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        """Computes adversarial examples (one run). Implemented by each attack.

        The returned tensor need not satisfy the budget or the domain: the
        base class projects and repairs it afterwards.
        """
        raise NotImplementedError

    def perturb_with_restarts(self, model, x, y, epsilon, seed, loss_fn):
        """`perturb` once, or once per restart from fresh seeds keeping the stronger per example."""
        n = int(getattr(self, "restarts", 1) or 1)
        if n == 1 or not self.independent_restarts:
            return self.perturb(model, x, y, epsilon, seed, loss_fn)
        seeds = tf.random.experimental.stateless_split(seed, n)

        def run(r):
            return self.enforce_budget(x, self.perturb(model, x, y, epsilon, seeds[r], loss_fn), epsilon)

        def score(x_adv):
            return self.restart_score(model, x_adv, y, loss_fn)

        return self.strongest_of(n, run, score)[0]

    def restart_score(self, model, x_adv, y, loss_fn):
        """`(objective, success)` per example, by which restarts are compared."""
        outputs = model(x_adv, training=False)
        return self.objective(loss_fn, y, outputs), self.is_successful(outputs, y)

    def strongest_of(self, n: int, run: Callable, score: Optional[Callable] = None, *,
                     first_success: bool = False):
        """Per example, the strongest of `n` candidates (the restart loop, written once).

        Args:
            n: number of candidates (a Python int ≥ 1).
            run: `run(i)` for a scalar int32 tensor `i` in `[0, n)` returns a
                candidate batch `x_i`, or a tuple `(x_i, objective, success)`.
            score: `score(x_i) -> (objective, success)`, needed when `run`
                returns the candidate only.
            first_success: keep the first successful candidate of each
                example (for candidates whose objectives do not compare, such
                as different target classes).

        Returns:
            `(best, objective, success)`. With `n == 1` and a `run` that
            returns the candidate only, `(x_0, None, None)` (no extra scoring).
        """
        def scored(i):
            out = run(i)
            if isinstance(out, tuple):
                return out
            obj, ok = score(out)
            return out, obj, ok

        if n == 1:
            out = run(tf.constant(0))
            return out if isinstance(out, tuple) else (out, None, None)
        best, best_obj, best_ok = scored(tf.constant(0))

        def body(i, best, best_obj, best_ok):
            cand, obj, ok = scored(i)
            best, best_obj, best_ok = self.keep_stronger(
                best, best_obj, best_ok, cand, obj, ok, first_success=first_success)
            return i + 1, best, best_obj, best_ok

        _, best, best_obj, best_ok = tf.while_loop(
            lambda i, *_: i < n, body, (tf.constant(1), best, best_obj, best_ok)
        )
        return best, best_obj, best_ok

    def enforce_budget(self, x, x_adv, epsilon):
        """Projects onto the ε-ball around `x`, then into the domain (`Domain.project`).

        Clipping after projection cannot leave the ball: `x` lies inside
        `bounds`, so clipping only shrinks each coordinate of `x_adv − x`.
        """
        x_adv = tf.cast(x_adv, x.dtype)
        if epsilon is not None:
            x_adv = x + self.norm.project(x_adv - x, epsilon)
        return self.domain.project(x_adv, x)

    def clip(self, x):
        """Puts `x` into the attack's domain (clips to `bounds` for a box)."""
        return self.domain.project(x, None)

    # ------------------------------------------------------------ checks
    def _validate_x(self, x):
        desc = f"bounds={self.bounds}" if self.domain.is_scalar else "the attack's domain"
        if isinstance(x, tf.RaggedTensor):
            raise TypeError(
                "`x` is a tf.RaggedTensor: attacks take dense batches of shape (batch, ...). Pad the "
                "sequences first, e.g. `x.to_tensor()`."
            )
        if isinstance(x, dict):
            raise TypeError(
                f"`x` is a dict of named inputs ({', '.join(map(repr, list(x)[:6]))}): {type(self).__name__} "
                "attacks one input tensor of shape (batch, ...). Give the model a single input (e.g. "
                "concatenate the features); for a table, the tabular attacks (CAPGD, Evolutionary, "
                "ConstrainedAutoAttack) accept a dict of columns with a FeatureSpace."
            )
        if not tf.is_tensor(x):
            x = np.asarray(x)
            if not np.issubdtype(x.dtype, np.floating):
                raise TypeError(
                    f"`x` must be a floating-point array scaled to {desc}, "
                    f"got dtype {x.dtype}. Convert integer images first, e.g. "
                    "`x.astype('float32') / 255`."
                )
            x = tf.convert_to_tensor(x)
        if not x.dtype.is_floating:
            raise TypeError(
                f"`x` must be a floating-point tensor scaled to {desc}, "
                f"got dtype {x.dtype.name}. Convert integer images first, e.g. "
                "`tf.cast(x, 'float32') / 255`."
            )
        if x.dtype in (tf.float16, tf.bfloat16):
            x = tf.cast(x, tf.float32)  # the perturbation always stays float32
        if x.shape.rank is not None and x.shape.rank < 2:
            raise ValueError(f"`x` must be batched, shape (batch, ...), got shape {x.shape}. Batch an "
                             "unbatched tf.data.Dataset (`ds.batch(n)`) before mapping an attack over it.")
        if x.shape.rank is not None and x.shape[0] == 0:
            raise ValueError(f"`x` is empty (shape {x.shape}): there is no example to attack.")
        if self.check_inputs:
            x = self.domain.validate(x)
        return x

    def _validate_epsilon(self, epsilon, dtype):
        """The per-call ε as a tensor (or None); negative / non-finite values are refused."""
        if epsilon is None:
            epsilon = self.epsilon
            if epsilon is None:
                return None
        elif is_number(epsilon):
            check_number("epsilon", epsilon, minimum=0.0)
        elif isinstance(epsilon, np.ndarray) and epsilon.ndim == 0:
            check_number("epsilon", epsilon[()], minimum=0.0)
        else:
            epsilon = tf.convert_to_tensor(epsilon)
            if epsilon.shape.rank not in (None, 0):
                raise ValueError(f"`epsilon` must be a scalar, got shape {epsilon.shape}.")
            if tf.executing_eagerly():
                check_number("epsilon", epsilon.numpy().item(), minimum=0.0)
            else:
                ok = tf.reduce_all(tf.cast(epsilon, tf.float32) >= 0.0)  # NaN fails too
                check = tf.debugging.Assert(ok, ["`epsilon` must be a finite number >= 0, got", epsilon])
                with tf.control_dependencies([check]):
                    epsilon = tf.identity(epsilon)
        return tf.cast(epsilon, dtype)

    def _validate_y(self, y, x):
        if y is None:
            raise ValueError(
                f"`y` is required: the {'target' if self.targeted else 'true'} labels of `x`"
                + (" (a targeted attack needs target classes)." if self.targeted else ".")
            )
        y = tf.convert_to_tensor(y)
        rank = y.shape.rank
        if rank == 0:
            raise ValueError(
                "`y` must hold one label per example of a batch, got a single label (shape ()). "
                "Attacks take batches: batch an unbatched tf.data.Dataset (`ds.batch(n)`) before "
                "mapping an attack over it."
            )
        if rank is not None and rank > 2:
            raise ValueError(
                "`y` must be integer labels of shape (batch,) or (batch, 1), or one-hot "
                f"labels of shape (batch, classes); got shape {y.shape}."
            )
        if rank == 2 and y.shape[-1] == 1:
            y = tf.squeeze(y, -1)
        bx, by = x.shape[0], y.shape[0]
        if bx is not None and by is not None and bx != by:
            raise ValueError(
                f"`y` must have one label per example of `x`: x has {bx} examples, y has {by}."
            )
        if y.dtype == tf.string:
            raise TypeError("`y` must hold integer class labels or one-hot rows, got strings; map the "
                            "class names to ids first (e.g. with keras.layers.StringLookup).")
        if tf.executing_eagerly() and y.shape.rank == 1 and tf.size(y) > 0:
            values = y.numpy()
            if y.dtype.is_floating and not np.all(np.floor(values) == values):
                raise ValueError(f"`y` must hold integer class labels, got non-integer values such as "
                                 f"{float(values[np.floor(values) != values][0]):g}.")
            if values.min() < 0:
                raise ValueError(f"`y` must hold class labels >= 0, got {values.min():g}.")
        return y

    @staticmethod
    @tf.autograph.experimental.do_not_convert
    def _check_labels_fit(model, y):
        """Eagerly: labels (or one-hot rows) that fit the number of classes `model` outputs.

        An out-of-range label has an all-zero one-hot row, so its loss and
        gradient are zero and the attack would silently return `x` unchanged.
        """
        if not tf.executing_eagerly() or not isinstance(model, keras.Model):
            return
        classes = data_checks.num_classes(model)
        if classes is None:  # subclassed or unbuilt: unknown
            return
        classes = max(classes, 2)  # a single unit is binary
        if y.shape.rank == 2:
            if y.shape[-1] != classes:
                raise ValueError(f"`y` holds one-hot rows of width {y.shape[-1]}, but the model outputs "
                                 f"{classes} classes.")
        elif tf.size(y) > 0 and int(tf.reduce_max(y)) >= classes:
            raise ValueError(f"`y` has labels outside [0, {classes}) (the model outputs {classes} classes); "
                             f"got a label {int(tf.reduce_max(y))}.")

    def _seed_generator_or_new(self):
        if self._seed_generator is None:
            # Created on first use, eagerly; graph callers pass `seed=`.
            self._seed_generator = keras.random.SeedGenerator(self.seed)
        return self._seed_generator

    def _next_seed(self):
        return draw_seed(self._seed_generator_or_new())

    # ----------------------------------------------------------- helpers
    def input_gradient(self, model, x, y, loss_fn):
        """Returns `(gradient, objective, outputs)`: the objective's gradient w.r.t. `x`, the per-example
        objective (shape `(batch,)`) and the model's outputs at `x`.

        The objective is `loss(y, model(x))`, negated for targeted attacks,
        so attacks always *ascend* it. Raises `NoInputGradientError` when
        the model has no gradient with respect to `x`.
        """
        def fn(x_):
            outputs = model(x_, training=False)
            return self.objective(loss_fn, y, outputs), outputs

        (objective, outputs), grad = value_and_gradient(fn, x)
        return grad, objective, outputs

    def objective(self, loss_fn, y, outputs):
        loss = tf.cast(loss_fn(y, _single_output(outputs)), tf.float32)
        loss = tf.reshape(loss, [tf.shape(loss)[0], -1])
        loss = tf.reduce_mean(loss, axis=1) if loss.shape[-1] != 1 else tf.squeeze(loss, -1)
        return -loss if self.targeted else loss

    @staticmethod
    def keep_stronger(best, best_obj, best_ok, cand, obj, ok, *, first_success: bool = False):
        """Per example, keeps the stronger of `best` and `cand`.

        Stronger means successful where the other is not, else a higher
        objective. With `first_success`, an example already successful in
        `best` keeps it. Returns the updated `(best, best_obj, best_ok)`.
        """
        better = (ok & ~best_ok) | ((ok == best_ok) & (obj > best_obj))
        if first_success:
            better = better & ~best_ok
        mask = tf.reshape(better, [-1] + [1] * (len(best.shape) - 1))
        return tf.where(mask, cand, best), tf.where(better, obj, best_obj), best_ok | ok

    def is_successful(self, outputs, y):
        """Per-example success: misclassified (untargeted) or on target (targeted)."""
        pred = losses_lib.predicted_class(_single_output(outputs))
        label = losses_lib.label_class(y)
        return tf.equal(pred, label) if self.targeted else tf.not_equal(pred, label)

    # ----------------------------------------------------------- generate
    def generate(self, model, data, y=None, *, batch_size: int = 256, verbose="auto", shard=None,
                 strategy=None):
        """Runs the attack over a whole dataset, batch by batch.

        Batch `k` is attacked with the stateless seed
        `keras_adv.attacks.batch_seed(attack.seed, k)`, so a shard, a
        resumed run or `iterate` give the very examples of the whole run.

        Args:
            model: the model to attack.
            data: a numpy array `x` (then `y` is required), or a
                `tf.data.Dataset` yielding `(x, y)` batches.
            y: labels (or targets) for numpy `data`.
            batch_size: batch size for numpy inputs (a `tf.data.Dataset` keeps its own batches).
            verbose: 0 silent, 1 progress bar; `"auto"` is 1.
            shard: optional `(index, count)`: attack only the batches whose
                index is `index` modulo `count` (results in batch order).
            strategy: optional `tf.distribute.Strategy`: each batch is split
                across its replicas, each attacking its part with the batch
                seed folded with its replica id (see `docs/distributed.md`:
                deterministic attacks give the very same examples; attacks
                with random draws give different, equally valid ones).

        Returns:
            A numpy array of adversarial examples, the same shape as the
            inputs (of the shard's batches). For a stream too large to hold,
            use `iterate`, which yields them batch by batch. Token attacks
            (HotFlip) on a stream of batches of different lengths
            (`padded_batch`) pad every batch with the padding id 0 to the
            longest one; other attacks refuse batches of different shapes
            with a `ValueError` pointing to `iterate`.
        """
        outputs = [x_adv for x_adv, _ in self.iterate(model, data, y, batch_size=batch_size,
                                                      verbose=verbose, shard=shard, strategy=strategy)]
        return _stack_batches(self, outputs)

    def iterate(self, model, data, y=None, *, batch_size: int = 256, verbose=0, shard=None, strategy=None):
        """Yields `(x_adv, y)` numpy batches over `data`, holding two batches at a time (one in flight).

        The streaming form of `generate` (same arguments, same examples): memory
        stays flat for a `tf.data.Dataset` of any size.
        """
        check_model(model)
        _distribute.check_strategy(strategy)
        _batches.check_data(data)
        if not isinstance(data, tf.data.Dataset):
            x_np = data[0] if (isinstance(data, (tuple, list)) and len(data) == 2 and y is None) else data
            _batches.refuse_dict(x_np)
            if y is None and x_np is data:
                raise ValueError("`y` is required when `data` is an array of inputs.")
            _check_not_token_ids(self, model, x_np)
            if callable(getattr(self.domain, "check_columns", None)):  # a DataFrame is read by position
                self.domain.check_columns(x_np, argument="data")
            if not tf.is_tensor(x_np):
                self._validate_x(np.asarray(x_np)[:1])  # dtype check with a clear error before batching
            batch_size = check_number("batch_size", batch_size, minimum=1, integer=True)
        steps = _batches.num_batches(data, y, batch_size=batch_size, shard=shard)
        seed = _batches.base_seed(self.seed)
        step = self.batch_function(model, verbose=int(verbose not in (0, False)), strategy=strategy)
        bar = keras.utils.Progbar(steps, unit_name="batch") if verbose not in (0, False) else None
        dispatched = ((step(batch.x, batch.y, None, _batches.batch_seed(seed, batch.index)), batch.y)
                      for batch in _batches.iterate(data, y, batch_size=batch_size, shard=shard,
                                                    check_float=False))
        for i, (x_adv, yb) in enumerate(_one_ahead(dispatched)):
            yield np.asarray(x_adv), yb
            if bar is not None:
                bar.update(i + 1)

    def batch_function(self, model, *, verbose: int = 0, strategy=None):
        """`fn(x, y, epsilon, seed) -> x_adv` for one batch, compiled once per model.

        `epsilon=None` keeps the attack's own ε; a number overrides it without
        retracing. The evaluator and `generate` call attacks through this
        hook; an attack that drives sub-attacks from Python (AutoAttack, to
        report progress) overrides it. The traced function is the one eager
        calls use (`_traced_function`): the model is held weakly, so it does
        not keep a discarded model alive. With a `tf.distribute.Strategy`,
        the batch is split across its replicas (`attacks._distribute`).
        """
        if strategy is not None:
            return _distribute.batch_function(self, model, strategy)
        own = self.epsilon

        def call(xb, yb, epsilon, seed):
            eps = own if epsilon is None else epsilon
            eps = None if eps is None else tf.constant(float(eps), tf.float32)
            # An eager call: inputs checked eagerly, the attack runs in the traced
            # function kept per model (`_traced_function`), errors unwrapped.
            return self(model, tf.convert_to_tensor(xb), tf.convert_to_tensor(yb), epsilon=eps, seed=seed)

        return call

    # ------------------------------------------------------ serialization
    def get_config(self) -> dict:
        config = {
            "epsilon": self.epsilon,
            "norm": keras.saving.serialize_keras_object(self.norm),
        }
        if type(self.domain) is domains_lib.Box and self.domain.is_scalar:
            config["bounds"] = list(self.bounds)
        else:
            config["domain"] = keras.saving.serialize_keras_object(self.domain)
        config.update(
            targeted=self.targeted,
            loss=None if self.loss is None else keras.saving.serialize_keras_object(self.loss),
            seed=self.seed,
            check_inputs=self.check_inputs,
            name=self.name,
        )
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(trust.check_attack_config(config, cls.__name__, attack_class=Attack))
        if config.get("loss") is not None:
            config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        return cls(**config)

    def __repr__(self):
        config = self.get_config()
        config["norm"] = self.norm
        if "domain" in config:
            config["domain"] = self.domain
        args = ", ".join(
            f"{k}={v!r}" for k, v in config.items() if k not in ("name", "check_inputs")
        )
        return f"keras_adv.attacks.{type(self).__name__}({args})"


@tf.autograph.experimental.do_not_convert  # Python-only checks, also inside a user's tf.function
def _check_not_token_ids(attack, model, x) -> None:
    """Integer ids given to an input-space attack on a model that embeds tokens: a `TypeError` saying what to use.

    (Integer images, for a model without an Embedding, get `_validate_x`'s advice: scale them to floats.)
    """
    if getattr(attack, "discrete_inputs", False) or isinstance(x, (dict, list, tuple)):
        return
    if not getattr(getattr(attack, "domain", None), "is_scalar", True):
        return  # a per-feature domain (tables): its own checks say to cast the records
    if tf.is_tensor(x):
        if not x.dtype.is_integer:
            return
        dtype = x.dtype.name
    else:
        dtype = getattr(x, "dtype", None)
        if dtype is None or np.dtype(dtype).kind not in "iu":
            return
        dtype = np.dtype(dtype).name
    embeddings = embeddings_of(model)
    if embeddings:
        raise TypeError(
            f"`x` holds integer token ids ({dtype}) and the model embeds them (Embedding "
            f"{embeddings[0].name!r}): {type(attack).__name__} perturbs continuous inputs, which token ids are "
            "not. Attack the token ids with keras_adv.attacks.HotFlip, or the embedded sequence with "
            "perturb_layer='embedding' (AdversarialModel(..., perturb_layer='embedding') in training, "
            "keras_adv.attacks.inner_layer.LayerPerturbation for one attack)."
        )


def _stack_batches(attack, outputs):
    """The batches of `generate` as one array; a token attack pads ids of different lengths with 0 (padding)."""
    shapes = {o.shape[1:] for o in outputs}
    if len(shapes) <= 1:
        return np.concatenate(outputs, axis=0)
    if getattr(attack, "discrete_inputs", False) and {len(shape) for shape in shapes} == {1}:
        longest = max(shape[0] for shape in shapes)
        return np.concatenate([np.pad(o, [(0, 0), (0, longest - o.shape[1])]) for o in outputs], axis=0)
    raise ValueError(
        f"`data` yields batches of different shapes ({', '.join(str(s) for s in sorted(shapes))} after the "
        "batch axis), which generate cannot stack into one array: use `iterate`, which yields the "
        "adversarial batches one by one, or give the stream one shape (e.g. padded_batch with padded_shapes)."
    )


def _one_ahead(items):
    """Yields each item once the next one has been produced: one batch in flight.

    Batch k+1 is dispatched before batch k is read back, so on an accelerator
    (where a dispatched call returns before its kernels finish) the device works
    while Python reads back, yields and prepares batches. On a CPU it changes nothing.
    """
    pending = held = False
    for item in items:
        if held:
            yield pending
        pending, held = item, True
    if held:
        yield pending


def draw_seed(seed_generator) -> tf.Tensor:
    """A fresh stateless seed (int32, shape (2,)) from a `keras.random.SeedGenerator`."""
    return tf.cast(
        keras.random.randint((2,), 0, 2**31 - 1, seed=seed_generator, dtype="int32"), tf.int32
    )


def _single_output(outputs):
    if isinstance(outputs, (list, tuple, dict)):
        raise ValueError(
            "keras_adv attacks need a single-output model (one tensor of class "
            f"scores); got {type(outputs).__name__} of outputs. Wrap the model so "
            "it returns the output to attack."
        )
    return outputs


def _bounds_pair(bounds) -> Tuple[Any, Any]:
    """`bounds` (None: the default `(0.0, 1.0)`) as a `(lower, upper)` pair, with the usual errors."""
    if bounds is None:
        return 0.0, 1.0
    try:
        lo, hi = bounds
    except (TypeError, ValueError):
        raise ValueError(f"`bounds` must be a pair (min, max), got {bounds!r}.") from None
    if is_number(lo) and is_number(hi):
        return check_bounds((lo, hi))
    return lo, hi


def _batch_mask(mask, x):
    """Reshapes a (batch,) mask to broadcast against `x`."""
    return tf.reshape(mask, [-1] + [1] * (len(x.shape) - 1))
