"""`evaluate_robustness`: every attack at every ε, the per-example worst case, and diagnostics."""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_adv import losses as losses_lib
from keras_adv.attacks import _batches, _distribute
from keras_adv.attacks.attack import Attack
from keras_adv.attacks.gradients import NoInputGradientError
from keras_adv.attacks.inner_layer import embeddings_of
from keras_adv.domains.feature_space import FeatureSpace
from keras_adv.utils import data_checks
from keras_adv.utils.validation import check_number
from keras_adv.evaluation import _common
from keras_adv.evaluation.report import AttackResult, RobustnessReport

__all__ = ["evaluate_robustness"]

_NUM_EXAMPLE_IMAGES = 8


def evaluate_robustness(
    model,
    data,
    y=None,
    *,
    attacks: Mapping[str, Attack],
    epsilons: Optional[Sequence[float]] = None,
    minimal_attack: Optional[Attack] = None,
    batch_size: int = 256,
    diagnose: bool = True,
    tolerance: float = 0.05,
    seed: Optional[int] = 0,
    max_examples: Optional[int] = None,
    verbose="auto",
    shard=None,
    adaptive=False,
    strategy=None,
) -> RobustnessReport:
    """Evaluates a classifier against several attacks over a grid of budgets.

    Each attack is re-run at each ε of `epsilons` (through the per-call
    `epsilon=` override of `Attack.__call__`), batch by batch with the same
    stateless per-batch seeds as `attack.generate`, so every number equals
    that of the same attack called directly. **Robust accuracy** is the
    RobustBench/AutoAttack one: an example counts as robust only when it is
    classified correctly both clean and under attack. The report holds the
    clean accuracy, the robust accuracy per attack and ε, the per-example
    worst case over all attacks (robust at ε only if *every* attack failed),
    the robustness margin, a per-class breakdown, the empirical robustness
    (mean minimal perturbation) and gradient-masking warnings (Carlini et al.
    2019, "On Evaluating Adversarial Robustness").

    The data is *streamed*: one batch at a time is attacked and only the
    per-example results a report needs are kept (a few bytes per example
    and attack, plus 8 example images), so a `tf.data.Dataset` of any size
    runs in flat memory. `shard=(i, n)` evaluates only the batches whose
    index is `i` modulo `n` (one worker of `n`); `RobustnessReport.merge`
    puts the shards' reports together into exactly the unsharded report.
    `strategy=` splits every batch across the replicas of a
    `tf.distribute.Strategy` (see `docs/distributed.md`).
    Single-unit (sigmoid) binary classifiers are supported: their class is
    the output thresholded at 0.5 (probabilities) or 0 (logits).

    Example:

    ```python
    report = keras_adv.evaluate_robustness(
        model, x_test, y_test,
        attacks={"fgsm": keras_adv.attacks.FGSM(epsilon=0.1),
                 "pgd": keras_adv.attacks.PGD(epsilon=0.1, steps=20)},
        epsilons=[0.05, 0.1, 0.2, 0.3])
    print(report); report.plot("robustness.png"); report.to_dict()
    ```

    Args:
        model: a Keras classifier (logits or probabilities), or the path of a
            `.keras` file.
        data: inputs `x` (numpy, with `y`), an `(x, y)` tuple, or a
            `tf.data.Dataset` yielding `(x, y)` batches.
        y: labels for numpy `data` (integers or one-hot).
        attacks: `{name: attack}`; all attacks must share one norm when
            `epsilons` is given (ε values of different norms do not compare).
        epsilons: budgets at which to run every attack. `None` runs each
            attack once at its own ε.
        minimal_attack: optional minimal-perturbation attack
            (`allows_unbounded`, e.g. Carlini-Wagner) whose mean ‖x_adv − x‖
            over the examples it breaks is reported as the empirical
            robustness, beside the ε-grid estimate.
        batch_size: batch size for attacks and predictions on numpy data; a
            `tf.data.Dataset` is attacked in its own batches.
        diagnose: run the gradient-masking checks (cheap ones: input
            gradients, determinism, and checks on the results).
        tolerance: accuracy difference (absolute) above which a diagnostic fires.
        seed: seed of attacks that have none of their own.
        max_examples: evaluate only the first `max_examples` examples.
        verbose: 0 silent, 1 (or `"auto"`) a progress bar, and attacks that
            report progress print it (AutoAttack: the points still robust
            after each sub-attack, per batch).
        shard: optional `(index, count)`: evaluate only this worker's share
            of the batches (with the seeds of the whole run).
        strategy: optional `tf.distribute.Strategy` (e.g.
            `tf.distribute.MirroredStrategy()` over the local GPUs): each
            batch is split across its replicas, each replica attacks its part
            with the batch seed folded with its replica id, and the parts are
            gathered back before the report is built, by the same code as
            without a strategy. Attacks that draw no random numbers (FGSM,
            PGD without random start, C&W, ...) give exactly the report of a
            run without a strategy; attacks that draw random numbers (random
            starts, APGD, Square's queries, AutoAttack) draw them per replica,
            so their numbers differ as with another seed. It
            applies to `attacks` and `minimal_attack`; diagnostics and the
            adaptive re-runs run without it. Combines with `shard`.
        adaptive: flag, then break: when True (or a dict of options, see
            `keras_adv.evaluation.adaptive.DEFAULT_OPTIONS`), the diagnostics
            run (plus a per-layer gradient probe) and the attacks are re-run
            with the technique each finding calls for: BPDA for missing or
            misleading gradients, EOT for randomness at inference, a margin
            loss for vanishing gradients, more steps and restarts for
            unconverged attacks, a gradient-free attack for the rest. The
            report keeps the naive numbers and adds the adaptive ones, with
            what changed and why (`report.adaptive`, `str(report)`,
            `report.to_dict()["adaptive"]`). Naive attacks that cannot run
            (no input gradient) are listed as not applicable; when none can
            run, the naive robust accuracy is the clean accuracy (nothing
            broke anything) instead of an error.

    Returns:
        A `keras_adv.evaluation.RobustnessReport`.
    """
    model = _common.load_model(model)
    discrete = isinstance(attacks, Mapping) and bool(attacks) and all(
        getattr(a, "discrete_inputs", False) for a in attacks.values())  # token-id attacks (HotFlip)
    batch_size = check_number("batch_size", batch_size, minimum=1, integer=True)
    tolerance = check_number("tolerance", tolerance, minimum=0.0)
    if max_examples is not None:
        max_examples = check_number("max_examples", max_examples, minimum=1, integer=True)
    shard = _batches.check_shard(shard)
    strategy = _distribute.check_strategy(strategy)
    if not isinstance(attacks, Mapping) or not attacks:
        raise ValueError("`attacks` must be a non-empty dict {name: keras_adv.attacks.Attack}.")
    for name, attack in attacks.items():
        if not isinstance(attack, Attack):
            raise TypeError(f"`attacks[{name!r}]` must be a keras_adv.attacks.Attack, got {type(attack).__name__}.")
        if getattr(attack, "targeted", False):
            raise ValueError(
                f"`attacks[{name!r}]` is targeted, but evaluate_robustness passes the *true* labels: a targeted "
                "attack would steer each example towards its own class and measure nothing. Use an untargeted "
                "attack (targeted=False); AutoAttack's APGD-T/FAB-T members pick their target classes themselves."
            )
    _check_one_input_kind(attacks)
    norms = {a.norm.name for a in attacks.values()}
    if epsilons is not None:
        if len(norms) > 1:
            raise ValueError(
                f"`attacks` mix norms {sorted(norms)} while sharing `epsilons`; ε values of different "
                "norms are not comparable: evaluate each threat model in its own call."
            )
        epsilons = sorted({check_number(f"epsilons[{i}]", e, minimum=0.0) for i, e in enumerate(epsilons)})
        if not epsilons:
            raise ValueError("`epsilons` must hold at least one budget.")
        fractional = [e for e in epsilons if not float(e).is_integer()]
        if norms == {"l0"} and fractional:
            raise ValueError(
                f"`epsilons` must be whole numbers for the l0 threat model of token attacks (ε counts the "
                f"substituted tokens), got {[float(e) for e in fractional]}; e.g. epsilons=[1, 2, 3]."
            )
    if minimal_attack is not None and not isinstance(minimal_attack, Attack):
        raise TypeError(f"`minimal_attack` must be a keras_adv.attacks.Attack, got {type(minimal_attack).__name__}.")
    _batches.check_data(data, max_examples=max_examples)
    if not isinstance(data, tf.data.Dataset):
        if isinstance(data, (tuple, list)) and len(data) == 2 and y is None:
            data, y = data
        _batches.refuse_dict(data)
        if isinstance(data, tf.RaggedTensor):
            raise TypeError("`data` is a tf.RaggedTensor: pad the sequences to a dense (examples, length) "
                            "batch first, e.g. `data.to_tensor()`.")
        if y is None:
            raise ValueError("`y` is required when `data` is an array of inputs (or pass `data=(x, y)`).")
        for attack in attacks.values():  # a DataFrame is read by position: its columns must be the space's
            if isinstance(getattr(attack, "domain", None), FeatureSpace):
                attack.domain.check_columns(data, argument="data")
        data, y = np.asarray(data), np.asarray(y)
        if discrete and not np.issubdtype(data.dtype, np.integer):
            raise TypeError(f"`data` must hold integer token ids for token attacks, got dtype {data.dtype}.")
        if not discrete and not np.issubdtype(data.dtype, np.floating):
            raise TypeError(_input_space_message(model, data.dtype, attacks))
        if discrete:  # ids outside the Embedding's vocabulary: a named error before any attack runs
            for attack in attacks.values():
                attack.validate_token_ids(model, data if max_examples is None else data[:max_examples], "data")
    elif y is not None:
        raise ValueError("`y` must be None when `data` is a tf.data.Dataset (it yields (x, y)).")
    if not discrete and embeddings_of(model):  # float "ids" of a text model: not a missing gradient
        spec = data.element_spec if isinstance(data, tf.data.Dataset) else data
        spec = spec[0] if isinstance(spec, (tuple, list)) and spec else spec
        message = (data_checks.input_kind_message(model, "data", spec.dtype)
                   if isinstance(spec, (np.ndarray, tf.TensorSpec)) else None)
        if message is not None:
            raise TypeError(f"{message} Attack the ids with keras_adv.attacks.HotFlip, or the embedded "
                            "sequence with perturb_layer='embedding'.")
    verbose = 1 if verbose == "auto" else int(verbose)

    plan = [(name, attack, eps) for name, attack in attacks.items()
            for eps in (epsilons if epsilons is not None else [attack.epsilon])]
    runs = [_Run(name, attack, eps, model, seed, verbose, strategy) for name, attack, eps in plan]
    minimal_run = (_Run(minimal_attack.name, minimal_attack, None, model, seed, verbose, strategy)
                   if minimal_attack is not None else None)
    nb = _batches.num_batches(data, y, batch_size=batch_size, max_examples=max_examples, shard=shard)
    bar = None
    if verbose:
        total = None if nb is None else nb * (len(runs) + (minimal_run is not None))
        bar = keras.utils.Progbar(total, unit_name="batch")

    adaptive_options = None
    if adaptive is not False and adaptive is not None:
        from keras_adv.evaluation import adaptive as adaptive_lib

        adaptive_options = adaptive_lib._options(adaptive)  # bad options fail before any attack runs
        diagnose = True
    acc = _Accumulator(plan, minimal_run is not None)
    not_applicable: Dict[str, str] = {}
    predict = _common.call_function(model)
    from_logits = losses_lib.infer_from_logits(model)  # what a single-unit output holds, when known
    first_batch = None
    done = 0
    for batch in _batches.iterate(data, y, batch_size=batch_size, max_examples=max_examples, shard=shard,
                                  check_float=not discrete):
        if first_batch is None:
            first_batch = batch
        if discrete and isinstance(data, tf.data.Dataset):  # streamed ids: checked batch by batch
            for attack in attacks.values():
                attack.validate_token_ids(model, batch.x, "data")
        labels = _common.labels_of(batch.y)
        out_clean = np.asarray(predict(tf.convert_to_tensor(batch.x, None if discrete else tf.float32)),
                               np.float32)
        classes = max(out_clean.shape[-1], 2)  # a single-unit output is binary
        if batch is first_batch and from_logits is None and out_clean.shape[-1] == 1:
            import warnings

            warnings.warn(
                "evaluate_robustness cannot tell whether the model's single output is a logit or a probability "
                "(its last layer does not say, and it is not compiled): each batch is read from its values "
                "(all in [0, 1]: probabilities, thresholded at 0.5), which misreads a batch of logits that all "
                "lie in [0, 1]. Compile the model with its loss (e.g. BinaryCrossentropy(from_logits=True)) "
                "or end it in a Dense layer with its activation.", stacklevel=2)
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(
                f"`y` has labels outside [0, {classes}) (the model outputs {classes} classes); got labels in "
                f"[{labels.min()}, {labels.max()}]."
            )
        clean_ok = _predicted(out_clean, from_logits) == labels
        acc.add_clean(batch, labels, clean_ok, _true_prob(_common.to_probs(out_clean, from_logits), labels),
                      num_classes=out_clean.shape[-1])
        for i, run in enumerate(runs):
            if run.name in not_applicable:
                continue
            try:
                x_adv = run(batch)
            except NoInputGradientError:
                # A masked model: this attack cannot run; report it as n/a, keep the others.
                not_applicable[run.name] = "the model has no input gradient"
                continue
            out_adv = np.asarray(predict(tf.convert_to_tensor(x_adv)), np.float32)
            pred_adv = _predicted(out_adv, from_logits)
            acc.add_attack(i, correct=clean_ok & (pred_adv == labels),
                           p_true=_true_prob(_common.to_probs(out_adv, from_logits), labels),
                           perturbation=np.asarray(run.attack.norm.distance(batch.x, x_adv)),
                           x_adv=x_adv, pred_adv=pred_adv)
            done += 1
            if bar is not None:
                bar.update(done)
        if minimal_run is not None:
            x_min = minimal_run(batch)
            pred = _predicted(np.asarray(predict(tf.convert_to_tensor(x_min))), from_logits)
            acc.add_minimal(np.asarray(minimal_attack.norm.distance(batch.x, x_min)),
                            (pred != labels) & clean_ok)
            done += 1
            if bar is not None:
                bar.update(done)

    if (not_applicable and len(not_applicable) == len({name for name, _, _ in plan})
            and adaptive_options is None):  # adaptive mode goes on: BPDA or a gradient-free attack will run
        tabular = all(isinstance(getattr(a, "domain", None), FeatureSpace) for a in attacks.values())
        suggestion = ("keras_adv.attacks.Evolutionary (with the same `domain`)" if tabular
                      else "keras_adv.attacks.Square")
        raise NoInputGradientError(
            "The model has no gradient with respect to its input, and every attack given needs "
            f"one ({', '.join(not_applicable)}): add a gradient-free attack such as "
            f"{suggestion} to `attacks`."
        )
    report = acc.report(
        norm=sorted(norms)[0] if len(norms) == 1 else "mixed",
        bounds=tuple(next(iter(attacks.values())).bounds),
        minimal_attack=minimal_attack,
        tolerance=tolerance,
        not_applicable=not_applicable,
        batch_size=None if isinstance(data, tf.data.Dataset) else batch_size,
    )
    if diagnose:
        from keras_adv.evaluation import diagnostics

        xb, yb = first_batch.x, first_batch.y
        # Input gradients and float perturbations do not exist for token ids.
        report.input_warnings = [] if discrete else (
            diagnostics.check_gradients(model, xb, yb) + diagnostics.check_determinism(model, xb))
        if adaptive_options is not None and not discrete:
            report.input_warnings += diagnostics.check_layers(
                model, xb, epsilon=adaptive_lib._probe_epsilon(report, attacks))
        report.warnings = list(report.input_warnings) + diagnostics.check_report(
            report, tolerance=tolerance, convergence_tolerance=max(tolerance, 0.1))
        report.diagnosed = True
    if adaptive_options is not None:
        report.adaptive = adaptive_lib.run_adaptive(
            model, data, y, report, attacks, epsilons, options=adaptive_options, sample=first_batch.x,
            evaluate=evaluate_robustness, batch_size=batch_size, seed=seed, verbose=verbose,
            max_examples=max_examples, shard=shard, plan_epsilons=sorted({float(e) for _, _, e in plan if e is not None}))
    return report


