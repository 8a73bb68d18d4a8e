"""Adaptive evaluation: from flagging gradient masking to breaking it.

`evaluate_robustness(..., adaptive=True)` reads the gradient-masking
diagnostics' findings and re-runs the attacks with the technique that defeats
each kind of masking (Athalye, Carlini & Wagner 2018, "Obfuscated Gradients
Give a False Sense of Security"; Tramèr, Carlini, Brendel & Madry 2020, "On
Adaptive Attacks to Adversarial Example Defenses"):

| finding | technique |
|---|---|
| `no_gradient`, `inconsistent_gradient` (and the layers `probe_layers` locates) | BPDA: straight-through backward pass through those layers |
| `nondeterministic` | EOT: attacks and decisions on the average prediction over n draws |
| `zero_gradient` | a margin-loss variant (C&W margin; APGD: DLR) of each attack, plus BPDA through saturated layers |
| `more_steps_stronger` | 5× the steps, at least 3 restarts |
| any other warning (`multi_step_weaker`, `gradient_free_stronger`, `non_monotonic`, ...) | a gradient-free attack (Square) |

The report keeps the naive numbers and adds the adaptive ones, with what was
changed and why. An example counts as robust under the adaptive evaluation only
if every naive *and* every adapted attack failed on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

import keras
import numpy as np

from keras_adv.attacks.attack import Attack

__all__ = ["AdaptiveChange", "AdaptiveResult", "DEFAULT_OPTIONS", "run_adaptive"]


#: Options of `evaluate_robustness(..., adaptive={...})`.
DEFAULT_OPTIONS = {
    "eot_samples": 16,      # draws averaged per forward pass under EOT
    "steps_factor": 5,      # more_steps_stronger: steps × this
    "min_restarts": 3,      # ... and at least this many restarts
    "queries": 1000,        # queries of the added gradient-free attack (Square)
}

_REST = ("nonfinite_gradient", "multi_step_weaker", "non_monotonic", "large_epsilon_not_zero",
         "unbounded_incomplete", "gradient_free_stronger")


@dataclass
class AdaptiveChange:
    """One change the adaptive evaluation made: the technique, the finding(s) behind it, and what exactly."""

    technique: str
    reason: List[str]
    detail: str

    def to_dict(self):
        return {"technique": self.technique, "reason": list(self.reason), "detail": self.detail}

    def __str__(self):
        return f"[{', '.join(self.reason)}] {self.technique}: {self.detail}"


@dataclass
class AdaptiveResult:
    """The adaptive part of a `RobustnessReport` (`report.adaptive`).

    Attributes:
        changes: what was changed and why (empty: nothing was flagged).
        report: the `RobustnessReport` of the adapted attacks on the adapted
            model (None when nothing changed).
        naive: `{ε: worst-case robust accuracy of the naive attacks}`.
        adaptive: `{ε: worst-case robust accuracy over the naive and the adapted attacks}`.
        layers: the layer findings of `diagnostics.probe_layers`.
    """

    changes: List[AdaptiveChange]
    report: Any
    naive: Dict[float, float]
    adaptive: Dict[float, float]
    layers: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    tolerance: float = 0.05
    naive_not_run: List[str] = field(default_factory=list)

    def accuracy(self, epsilon: float) -> float:
        """Adaptive worst-case robust accuracy at `epsilon`."""
        for e, a in self.adaptive.items():
            if np.isclose(e, epsilon):
                return a
        raise KeyError(f"no adaptive result at epsilon={epsilon}; epsilons: {sorted(self.adaptive)}.")

    @property
    def overstated(self) -> float:
        """The largest drop, naive → adaptive, over the ε grid (0 when nothing changed)."""
        return max([self.naive[e] - self.adaptive[e] for e in self.naive] + [0.0])

    def verdict(self) -> str:
        if not self.changes:
            return "no masking finding: the naive numbers stand (nothing to adapt)."
        drop = self.overstated
        if drop > self.tolerance:
            return (f"the naive numbers OVERSTATED robustness by up to {drop * 100:.1f} points: "
                    "report the adaptive ones.")
        return (f"the adaptive attacks agree with the naive ones (largest drop {drop * 100:.1f} points "
                f"≤ {self.tolerance * 100:.0f}): the flagged masking did not inflate these numbers.")

    def lines(self) -> List[str]:
        out = ["adaptive evaluation (flag, then break)"]
        if self.naive_not_run:
            out.append(f"  naive attacks not applicable (no input gradient), counted as breaking nothing: "
                       f"{', '.join(self.naive_not_run)}")
        if not self.changes:
            return out + ["  " + self.verdict()]
        out.append("  what changed and why:")
        out += [f"    {c}" for c in self.changes]
        eps = sorted(self.naive)
        out.append("  worst-case robust accuracy   " + "".join(f"ε={e:<8.4g}" for e in eps))
        out.append("    naive                      " + "".join(f"{self.naive[e]:<10.4f}" for e in eps))
        out.append("    adaptive                   " + "".join(f"{self.adaptive[e]:<10.4f}" for e in eps))
        if self.report is not None:
            for name, r in self.report.results.items():
                out.append(f"      {name}: " + ", ".join(f"ε={e:g}: {r.accuracy(e):.4f}" for e in r.epsilons))
        out.append("  verdict: " + self.verdict())
        return out

    def to_dict(self) -> Dict[str, Any]:
        attacks = {}
        if self.report is not None:
            for name, r in self.report.results.items():
                try:
                    config = r.attack.get_config()
                except Exception:  # pragma: no cover - a user attack without config
                    config = {}
                attacks[name] = {"class": type(r.attack).__name__, "config": config,
                                 "results": [{"epsilon": e, "robust_accuracy": r.accuracy(e)} for e in r.epsilons]}
        return {
            "changes": [c.to_dict() for c in self.changes],
            "naive_not_run": list(self.naive_not_run),
            "layers": self.layers,
            "attacks": attacks,
            "worst_case": [{"epsilon": e, "naive": self.naive[e], "adaptive": self.adaptive[e]}
                           for e in sorted(self.naive)],
            "overstated": self.overstated,
            "verdict": self.verdict(),
        }


def _options(adaptive) -> Dict[str, Any]:
    opts = dict(DEFAULT_OPTIONS)
    if isinstance(adaptive, Mapping):
        unknown = sorted(set(adaptive) - set(DEFAULT_OPTIONS))
        if unknown:
            raise ValueError(f"`adaptive` options {unknown} are unknown; valid: {sorted(DEFAULT_OPTIONS)}.")
        opts.update(adaptive)
    for k, v in opts.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"`adaptive[{k!r}]` must be a positive integer, got {v!r}.")
    return opts


def _probe_epsilon(report, attacks) -> float:
    eps = report.epsilons or [a.epsilon for a in attacks.values() if a.epsilon]
    lo, hi = report.bounds
    eps = [e for e in eps if e and e > 0] or [0.1 * (hi - lo)]
    return float(min(np.median(eps), 0.25 * (hi - lo)))


def _with_config(attack: Attack, **changes) -> Attack:
    config = {**attack.get_config(), **changes}
    return type(attack).from_config(config)


def _adapt_attack(attack: Attack, *, margin: bool, more_steps: bool, opts) -> Optional[tuple]:
    """The attack with a margin loss and/or more steps, and the list of what changed (None: unchanged)."""
    from keras_adv import attacks as attacks_lib
    from keras_adv import losses as losses_lib

    changed = []
    new = attack
    if margin and not getattr(attack, "gradient_free", False):
        if isinstance(attack, attacks_lib.APGD):
            if attack.apgd_loss != "dlr" and attack.n_target_classes is None:
                new = _with_config(new, loss="dlr")
                changed.append("margin")
        elif isinstance(attack, attacks_lib.GradientAttack):
            new = _with_config(new, loss=keras.saving.serialize_keras_object(losses_lib.margin))
            changed.append("margin")
    if more_steps and isinstance(getattr(attack, "steps", None), int):
        cfg = new.get_config()
        if "steps" in cfg:
            upd = {"steps": cfg["steps"] * opts["steps_factor"]}
            if "restarts" in cfg:
                upd["restarts"] = max(cfg["restarts"] or 1, opts["min_restarts"])
            new = _with_config(new, **upd)
            changed.append(f"{upd['steps']} steps" + (f"×{upd['restarts']}" if "restarts" in upd else ""))
    return new, changed


def run_adaptive(model, data, y, report, attacks: Mapping[str, Attack], epsilons, *, sample, evaluate,
                 options=True, batch_size: int = 256, seed: Optional[int] = 0, verbose: int = 0,
                 max_examples=None, shard=None, plan_epsilons=()) -> AdaptiveResult:
    """Re-runs `attacks` with the technique each of `report.warnings` calls for (see module docstring).

    Called by `evaluate_robustness(..., adaptive=True)` with its own
    arguments; `report` is its naive report (with diagnostics), `sample` a
    batch of inputs for the layer probe, `evaluate` the evaluator itself
    (`evaluate_robustness`, handed down: it runs the adapted attacks). The
    adapted attacks stream over the same data in the same order, so
    per-example outcomes combine exactly.
    Returns the `AdaptiveResult` stored as `report.adaptive`.
    """
    from keras_adv import attacks as attacks_lib
    from keras_adv.attacks.wrappers import BPDA, ExpectationModel, _is_graph_model as _is_graph, substitute_layers
    from keras_adv.evaluation import diagnostics

    opts = _options(options)
    found = {w.check for w in report.warnings}
    eps_probe = _probe_epsilon(report, attacks)
    x = np.asarray(sample)
    layers = diagnostics.probe_layers(model, x, epsilon=eps_probe)
    changes: List[AdaptiveChange] = []

    # BPDA: where the gradient is missing or misleading (real forward pass, straight-through
    # backward pass); where the loss gradient vanishes, saturated layers are peeled off inside the
    # attack (identity in both passes) until the gradient flows: the attack sees the logits.
    bpda = {name: None for name, f in layers.items() if f["reason"] in ("no_gradient", "inconsistent")}
    peeled: List[str] = []
    if "zero_gradient" in found and _is_graph(model):
        current = layers
        for _ in range(8):
            new = [n for n, f in current.items() if f["reason"] == "zero_gradient" and n not in peeled]
            if not new:
                break
            peeled += new
            for n in new:
                bpda[n] = None
            surrogate = substitute_layers(model, bpda, replace_forward=peeled)
            current = diagnostics.probe_layers(surrogate, x, epsilon=eps_probe)
    for reason, check, what in (
            ("no_gradient", "no_gradient", "no gradient"),
            ("inconsistent", "inconsistent_gradient", "a gradient that disagrees with the forward pass")):
        names = [n for n, f in layers.items() if f["reason"] == reason]
        if names:
            changes.append(AdaptiveChange(
                "BPDA", [check], f"straight-through (identity) backward pass through layer(s) "
                f"{', '.join(repr(n) for n in names)}, which had {what}"))
    if peeled:
        changes.append(AdaptiveChange(
            "BPDA", ["zero_gradient"], f"saturated layer(s) {', '.join(repr(n) for n in peeled)} "
            "removed inside the attacks (identity in both passes: the attacks see the logits; "
            "decisions still use the real model)"))
    no_gradient_left = "no_gradient" in found and not any(f["reason"] == "no_gradient" for f in layers.values())

    eot = "nondeterministic" in found
    if eot:
        random_layers = [n for n, f in layers.items() if f["reason"] == "random"]
        where = f" (random layer(s): {', '.join(repr(n) for n in random_layers)})" if random_layers else ""
        changes.append(AdaptiveChange(
            "EOT", ["nondeterministic"], f"attacks and decisions use the average prediction over "
            f"{opts['eot_samples']} draws of the randomised model{where}"))
    margin = "zero_gradient" in found
    more_steps = "more_steps_stronger" in found
    rest = sorted(found & set(_REST))
    if no_gradient_left:
        rest = ["no_gradient"] + rest

    # The adapted attacks.
    adapted: Dict[str, Attack] = {}
    margin_names, steps_names = [], []
    for name, attack in attacks.items():
        if no_gradient_left and not getattr(attack, "gradient_free", False):
            continue  # gradient attacks cannot run at all on this model
        # With a margin loss, the attack's own loss is kept as a second variant: through a BPDA
        # substitute the original loss may be the better one.
        for use_margin in ([False, True] if margin else [False]):
            new, changed = _adapt_attack(attack, margin=use_margin, more_steps=more_steps, opts=opts)
            if use_margin and "margin" not in changed:
                continue
            if "margin" in changed:
                margin_names.append(name)
            if any("steps" in c for c in changed):
                steps_names.append(name)
            if bpda:
                new = BPDA(new, substitutes=bpda, replace_forward=peeled)
            tags = (["BPDA"] if bpda else []) + ([f"EOT{opts['eot_samples']}"] if eot else []) + changed
            if tags:
                adapted[f"{name} [{', '.join(tags)}]"] = new
    if margin:
        changes.append(AdaptiveChange(
            "margin loss", ["zero_gradient"],
            "a variant with the Carlini-Wagner margin loss (APGD: DLR, Croce & Hein 2020) instead of "
            "cross-entropy for " + (", ".join(repr(n) for n in sorted(set(margin_names)))
                                     if margin_names else "no attack (none takes a loss)")))
    if more_steps:
        changes.append(AdaptiveChange(
            "more steps", ["more_steps_stronger"],
            f"steps ×{opts['steps_factor']} and at least {opts['min_restarts']} restarts in "
            + (", ".join(repr(n) for n in steps_names) if steps_names else "no attack (none has steps)")))
    norms = {a.norm.name for a in attacks.values()}
    if rest and x.ndim == 4 and norms <= {"linf", "l2"} and len(norms) == 1:
        ref = next(iter(attacks.values()))
        eps0 = ref.epsilon if ref.epsilon is not None else _probe_epsilon(report, attacks)
        square = attacks_lib.Square(epsilon=eps0, norm=ref.norm.name, bounds=tuple(ref.bounds),
                                    queries=opts["queries"], seed=seed)
        adapted[f"Square-{opts['queries']} [gradient-free]"] = square
        changes.append(AdaptiveChange(
            "gradient-free", rest, f"added Square ({opts['queries']} queries, Andriushchenko et al. 2020), "
            "which needs no gradient"))
    elif rest:
        changes.append(AdaptiveChange(
            "gradient-free", rest, "no gradient-free attack applies (Square needs images and an L∞ or "
            "L2 threat model): these findings remain unresolved"))

    # Naive worst case per ε; where no naive attack could run (no input gradient), nothing was broken.
    naive_not_run = list(report.not_applicable)

    def naive_correct(e):
        try:
            return report.worst_case_correct(e)
        except KeyError:
            return report.clean_correct.copy()

    grid = sorted(set(report.epsilons) | {float(e) for e in plan_epsilons})
    naive = {e: float(naive_correct(e).mean()) for e in grid}
    if not changes or not adapted:
        return AdaptiveResult(changes=changes, report=None, naive=naive, adaptive=dict(naive),
                              layers=layers, tolerance=report.tolerance, naive_not_run=list(naive_not_run))

    # Decisions: the real model, or under EOT its average prediction (BPDA attacks rebuild each draw).
    target = model
    if eot:
        target = ExpectationModel(model, opts["eot_samples"], seed=seed)
    sub = evaluate(target, data, y, attacks=adapted, epsilons=epsilons, batch_size=batch_size,
                   diagnose=False, seed=seed, verbose=verbose, max_examples=max_examples, shard=shard)
    if not np.array_equal(np.asarray(sub.keys), np.asarray(report.keys)):
        raise RuntimeError("the adaptive pass saw the examples in another order than the naive one; "
                           "pass data that iterates deterministically (no reshuffling tf.data pipeline).")
    combined = {}
    for e in grid:
        ok = naive_correct(e)
        try:
            ok = ok & sub.worst_case_correct(e)
        except KeyError:
            pass
        combined[e] = float(ok.mean())
    return AdaptiveResult(changes=changes, report=sub, naive=naive, adaptive=combined, layers=layers,
                          tolerance=report.tolerance, naive_not_run=list(naive_not_run))
