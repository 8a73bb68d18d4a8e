"""Gradient-masking diagnostics (Carlini et al. 2019, "On Evaluating Adversarial Robustness";
Athalye, Carlini & Wagner 2018, "Obfuscated Gradients Give a False Sense of Security").

Each check returns a list of `MaskingWarning`s (empty when it found nothing).
`diagnose_gradient_masking` runs them all on a model; `evaluate_robustness`
runs the cheap ones and the checks on its own results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import keras
import numpy as np
import tensorflow as tf

from keras_adv import losses as losses_lib
from keras_adv.attacks.attack import Attack
from keras_adv.attacks.gradients import NoInputGradientError, value_and_gradient
from keras_adv.utils.validation import check_number
from keras_adv.evaluation import _common

__all__ = [
    "MaskingWarning",
    "Diagnosis",
    "diagnose_gradient_masking",
    "check_gradients",
    "check_determinism",
    "check_report",
    "check_layers",
    "probe_layers",
]

#: Names of every check, in the order `diagnose_gradient_masking` runs them.
CHECKS = (
    "no_gradient",
    "zero_gradient",
    "nonfinite_gradient",
    "nondeterministic",
    "inconsistent_gradient",
    "multi_step_weaker",
    "more_steps_stronger",
    "non_monotonic",
    "large_epsilon_not_zero",
    "unbounded_incomplete",
    "gradient_free_stronger",
)


@dataclass
class MaskingWarning:
    """One diagnostic that fired: `check` (a name of `CHECKS`), a message and its numbers."""

    check: str
    message: str
    details: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self):
        return {"check": self.check, "message": self.message, "details": self.details}

    def __str__(self):
        return f"[{self.check}] {self.message}"


@dataclass
class Diagnosis:
    """The outcome of `diagnose_gradient_masking`.

    Attributes:
        warnings: the checks that fired.
        measurements: every number measured (accuracies per attack, gradient statistics).
        skipped: checks that could not run, with the reason.
    """

    warnings: List[MaskingWarning]
    measurements: Dict[str, Any]
    skipped: Dict[str, str]

    @property
    def flagged(self) -> bool:
        return bool(self.warnings)

    @property
    def checks(self) -> List[str]:
        return [w.check for w in self.warnings]

    def __str__(self):
        if not self.warnings:
            head = "gradient-masking diagnostics: no warning"
        else:
            head = f"gradient-masking diagnostics: {len(self.warnings)} warning(s)\n" + "\n".join(
                f"  {w}" for w in self.warnings)
        if self.skipped:
            head += "\nskipped: " + "; ".join(f"{k} ({v})" for k, v in self.skipped.items())
        return head


# ------------------------------------------------------------- cheap checks
def check_gradients(model, x, y, *, loss=None, zero_fraction: float = 0.1) -> List[MaskingWarning]:
    """Input gradients of the loss: missing (None), non-finite, or exactly zero for many examples."""
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    y = tf.convert_to_tensor(np.asarray(y))
    loss_fn = losses_lib.per_example(loss) or losses_lib.crossentropy
    try:
        _, grad = value_and_gradient(lambda x_: loss_fn(y, model(x_, training=False)), x)
    except NoInputGradientError:
        return [MaskingWarning(
            "no_gradient",
            "the loss has no gradient with respect to the input (a non-differentiable op such as "
            "rounding, argmax or stop_gradient); gradient attacks cannot run, so their numbers "
            "say nothing: use a gradient-free attack or BPDA (Athalye et al. 2018).",
        )]
    g = grad.numpy().reshape(len(grad), -1)
    out = []
    finite = np.isfinite(g).all(1)
    if not finite.all():
        out.append(MaskingWarning(
            "nonfinite_gradient",
            f"{np.mean(~finite):.1%} of examples have NaN/inf input gradients.",
            {"fraction": float(np.mean(~finite))},
        ))
    zero = (np.abs(np.where(np.isfinite(g), g, 0.0)).max(1) == 0.0) & finite
    if np.mean(zero) > zero_fraction:
        out.append(MaskingWarning(
            "zero_gradient",
            f"{np.mean(zero):.1%} of examples have an input gradient that is exactly zero "
            "(saturated softmax, quantisation or a shattered gradient): gradient attacks stall.",
            {"fraction": float(np.mean(zero))},
        ))
    return out


def check_determinism(model, x, *, repeats: int = 2, atol: float = 1e-5) -> List[MaskingWarning]:
    """The forward pass in inference mode must give the same outputs on the same inputs."""
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    first = np.asarray(model(x, training=False))
    diff = 0.0
    for _ in range(repeats - 1):
        diff = max(diff, float(np.max(np.abs(np.asarray(model(x, training=False)) - first))))
    scale = max(1.0, float(np.max(np.abs(first))))
    if diff > atol * scale:
        return [MaskingWarning(
            "nondeterministic",
            f"the forward pass is random at inference (outputs differ by up to {diff:.3g} between "
            "two calls on the same inputs): single-sample attacks face a moving target; attack "
            "the expectation (EOT, Athalye et al. 2018) before trusting the numbers.",
            {"max_abs_difference": diff},
        )]
    return []


class _LayerProbe(keras.layers.Layer):
    """`[x, y] -> y`; when run eagerly, measures `layer`'s backward pass at `x` (see `probe_layers`)."""

    def __init__(self, layer, measure, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer
        self.measure = measure
        self.supports_masking = True  # `y`'s mask (an Embedding's padding) goes on downstream

    def call(self, inputs):
        x, y = inputs
        if tf.executing_eagerly():
            self.measure(self.layer, x)
        return y

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[1].shape, dtype=inputs[1].dtype)

    def compute_mask(self, inputs, mask=None):
        return mask[1] if isinstance(mask, (list, tuple)) else mask