def _check_one_input_kind(attacks) -> None:
    """Token attacks (integer ids, l0) and input-space attacks (floating inputs) do not mix in one call."""
    tokens = [n for n, a in attacks.items() if getattr(a, "discrete_inputs", False)]
    if tokens and len(tokens) < len(attacks):
        def describe(names):
            return ", ".join(f"{n!r} ({type(attacks[n]).__name__}, {attacks[n].norm.name})" for n in names)

        raise ValueError(
            f"`attacks` mix token attacks ({describe(tokens)}), which substitute integer token ids, with "
            f"input-space attacks ({describe([n for n in attacks if n not in tokens])}), which perturb "
            "floating-point inputs: their inputs and threat models differ. Evaluate each kind in its own call."
        )


def _input_space_message(model, dtype, attacks) -> str:
    """The error for non-floating `data` given to input-space attacks (integer ids of a text model named)."""
    scalar = all(getattr(a.domain, "is_scalar", True) for a in attacks.values())  # not tables (FeatureSpace)
    if scalar and np.issubdtype(dtype, np.integer):
        embeddings = embeddings_of(model)
        if embeddings:
            return (
                f"`data` holds integer token ids ({dtype}) and the model embeds them (Embedding "
                f"{embeddings[0].name!r}), but the attacks given perturb floating-point inputs. Evaluate "
                "robustness to token substitutions with keras_adv.attacks.HotFlip, e.g. "
                "attacks={'hotflip': keras_adv.attacks.HotFlip(max_substitutions=3)}, epsilons=[1, 2, 3]."
            )
    return f"`data` must hold floating-point inputs, got dtype {dtype}."


