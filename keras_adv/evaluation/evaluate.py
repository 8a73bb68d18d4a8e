"""`evaluate_robustness`: every attack at every ε, the per-example worst case, and diagnostics."""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import keras
import numpy as np

from keras_adv.attacks.attack import Attack, _check_number
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
    adaptive=False,
) -> RobustnessReport:
    """Evaluates a classifier against several attacks over a grid of budgets.

    Each attack is re-run at each ε of `epsilons` (through the per-call
    `epsilon=` override of `Attack.__call__`), batch by batch with the same
    seed stream as `attack.generate`, so every number equals that of the same
    attack called directly. The report holds the clean accuracy, the robust
    accuracy per attack and ε, the per-example worst case over all attacks
    (an example counts as robust at ε only if *every* attack failed on it),
    the robustness margin, a per-class breakdown, the empirical robustness
    (mean minimal perturbation) and gradient-masking warnings (Carlini et al.
    2019, "On Evaluating Adversarial Robustness").

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
        batch_size: batch size for attacks and predictions.
        diagnose: run the gradient-masking checks (cheap ones: input
            gradients, determinism, and checks on the results).
        tolerance: accuracy difference (absolute) above which a diagnostic fires.
        seed: seed of attacks that have none of their own.
        max_examples: evaluate only the first `max_examples` examples.
        verbose: 0 silent, 1 (or `"auto"`) a progress bar.
        adaptive: flag, then break: when True (or a dict of options, see
            `keras_adv.evaluation.adaptive.DEFAULT_OPTIONS`), the diagnostics
            run (plus a per-layer gradient probe) and the attacks are re-run
            with the technique each finding calls for: BPDA for missing or
            misleading gradients, EOT for randomness at inference, a margin
            loss for vanishing gradients, more steps and restarts for
            unconverged attacks, a gradient-free attack for the rest. The
            report keeps the naive numbers and adds the adaptive ones, with
            what changed and why (`report.adaptive`, `str(report)`,
            `report.to_dict()["adaptive"]`).

    Returns:
        A `keras_adv.evaluation.RobustnessReport`.
    """
    model = _common.load_model(model)
    x, y_raw = _common.to_numpy(data, y, max_examples=max_examples)
    labels = _common.labels_of(y_raw)
    batch_size = _check_number("batch_size", batch_size, minimum=1, integer=True)
    tolerance = _check_number("tolerance", tolerance, minimum=0.0)
    if not isinstance(attacks, Mapping) or not attacks:
        raise ValueError("`attacks` must be a non-empty dict {name: keras_adv.attacks.Attack}.")
    for name, attack in attacks.items():
        if not isinstance(attack, Attack):
            raise TypeError(f"`attacks[{name!r}]` must be a keras_adv.attacks.Attack, got {type(attack).__name__}.")
    norms = {a.norm.name for a in attacks.values()}
    if epsilons is not None:
        if len(norms) > 1:
            raise ValueError(
                f"`attacks` mix norms {sorted(norms)} while sharing `epsilons`; ε values of different "
                "norms are not comparable: evaluate each threat model in its own call."
            )
        epsilons = sorted({_check_number("epsilons[i]", e, minimum=0.0) for e in epsilons})
        if not epsilons:
            raise ValueError("`epsilons` must hold at least one budget.")
    if minimal_attack is not None and not isinstance(minimal_attack, Attack):
        raise TypeError(f"`minimal_attack` must be a keras_adv.attacks.Attack, got {type(minimal_attack).__name__}.")
    verbose = 1 if verbose == "auto" else int(bool(verbose))

    outputs_clean = _common.predict(model, x, batch_size)
    probs_clean = _common.to_probs(outputs_clean)
    num_classes = probs_clean.shape[-1]
    pred_clean = _predicted(outputs_clean)
    clean_correct = pred_clean == labels
    p_true_clean = _true_prob(probs_clean, labels)
    k = min(_NUM_EXAMPLE_IMAGES, len(x))

    plan = [(name, attack, eps) for name, attack in attacks.items()
            for eps in (epsilons if epsilons is not None else [attack.epsilon])]
    nb = _common.n_batches(len(x), batch_size)
    total = nb * (len(plan) + (minimal_attack is not None))
    bar = keras.utils.Progbar(total, unit_name="batch") if verbose else None

    results: Dict[str, AttackResult] = {}
    not_run = []
    for name, attack, eps in plan:
        try:
            x_adv = _common.run_attack(attack, model, x, y_raw, epsilon=eps, batch_size=batch_size,
                                       seed=seed, progbar=bar)
        except Exception as e:  # noqa: BLE001 - only the "no input gradient" case is absorbed
            from keras_adv.evaluation.adaptive import is_no_gradient_error

            if adaptive is False or adaptive is None or not is_no_gradient_error(e):
                raise
            # Adaptive mode: a gradient attack that cannot run breaks nothing (the naive number a
            # masked model advertises); the adaptive pass replaces it.
            x_adv = x.copy()
            if name not in not_run:
                not_run.append(name)
        out_adv = _common.predict(model, x_adv, batch_size)
        res = results.setdefault(name, AttackResult(name=name, attack=attack))
        pred_adv = _predicted(out_adv)
        correct = pred_adv == labels
        res.add(
            epsilon=float(eps),
            correct=correct,
            p_true=_true_prob(_common.to_probs(out_adv), labels),
            perturbation=np.asarray(attack.norm.distance(x, x_adv)),
            examples=x_adv[:k],
            example_predictions=pred_adv[:k],
        )

    minimal = None
    if minimal_attack is not None:
        x_min = _common.run_attack(minimal_attack, model, x, y_raw, batch_size=batch_size,
                                   seed=seed, progbar=bar)
        broken = (_predicted(_common.predict(model, x_min, batch_size)) != labels) & clean_correct
        minimal = {
            "name": minimal_attack.name,
            "norm": minimal_attack.norm.name,
            "sizes": np.asarray(minimal_attack.norm.distance(x, x_min)),
            "broken": broken,
        }

    report = RobustnessReport(
        labels=labels,
        num_classes=int(num_classes),
        norm=sorted(norms)[0] if len(norms) == 1 else "mixed",
        bounds=tuple(next(iter(attacks.values())).bounds),
        clean_correct=clean_correct,
        p_true_clean=p_true_clean,
        results=results,
        minimal=minimal,
        clean_examples=x[:k],
        tolerance=tolerance,
    )
    if adaptive is not False and adaptive is not None:
        from keras_adv.evaluation import adaptive as adaptive_lib

        adaptive_options = adaptive_lib._options(adaptive)  # bad options fail before any attack runs
        diagnose = True
    if diagnose:
        from keras_adv.evaluation import diagnostics

        warnings = diagnostics.check_gradients(model, x[:batch_size], y_raw[:batch_size])
        warnings += diagnostics.check_determinism(model, x[:batch_size])
        warnings += diagnostics.check_report(report, tolerance=tolerance,
                                             convergence_tolerance=max(tolerance, 0.1))
        if adaptive is not False and adaptive is not None:
            warnings += diagnostics.check_layers(model, x[:batch_size],
                                                 epsilon=adaptive_lib._probe_epsilon(report, attacks))
        report.warnings = warnings
    if adaptive is not False and adaptive is not None:
        report.adaptive = adaptive_lib.run_adaptive(
            model, x, y_raw, report, attacks, epsilons, options=adaptive_options,
            batch_size=batch_size, seed=seed, verbose=verbose, naive_not_run=not_run)
    return report


_predicted = _common.predicted_classes


def _true_prob(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if probs.shape[-1] == 1:
        p1 = probs[:, 0]
        return np.where(labels == 1, p1, 1 - p1)
    return probs[np.arange(len(labels)), labels]