def _probe_candidate(layer) -> bool:
    from keras_adv.attacks import wrappers

    return (not isinstance(layer, (keras.Model, keras.layers.InputLayer, _LayerProbe,
                                   wrappers._BackwardSubstitute, wrappers._Apply))
            and not layer.trainable_weights)


def probe_layers(model, x, *, epsilon: float, zero_fraction: float = 0.1, agreement: float = 0.5,
                 seed: int = 0) -> Dict[str, Dict[str, Any]]:
    """Locates the layers whose backward pass is useless to an attacker.

    For every layer without trainable weights that maps one tensor to a
    tensor of the same shape (preprocessing, activations, custom ops: the
    places masking defences live), at its actual inputs on `x`:

    * `random`: two calls on the same input differ (randomness at inference);
    * `no_gradient`: the vector-Jacobian product is None;
    * `zero_gradient`: it is exactly zero for more than `zero_fraction` of
      the examples (a saturated layer);
    * `inconsistent`: it disagrees with the forward pass: the cosine, across
      examples, between the directional derivative `⟨∇⟨u, f⟩, v⟩` and the
      central finite difference of `⟨u, f⟩` along a random sign direction `v`
      at the attack's scale (ε, rescaled to the layer's input spread) is below
      `agreement` (a reversed, shattered or otherwise misleading gradient).

    Layers inside nested functional or Sequential models are probed too; a
    subclassed model is one opaque layer. Runs one eager forward pass.

    Returns:
        `{layer name: {"reason": ..., numbers}}` for the suspicious layers only.
    """
    from keras_adv.attacks.wrappers import _is_graph_model, rebuild

    if not _is_graph_model(model):
        return {}
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    scale_in = float(tf.math.reduce_std(x)) or 1.0
    findings: Dict[str, Dict[str, Any]] = {}
    counter = [0]

    def measure(layer, xl):
        if not xl.dtype.is_floating:
            return
        counter[0] += 1
        s1, s2 = (seed, 2 * counter[0]), (seed, 2 * counter[0] + 1)
        y1, y2 = layer(xl), layer(xl)
        if not tf.is_tensor(y1) or y1.shape != xl.shape:
            return
        spread = float(tf.reduce_max(tf.abs(y1))) + 1.0
        if float(tf.reduce_max(tf.abs(y1 - y2))) > 1e-6 * spread:
            findings[layer.name] = {"reason": "random"}
            return
        u = tf.random.stateless_normal(tf.shape(y1), s1, dtype=y1.dtype)
        with tf.GradientTape() as tape:
            tape.watch(xl)
            total = tf.reduce_sum(u * tf.cast(layer(xl), u.dtype))
        g = tape.gradient(total, xl)
        if g is None:
            findings[layer.name] = {"reason": "no_gradient"}
            return
        n = int(xl.shape[0])
        g = tf.reshape(tf.cast(g, tf.float32), [n, -1]).numpy()
        zero = float(np.mean(np.all(g == 0.0, axis=1)))
        if zero > zero_fraction:
            findings[layer.name] = {"reason": "zero_gradient", "zero_fraction": zero}
            return
        h = float(epsilon) * max(float(tf.math.reduce_std(tf.cast(xl, tf.float32))), 1e-6) / scale_in
        v = tf.sign(tf.random.stateless_uniform(tf.shape(xl), s2, dtype=xl.dtype) - 0.5)
        uf = tf.reshape(u, [n, -1])

        def f(z):
            return tf.reduce_sum(uf * tf.reshape(tf.cast(layer(z), u.dtype), [n, -1]), axis=1).numpy()

        fd = (f(xl + h * v) - f(xl - h * v)) / (2 * h)
        an = np.sum(g * tf.reshape(tf.cast(v, tf.float32), [n, -1]).numpy(), axis=1)
        ok = np.isfinite(fd) & np.isfinite(an)
        fd, an = fd[ok], an[ok]
        norm = float(np.linalg.norm(fd) * np.linalg.norm(an))
        if norm == 0.0:
            return
        cosine = float(np.dot(fd, an) / norm)
        if cosine < agreement:
            findings[layer.name] = {"reason": "inconsistent", "cosine": cosine, "scale": h}

    def wrap(layer, xt, yt):
        return _LayerProbe(layer, measure, name=f"probe_{layer.name}")([xt, yt])

    def select(layer):
        return _probe_candidate(layer)

    try:
        probed = rebuild(model, wrap, select)
    except ValueError:
        return {}
    probed(x, training=False)
    return findings