class _Run:
    """One (attack, ε) of the plan: its compiled batch function and its seed stream."""

    def __init__(self, name, attack, epsilon, model, seed, verbose, strategy=None):
        self.name, self.attack, self.epsilon = name, attack, epsilon
        self.seed = _batches.base_seed(attack.seed if attack.seed is not None else seed)
        # The one place a batch is attacked; with a strategy, across its replicas.
        self.fn = attack.batch_function(model, verbose=verbose, strategy=strategy)

    def __call__(self, batch):
        eps = None if self.epsilon is None else float(self.epsilon)
        return np.asarray(self.fn(batch.x, batch.y, eps, _batches.batch_seed(self.seed, batch.index)))


class _Accumulator:
    """Per-example results of a stream, kept as small per-batch chunks (no inputs except the first few)."""

    def __init__(self, plan, minimal):
        self.plan = plan
        self.chunks = {k: [] for k in ("labels", "keys", "clean_correct", "p_true_clean")}
        self.attack_chunks = [{k: [] for k in ("correct", "p_true", "perturbation")} for _ in plan]
        self.examples = []
        self.example_keys = []
        self.attack_examples = [[] for _ in plan]
        self.attack_predictions = [[] for _ in plan]
        self.minimal = {"sizes": [], "broken": []} if minimal else None
        self.num_classes = None
        self._room = 0  # example slots the current batch fills

    def add_clean(self, batch, labels, clean_ok, p_true, *, num_classes):
        n = len(labels)
        self.num_classes = max(2, int(num_classes))
        keys = batch.index * (1 << 32) + np.arange(n, dtype=np.int64)
        for k, v in (("labels", labels), ("keys", keys), ("clean_correct", clean_ok), ("p_true_clean", p_true)):
            self.chunks[k].append(v)
        self._room = max(0, _NUM_EXAMPLE_IMAGES - sum(len(e) for e in self.examples))
        if self._room:
            self.examples.append(np.array(batch.x[: self._room], np.float32))
            self.example_keys.append(keys[: self._room])

    def add_attack(self, i, *, correct, p_true, perturbation, x_adv, pred_adv):
        c = self.attack_chunks[i]
        c["correct"].append(np.asarray(correct, bool))
        c["p_true"].append(np.asarray(p_true, np.float64))
        c["perturbation"].append(np.asarray(perturbation, np.float64).reshape(-1))
        if self._room:
            self.attack_examples[i].append(np.array(x_adv[: self._room]))
            self.attack_predictions[i].append(np.asarray(pred_adv[: self._room]))

    def add_minimal(self, sizes, broken):
        self.minimal["sizes"].append(np.asarray(sizes).reshape(-1))
        self.minimal["broken"].append(np.asarray(broken, bool))

    def report(self, *, norm, bounds, minimal_attack, tolerance, not_applicable=None, batch_size=None):
        cat = np.concatenate
        not_applicable = dict(not_applicable or {})
        results: Dict[str, AttackResult] = {}
        for i, (name, attack, eps) in enumerate(self.plan):
            if name in not_applicable:
                continue
            c = self.attack_chunks[i]
            res = results.setdefault(name, AttackResult(name=name, attack=attack))
            res.add(epsilon=float(eps), correct=cat(c["correct"]), p_true=cat(c["p_true"]),
                    perturbation=cat(c["perturbation"]), examples=cat(self.attack_examples[i]),
                    example_predictions=cat(self.attack_predictions[i]))
        minimal = None
        if self.minimal is not None:
            minimal = {"name": minimal_attack.name, "norm": minimal_attack.norm.name,
                       "sizes": cat(self.minimal["sizes"]), "broken": cat(self.minimal["broken"])}
        return RobustnessReport(
            labels=cat(self.chunks["labels"]), num_classes=self.num_classes, norm=norm, bounds=bounds,
            clean_correct=cat(self.chunks["clean_correct"]), p_true_clean=cat(self.chunks["p_true_clean"]),
            results=results, minimal=minimal, clean_examples=cat(self.examples), tolerance=tolerance,
            keys=cat(self.chunks["keys"]), example_keys=cat(self.example_keys),
            not_applicable=not_applicable, batch_size=batch_size,
        )


_predicted = _common.predicted_classes


def _true_prob(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if probs.shape[-1] == 1:
        p1 = probs[:, 0]
        return np.where(labels == 1, p1, 1 - p1)
    return probs[np.arange(len(labels)), labels]