def check_layers(model, x, *, epsilon: float, agreement: float = 0.5) -> List[MaskingWarning]:
    """`inconsistent_gradient` when a layer's backward pass disagrees with its forward pass (`probe_layers`)."""
    found = probe_layers(model, x, epsilon=epsilon, agreement=agreement)
    bad = {k: v for k, v in found.items() if v["reason"] == "inconsistent"}
    if not bad:
        return []
    desc = ", ".join(f"{k!r} (cosine {v['cosine']:.2f})" for k, v in bad.items())
    return [MaskingWarning(
        "inconsistent_gradient",
        f"the backward pass of layer(s) {desc} disagrees with the forward pass (directional "
        "derivative vs finite difference at the attack's scale): gradients point the wrong way "
        "(reversed or shattered); attack through a straight-through substitute (BPDA).",
        {"layers": found},
    )]


def _steps(attack):
    return getattr(attack, "steps", None)


def _is_gradient_free(attack):
    return bool(getattr(attack, "gradient_free", False))


def _budget(attack):
    return (_steps(attack) or 0) * (getattr(attack, "restarts", None) or 1)


def check_report(report, *, tolerance: float = 0.05, convergence_tolerance: float = 0.1) -> List[MaskingWarning]:
    """Checks on the results of a `RobustnessReport` (no extra model calls)."""
    out = []
    names = list(report.results)
    # 0. more steps × restarts of a multi-step attack of the same class lowering accuracy a lot.
    for a in names:
        for b in names:
            ra, rb = report.results[a], report.results[b]
            if (type(ra.attack) is not type(rb.attack) or _steps(ra.attack) is None
                    or not 1 < _budget(ra.attack) < _budget(rb.attack)):
                continue
            for e in sorted(set(ra.epsilons) & set(rb.epsilons)):
                if rb.accuracy(e) < ra.accuracy(e) - convergence_tolerance:
                    out.append(MaskingWarning(
                        "more_steps_stronger",
                        f"{b!r} ({rb.accuracy(e):.3f}) is much stronger than {a!r} ({ra.accuracy(e):.3f}) "
                        f"at ε={e:g}: the weaker attack had not converged; do not report it alone.",
                        {"epsilon": e, "weaker": a, "stronger": b},
                    ))
                    break
    # 1. a multi-step attack weaker than a single-step one at the same ε.
    for a in names:
        for b in names:
            ra, rb = report.results[a], report.results[b]
            if _is_gradient_free(ra.attack) or _is_gradient_free(rb.attack):
                continue
            if _steps(ra.attack) == 1 and (_steps(rb.attack) or 0) > 1:
                for e in set(ra.epsilons) & set(rb.epsilons):
                    acc_s, acc_m = ra.accuracy(e), rb.accuracy(e)
                    if acc_m > acc_s + tolerance:
                        out.append(MaskingWarning(
                            "multi_step_weaker",
                            f"multi-step {b!r} ({acc_m:.3f}) is weaker than single-step {a!r} "
                            f"({acc_s:.3f}) at ε={e:g}: the loss surface misleads iterative attacks.",
                            {"epsilon": e, "single_step": a, "multi_step": b,
                             "single_accuracy": acc_s, "multi_accuracy": acc_m},
                        ))
    # 2. accuracy must not rise with ε.
    curves = {n: (report.results[n].epsilons, [report.results[n].accuracy(e) for e in report.results[n].epsilons])
              for n in names}
    for n, (eps, acc) in curves.items():
        order = np.argsort(eps)
        e_sorted, a_sorted = np.asarray(eps)[order], np.asarray(acc)[order]
        for i in range(1, len(a_sorted)):
            if a_sorted[i] > a_sorted[: i].min() + tolerance:
                out.append(MaskingWarning(
                    "non_monotonic",
                    f"{n!r}: accuracy rises with ε ({a_sorted[: i].min():.3f} at a smaller ε, "
                    f"{a_sorted[i]:.3f} at ε={e_sorted[i]:g}); a larger budget can only help a "
                    "working attack.",
                    {"attack": n, "epsilon": float(e_sorted[i]), "accuracy": float(a_sorted[i])},
                ))
                break
    # 3. accuracy not reaching ~0 at a huge ε.
    # (scalar bounds only: a tabular domain measures ε on its own per-feature scale)
    if report.norm == "linf" and report.epsilons and not isinstance(report.bounds[0], list):
        lo, hi = report.bounds
        e_max = max(report.epsilons)
        if e_max >= 0.5 * (hi - lo):
            acc = report.worst_case_accuracy(e_max)
            if acc > tolerance:
                out.append(MaskingWarning(
                    "large_epsilon_not_zero",
                    f"worst-case accuracy is {acc:.3f} at ε={e_max:g} (half the input range or more, "
                    "where every input can be turned into a near-uniform grey image): a working "
                    "attack reaches ~0.",
                    {"epsilon": e_max, "accuracy": acc},
                ))
    # 4. the gradient-free attack beating the gradient attacks.
    gf = [n for n in names if _is_gradient_free(report.results[n].attack)]
    gr = [n for n in names if n not in gf]
    for f in gf:
        for e in report.results[f].epsilons:
            accs = [report.results[g].accuracy(e) for g in gr if e in report.results[g].epsilons]
            if accs and report.results[f].accuracy(e) < min(accs) - tolerance:
                out.append(_gf_warning(f, report.results[f].accuracy(e), min(accs), e))
    # 5. an unbounded attack below 100% success.
    if report.minimal is not None:
        rate = report.minimal_perturbation()["attack"]["success_rate"]
        if rate is not None and rate < 1.0 - tolerance:
            out.append(_unbounded_warning(report.minimal["name"], rate))
    return out


def _gf_warning(name, acc_f, acc_g, eps):
    return MaskingWarning(
        "gradient_free_stronger",
        f"gradient-free {name!r} ({acc_f:.3f}) beats the best gradient attack ({acc_g:.3f}) at "
        f"ε={eps:g}: gradients point the wrong way (masked or obfuscated).",
        {"epsilon": eps, "gradient_free_accuracy": acc_f, "gradient_accuracy": acc_g},
    )


def _unbounded_warning(name, rate):
    return MaskingWarning(
        "unbounded_incomplete",
        f"unbounded attack {name!r} succeeds on only {rate:.1%} of clean-correct examples; "
        "with no budget every example should fall.",
        {"success_rate": rate},
    )


# --------------------------------------------------------------- the runner
def diagnose_gradient_masking(
    model,
    x,
    y,
    epsilon: float,
    *,
    norm: str = "linf",
    bounds=(0.0, 1.0),
    steps: int = 20,
    strong_steps: Optional[int] = None,
    restarts: int = 3,
    gradient_free_attack: Union[Attack, str, None] = "auto",
    unbounded_attack: Union[Attack, str, None] = "auto",
    tolerance: float = 0.05,
    convergence_tolerance: float = 0.1,
    batch_size: int = 256,
    seed: int = 0,
) -> Diagnosis:
    """Runs every gradient-masking check on `model` at budget `epsilon`.

    Checks (each a `MaskingWarning.check` name):

    * `no_gradient` / `zero_gradient` / `nonfinite_gradient`: input gradients
      missing, exactly zero for over 10% of examples, or NaN/inf;
    * `nondeterministic`: two inference passes on the same inputs differ;
    * `multi_step_weaker`: PGD-`steps` leaves more accuracy than FGSM;
    * `more_steps_stronger`: PGD with `strong_steps` steps and `restarts`
      restarts lowers accuracy by more than `convergence_tolerance` over
      PGD-`steps` (the reference attack had not converged; a few points are
      normal on adversarially trained models: 4.5 points measured from
      PGD-20 to PGD-100×3 on a PGD-trained digits CNN at its training ε);
    * `non_monotonic`: PGD accuracy at ε/2, ε, 2ε, and the whole input range
      rises with ε;
    * `large_epsilon_not_zero`: PGD at ε = the width of `bounds` (L∞; every
      input reachable) leaves accuracy above `tolerance`;
    * `unbounded_incomplete`: an unbounded, minimal-perturbation attack
      (`unbounded_attack`, by default `keras_adv.attacks.CarliniWagnerL2`
      when installed) breaks fewer than `1 − tolerance` of clean-correct
      examples;
    * `gradient_free_stronger`: the gradient-free attack
      (`gradient_free_attack`, by default `keras_adv.attacks.Square` when
      available) leaves less accuracy than the best gradient attack.

    Checks that cannot run (no gradient-free attack available, no gradient)
    are listed in `Diagnosis.skipped` with the reason, never silently dropped.

    Args:
        model: a Keras classifier (or a `.keras` path).
        x, y: a sample to diagnose on (a few hundred examples suffice).
        epsilon: the budget the model claims robustness at.
        norm: the threat model of the built-in PGD/FGSM.
        bounds: valid input range.
        steps: steps of the reference PGD.
        strong_steps: steps of the stronger PGD (default `5·steps`).
        restarts: restarts of the stronger PGD.
        gradient_free_attack: an `Attack` (run at `epsilon`), `"auto"` or None.
        unbounded_attack: an `Attack` with `allows_unbounded`, `"auto"` or None.
        tolerance: absolute accuracy difference that counts as "noticeable".
        convergence_tolerance: the same for the more-steps-and-restarts check.
        batch_size: batch size of the attacks.
        seed: seed of the built-in attacks.

    Returns:
        A `Diagnosis`; `diagnosis.flagged` is True when any check fired.
    """
    from keras_adv import attacks as attacks_lib

    model = _common.load_model(model)
    x, y = _common.to_numpy(x, y, argument="x", model=model)
    labels = _common.labels_of(y)
    epsilon = check_number("epsilon", epsilon, minimum=0.0, strict=True)
    tolerance = check_number("tolerance", tolerance, minimum=0.0)
    convergence_tolerance = check_number("convergence_tolerance", convergence_tolerance, minimum=0.0)
    steps = check_number("steps", steps, minimum=1, integer=True)
    strong_steps = 5 * steps if strong_steps is None else check_number("strong_steps", strong_steps, minimum=1, integer=True)
    lo, hi = bounds
    width = float(hi - lo)
    if norm != "linf":
        width = width * float(np.sqrt(np.prod(x.shape[1:]))) if norm == "l2" else width * float(np.prod(x.shape[1:]))

    warnings: List[MaskingWarning] = []
    skipped: Dict[str, str] = {}
    meas: Dict[str, Any] = {}

    def acc_of(x_eval):
        return float(np.mean(_common.predict_classes(model, x_eval, batch_size) == labels))

    clean_correct = _common.predict_classes(model, x, batch_size) == labels
    meas["clean_accuracy"] = float(clean_correct.mean())

    warnings += check_gradients(model, x[:batch_size], y[:batch_size])
    warnings += check_determinism(model, x[:batch_size])
    has_gradient = "no_gradient" not in [w.check for w in warnings]

    def run(attack, eps="default"):
        return acc_of(_common.run_attack(attack, model, x, y, epsilon=eps, batch_size=batch_size, seed=seed))

    common = dict(norm=norm, bounds=tuple(bounds), seed=seed)
    grad_accs = []
    if has_gradient:
        fgsm = attacks_lib.FGSM(epsilon, **common)
        pgd = attacks_lib.PGD(epsilon, steps=steps, **common)
        strong = attacks_lib.PGD(epsilon, steps=strong_steps, restarts=restarts, **common)
        meas["fgsm"] = run(fgsm)
        meas["pgd"] = run(pgd)
        meas["pgd_strong"] = run(strong)
        grad_accs = [meas["fgsm"], meas["pgd"], meas["pgd_strong"]]
        if meas["pgd"] > meas["fgsm"] + tolerance:
            warnings.append(MaskingWarning(
                "multi_step_weaker",
                f"PGD-{steps} ({meas['pgd']:.3f}) is weaker than FGSM ({meas['fgsm']:.3f}) at ε={epsilon:g}.",
                {"fgsm": meas["fgsm"], "pgd": meas["pgd"]},
            ))
        if meas["pgd_strong"] < meas["pgd"] - convergence_tolerance:
            warnings.append(MaskingWarning(
                "more_steps_stronger",
                f"PGD with {strong_steps} steps × {restarts} restarts ({meas['pgd_strong']:.3f}) is "
                f"noticeably stronger than PGD-{steps} ({meas['pgd']:.3f}): the reference attack has "
                "not converged; report the stronger one (or find why the loss is hard to climb).",
                {"pgd": meas["pgd"], "pgd_strong": meas["pgd_strong"]},
            ))
        grid = sorted({0.5 * epsilon, epsilon, min(2 * epsilon, width), width})
        curve = [(e, meas["pgd"] if e == epsilon else run(pgd, e)) for e in grid]
        meas["pgd_curve"] = curve
        best = curve[0][1]
        for e, a in curve[1:]:
            if a > best + tolerance:
                warnings.append(MaskingWarning(
                    "non_monotonic",
                    f"PGD accuracy rises with ε ({best:.3f} at a smaller ε, {a:.3f} at ε={e:g}).",
                    {"curve": curve},
                ))
                break
            best = min(best, a)
        if curve[-1][1] > tolerance:
            warnings.append(MaskingWarning(
                "large_epsilon_not_zero",
                f"PGD leaves accuracy {curve[-1][1]:.3f} at ε={width:g}, where every input is "
                "reachable: a working gradient attack reaches ~0.",
                {"epsilon": width, "accuracy": curve[-1][1]},
            ))
    else:
        skipped["gradient attacks"] = "the model has no input gradient"

    # An unbounded (minimal-perturbation) attack.
    if unbounded_attack == "auto":
        unbounded_attack = attacks_lib.CarliniWagnerL2(epsilon=None, bounds=tuple(bounds), seed=seed)
    if unbounded_attack is not None:
        if has_gradient or _is_gradient_free(unbounded_attack):
            x_u = _common.run_attack(unbounded_attack, model, x, y, batch_size=batch_size, seed=seed)
            pred = _common.predict_classes(model, x_u, batch_size)
            n_ok = clean_correct.sum()
            rate = float(((pred != labels) & clean_correct).sum() / n_ok) if n_ok else 1.0
            meas["unbounded_success_rate"] = rate
            if rate < 1.0 - tolerance:
                warnings.append(_unbounded_warning(unbounded_attack.name, rate))
        else:
            skipped["unbounded_incomplete"] = "the model has no input gradient"

    # A gradient-free attack.
    if gradient_free_attack == "auto":
        gradient_free_attack = attacks_lib.Square(epsilon=epsilon, norm=norm, bounds=tuple(bounds), seed=seed)
    if gradient_free_attack is not None:
        meas["gradient_free"] = run(gradient_free_attack, epsilon)
        if grad_accs and meas["gradient_free"] < min(grad_accs) - tolerance:
            warnings.append(_gf_warning(gradient_free_attack.name, meas["gradient_free"], min(grad_accs), epsilon))
        if not grad_accs:
            meas["gradient_free_note"] = "no gradient attack to compare with"
    return Diagnosis(warnings=warnings, measurements=meas, skipped=skipped)
