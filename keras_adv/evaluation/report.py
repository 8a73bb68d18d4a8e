"""`RobustnessReport`: the result of `evaluate_robustness`, as a table, JSON and plots."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import keras
import numpy as np

__all__ = ["AttackResult", "RobustnessReport", "SCHEMA_VERSION"]

SCHEMA_VERSION = "keras_adv.robustness_report/1"


@dataclass
class AttackResult:
    """Per-example outcomes of one attack at each ε (arrays indexed like the data).

    `correct[i][k]` is True when example `k` is *robust* at `epsilons[i]`:
    classified correctly on the clean input **and** on the attack's output
    (the definition of RobustBench and AutoAttack).
    """

    name: str
    attack: Any
    epsilons: List[float] = field(default_factory=list)
    correct: List[np.ndarray] = field(default_factory=list)
    p_true: List[np.ndarray] = field(default_factory=list)
    perturbation: List[np.ndarray] = field(default_factory=list)
    examples: List[np.ndarray] = field(default_factory=list)
    example_predictions: List[np.ndarray] = field(default_factory=list)

    def add(self, *, epsilon, correct, p_true, perturbation, examples, example_predictions=None):
        self.epsilons.append(float(epsilon))
        self.correct.append(np.asarray(correct, bool))
        self.p_true.append(np.asarray(p_true, np.float64))
        self.perturbation.append(np.asarray(perturbation, np.float64))
        self.examples.append(np.asarray(examples))
        self.example_predictions.append(None if example_predictions is None else np.asarray(example_predictions))

    def __getstate__(self):
        # The attack holds compiled functions and weak references, which do not pickle: a pickled
        # (or deep-copied) result carries the attack as its Keras config and rebuilds it when loaded,
        # so shard reports can travel between processes and be merged on one.
        state = dict(self.__dict__)
        state["attack"] = _attack_state(self.attack)
        return state

    def __setstate__(self, state):
        state = dict(state)
        state["attack"] = _attack_from_state(state["attack"])
        self.__dict__.update(state)

    def accuracy(self, epsilon: float) -> float:
        """Robust accuracy at `epsilon` (correct clean and under attack)."""
        return float(self.correct[self._index(epsilon)].mean())

    def _index(self, epsilon):
        for i, e in enumerate(self.epsilons):
            if math.isclose(e, epsilon, rel_tol=1e-9, abs_tol=1e-12):
                return i
        raise KeyError(f"attack {self.name!r} was not run at epsilon={epsilon}; ran at {self.epsilons}.")


_SERIALIZED = "keras_adv.serialized_attack"


def _attack_state(attack):
    if attack is None:
        return None
    try:
        return {_SERIALIZED: keras.saving.serialize_keras_object(attack)}
    except Exception as error:  # an attack Keras cannot serialize: say which, rather than a pickle error
        raise TypeError(
            f"The report's attack {type(attack).__name__} cannot be serialized ({error}); a report pickles its "
            "attacks as their Keras configs, so a custom attack needs get_config() and "
            "@keras.saving.register_keras_serializable."
        ) from error


def _attack_from_state(state):
    if isinstance(state, dict) and _SERIALIZED in state:
        return keras.saving.deserialize_keras_object(state[_SERIALIZED])
    return state


def _attack_config(attack):
    try:
        return keras.saving.serialize_keras_object(attack)
    except Exception:
        return None


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return repr(obj)


class RobustnessReport:
    """What `keras_adv.evaluate_robustness` measured.

    Attributes:
        clean_accuracy: accuracy on clean inputs.
        epsilons: every ε any attack was run at, sorted.
        results: `{attack name: AttackResult}` with per-example outcomes.
        warnings: gradient-masking diagnostics
            (`keras_adv.evaluation.MaskingWarning`); empty when none fired.

    Methods: `robust_accuracy(attack, ε)`, `worst_case_accuracy(ε)`,
    `robustness_margin(attack, ε)`, `per_class()`, `minimal_perturbation()`,
    `to_dict()` (schema in docs/evaluation.md), `str(report)`, `plot(path)`,
    `plot_examples(path)`.
    """

    def __init__(self, *, labels, num_classes, norm, bounds, clean_correct, p_true_clean, results,
                 minimal=None, clean_examples=None, tolerance=0.05, warnings=None, keys=None,
                 example_keys=None, input_warnings=None, diagnosed=None, not_applicable=None, batch_size=None):
        self.labels = np.asarray(labels)
        #: The `batch_size` that split array inputs into batches (None for a `tf.data.Dataset`, batched by
        #: its pipeline): shards of one evaluation must agree on it, since a shard is a set of batches.
        self.batch_size = None if batch_size is None else int(batch_size)
        # Position of each example in the whole (unsharded) stream, to merge shards in order.
        self.keys = np.arange(len(self.labels), dtype=np.int64) if keys is None else np.asarray(keys, np.int64)
        self.example_keys = (self.keys[: 0 if clean_examples is None else len(clean_examples)]
                             if example_keys is None else np.asarray(example_keys, np.int64))
        # Warnings from checks on the inputs (gradients, determinism), computed on the
        # first batch; the report checks are recomputed from the numbers on `merge`.
        self.input_warnings = list(input_warnings or [])
        self.diagnosed = bool(warnings) if diagnosed is None else bool(diagnosed)
        self.num_classes = int(num_classes)
        self.norm = norm
        self.bounds = tuple(_bound(b) for b in bounds)  # scalars, or per-feature lists (tabular domains)
        self.clean_correct = np.asarray(clean_correct, bool)
        self.p_true_clean = np.asarray(p_true_clean, np.float64)
        self.results: Dict[str, AttackResult] = dict(results)
        self.minimal = minimal
        self.clean_examples = clean_examples
        self.tolerance = tolerance
        self.warnings = list(warnings or [])
        #: `{attack name: reason}` for attacks that could not run (e.g. no input gradient).
        self.not_applicable: Dict[str, str] = dict(not_applicable or {})
        #: `keras_adv.evaluation.adaptive.AdaptiveResult` of `evaluate_robustness(..., adaptive=True)`, else None.
        self.adaptive = None

    # ------------------------------------------------------------ numbers
    @property
    def num_examples(self) -> int:
        return int(len(self.labels))

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.mean())

    @property
    def epsilons(self) -> List[float]:
        return sorted({e for r in self.results.values() for e in r.epsilons})

    def robust_accuracy(self, attack: str, epsilon: float) -> float:
        """Fraction of examples classified correctly both clean and after `attack` at `epsilon`.

        The definition of RobustBench and AutoAttack: an example the model
        already gets wrong is never robust, whatever the attack returns.
        """
        return self._result(attack).accuracy(epsilon)

    def attack_success_rate(self, attack: str, epsilon: float) -> float:
        """Among clean-correct examples, the fraction the attack broke."""
        r = self._result(attack)
        c = r.correct[r._index(epsilon)]
        n = self.clean_correct.sum()
        return float((self.clean_correct & ~c).sum() / n) if n else float("nan")

    def robustness_margin(self, attack: str, epsilon: float) -> float:
        """Mean drop of the true-class probability, clean → adversarial."""
        r = self._result(attack)
        return float((self.p_true_clean - r.p_true[r._index(epsilon)]).mean())

    def mean_perturbation_norm(self, attack: str, epsilon: float) -> float:
        r = self._result(attack)
        return float(r.perturbation[r._index(epsilon)].mean())

    def worst_case_correct(self, epsilon: float) -> np.ndarray:
        """Per example: robust against *every* attack run at `epsilon` (and correct when clean)."""
        ok = self.clean_correct.copy()
        found = False
        for r in self.results.values():
            try:
                ok &= r.correct[r._index(epsilon)]
                found = True
            except KeyError:
                continue
        if not found:
            raise KeyError(f"no attack was run at epsilon={epsilon}; epsilons: {self.epsilons}.")
        return ok

    def worst_case_accuracy(self, epsilon: float) -> float:
        return float(self.worst_case_correct(epsilon).mean())

    def first_broken_epsilon(self) -> np.ndarray:
        """Per example, the smallest ε of the grid at which the worst case breaks it.

        0 for examples misclassified when clean; `inf` for examples no attack
        broke at any ε of the grid.
        """
        out = np.full(self.num_examples, np.inf)
        out[~self.clean_correct] = 0.0
        for eps in reversed(self.epsilons):
            broken = ~self.worst_case_correct(eps) & self.clean_correct
            out[broken] = eps
        return out

    def minimal_perturbation(self) -> Dict[str, Any]:
        """Empirical robustness: mean smallest breaking perturbation over clean-correct examples.

        From the ε grid (an upper bound per example: the smallest grid ε that
        broke it) and, when a minimal-perturbation attack was given, from the
        sizes of its successful perturbations.
        """
        first = self.first_broken_epsilon()[self.clean_correct]
        broken = first[np.isfinite(first)]
        out = {
            "grid": {
                "mean": float(broken.mean()) if broken.size else None,
                "median": float(np.median(broken)) if broken.size else None,
                "unbroken_fraction": float(np.mean(~np.isfinite(first))) if first.size else None,
            }
        }
        if self.minimal is not None:
            sizes = self.minimal["sizes"][self.minimal["broken"]]
            n_ok = self.clean_correct.sum()
            out["attack"] = {
                "name": self.minimal["name"],
                "norm": self.minimal["norm"],
                "mean": float(sizes.mean()) if sizes.size else None,
                "median": float(np.median(sizes)) if sizes.size else None,
                "success_rate": float(self.minimal["broken"].sum() / n_ok) if n_ok else None,
            }
        return out

    def per_class(self) -> Dict[int, Dict[str, Any]]:
        """Per class: count, clean accuracy, worst-case robust accuracy at each ε."""
        out = {}
        for c in range(self.num_classes):
            m = self.labels == c
            if not m.any():
                continue
            out[c] = {
                "count": int(m.sum()),
                "clean_accuracy": float(self.clean_correct[m].mean()),
                "robust_accuracy": [float(self.worst_case_correct(e)[m].mean()) for e in self.epsilons],
            }
        return out

    # ------------------------------------------------------------ merging
    @classmethod
    def merge(cls, reports) -> "RobustnessReport":
        """Merges the reports of disjoint shards into the report of their union, exactly.

        The shards come from `evaluate_robustness(..., shard=(i, n))` (or
        from different parts of one stream) with the same attacks and
        budgets; examples are put back in stream order, so merging every
        shard of a stream gives the very report of the unsharded run (the
        same numbers, example images and diagnostics).
        """
        reports = list(reports)
        if not reports or not all(isinstance(r, RobustnessReport) for r in reports):
            raise ValueError("`reports` must be a non-empty list of RobustnessReport.")
        first = reports[0]
        for r in reports[1:]:
            if (list(r.results) != list(first.results)
                    or any(r.results[n].epsilons != first.results[n].epsilons for n in first.results)):
                raise ValueError("`reports` must come from the same attacks and epsilons to be merged.")
            if (r.norm, r.bounds, r.num_classes) != (first.norm, first.bounds, first.num_classes):
                raise ValueError("`reports` must share norm, bounds and number of classes to be merged.")
            if (r.minimal is None) != (first.minimal is None):
                raise ValueError("`reports` must all have (or all lack) a minimal-perturbation attack.")
            for name in first.results:
                mine, theirs = _attack_config(first.results[name].attack), _attack_config(r.results[name].attack)
                if mine != theirs:
                    a = (mine or {}).get("config", {}) if isinstance(mine, dict) else {}
                    b = (theirs or {}).get("config", {}) if isinstance(theirs, dict) else {}
                    diff = ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b))
                                     if a.get(k) != b.get(k)) or f"{mine!r} vs {theirs!r}"
                    raise ValueError(
                        f"`reports` ran attack {name!r} with different settings ({diff}): shards of one "
                        "evaluation use the very same attacks."
                    )
            if r.batch_size != first.batch_size:
                raise ValueError(
                    f"`reports` split their arrays into batches of different sizes ({first.batch_size} vs "
                    f"{r.batch_size}): a shard is a set of batches, so every shard must use the same `batch_size`."
                )
        keys = np.concatenate([r.keys for r in reports])
        if len(np.unique(keys)) != len(keys):
            raise ValueError("`reports` overlap (the same example appears in two of them): merge disjoint shards.")
        order = np.argsort(keys, kind="stable")

        def cat(get):
            return np.concatenate([np.asarray(get(r)) for r in reports])[order]

        results = {}
        ex_keys = np.concatenate([r.example_keys for r in reports])
        k = len(first.example_keys) if first.clean_examples is not None else 0
        k = max([len(r.example_keys) for r in reports] + [k])
        ex_order = np.argsort(ex_keys, kind="stable")[:k]

        def cat_examples(get):
            parts = [np.asarray(get(r)) for r in reports if len(r.example_keys)]
            return np.concatenate(parts)[ex_order] if parts else None

        for name, res in first.results.items():
            merged = AttackResult(name=name, attack=res.attack)
            for i, e in enumerate(res.epsilons):
                preds = [r.results[name].example_predictions[i] for r in reports]
                merged.add(
                    epsilon=e,
                    correct=cat(lambda r: r.results[name].correct[i]),
                    p_true=cat(lambda r: r.results[name].p_true[i]),
                    perturbation=cat(lambda r: r.results[name].perturbation[i]),
                    examples=cat_examples(lambda r: r.results[name].examples[i]),
                    example_predictions=None if any(p is None for p in preds) else
                    cat_examples(lambda r: r.results[name].example_predictions[i]),
                )
            results[name] = merged
        minimal = None
        if first.minimal is not None:
            minimal = dict(first.minimal, sizes=cat(lambda r: r.minimal["sizes"]),
                           broken=cat(lambda r: r.minimal["broken"]))
        head = min(reports, key=lambda r: r.keys.min() if len(r.keys) else np.inf)
        out = cls(
            labels=cat(lambda r: r.labels), num_classes=first.num_classes, norm=first.norm,
            bounds=first.bounds, clean_correct=cat(lambda r: r.clean_correct),
            p_true_clean=cat(lambda r: r.p_true_clean), results=results, minimal=minimal,
            clean_examples=cat_examples(lambda r: r.clean_examples), tolerance=first.tolerance,
            keys=keys[order], example_keys=ex_keys[ex_order], input_warnings=head.input_warnings,
            diagnosed=any(r.diagnosed for r in reports),
            not_applicable={k: v for r in reports for k, v in r.not_applicable.items()},
            batch_size=first.batch_size,
        )
        if out.diagnosed:
            from keras_adv.evaluation import diagnostics

            out.warnings = list(out.input_warnings) + diagnostics.check_report(
                out, tolerance=out.tolerance, convergence_tolerance=max(out.tolerance, 0.1))
        return out

    def _result(self, attack):
        if attack not in self.results and attack in self.not_applicable:
            raise KeyError(f"attack {attack!r} is not applicable to this model: {self.not_applicable[attack]}.")
        if attack not in self.results:
            raise KeyError(f"no attack named {attack!r}; attacks: {list(self.results)}.")
        return self.results[attack]

    # ------------------------------------------------------------ output
    def to_dict(self) -> Dict[str, Any]:
        """A JSON-able summary; the schema is documented in docs/evaluation.md."""
        attacks = {}
        for name, r in self.results.items():
            try:
                config = r.attack.get_config()
            except Exception:  # pragma: no cover - a user attack without config
                config = {}
            attacks[name] = {
                "class": type(r.attack).__name__,
                "config": config,
                "results": [
                    {
                        "epsilon": e,
                        "robust_accuracy": self.robust_accuracy(name, e),
                        "attack_success_rate": self.attack_success_rate(name, e),
                        "robustness_margin": self.robustness_margin(name, e),
                        "mean_perturbation_norm": self.mean_perturbation_norm(name, e),
                    }
                    for e in r.epsilons
                ],
            }
        d = {
            "schema": SCHEMA_VERSION,
            "num_examples": self.num_examples,
            "num_classes": self.num_classes,
            "norm": self.norm,
            "bounds": [b if not isinstance(b, list) else [v if math.isfinite(v) else str(v) for v in b]
                       for b in self.bounds],
            "epsilons": self.epsilons,
            "clean_accuracy": self.clean_accuracy,
            "attacks": attacks,
            "worst_case": [{"epsilon": e, "robust_accuracy": self.worst_case_accuracy(e)} for e in self.epsilons],
            "per_class": {str(c): v for c, v in self.per_class().items()},
            "minimal_perturbation": self.minimal_perturbation(),
            "diagnostics": [w.to_dict() for w in self.warnings],
        }
        if self.not_applicable:
            d["not_applicable"] = dict(self.not_applicable)
        if self.adaptive is not None:
            d["adaptive"] = self.adaptive.to_dict()
        return _jsonable(d)

    def to_json(self, path: Optional[str] = None, indent: int = 2) -> str:
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w") as f:
                f.write(text)
        return text

    def __str__(self) -> str:
        eps = self.epsilons
        names = list(self.results)
        w0 = max([len(n) for n in names + list(self.not_applicable)] + [len("worst case"), len("attack")]) + 2
        head = "attack".ljust(w0) + "".join(f"ε={e:<8.4g}" for e in eps)
        lines = [
            f"Robustness report: {self.num_examples} examples, {self._threat_model()}",
            f"clean accuracy: {self.clean_accuracy:.4f}",
            "",
            "robust accuracy",
            head,
            "-" * len(head),
        ]
        for n in names:
            r = self.results[n]
            cells = "".join(
                f"{r.accuracy(e):<10.4f}" if e in r.epsilons else f"{'-':<10}" for e in eps
            )
            lines.append(n.ljust(w0) + cells)
        for n, reason in self.not_applicable.items():
            lines.append(n.ljust(w0) + f"n/a ({reason})")
        lines.append("worst case".ljust(w0) + "".join(f"{self.worst_case_accuracy(e):<10.4f}" for e in eps))
        lines.append("")
        lines.append("robustness margin (mean drop of true-class probability)")
        for n in names:
            r = self.results[n]
            lines.append(n.ljust(w0) + "".join(
                f"{self.robustness_margin(n, e):<10.4f}" if e in r.epsilons else f"{'-':<10}" for e in eps))
        mp = self.minimal_perturbation()
        g = mp["grid"]
        lines.append("")
        if g["mean"] is not None:
            lines.append(
                f"minimal perturbation (ε grid): mean {g['mean']:.4g}, median {g['median']:.4g}; "
                f"{g['unbroken_fraction']:.1%} of clean-correct examples unbroken at every ε"
            )
        else:
            lines.append("minimal perturbation (ε grid): no example broken at any ε")
        if "attack" in mp:
            a = mp["attack"]
            mean = "n/a" if a["mean"] is None else f"{a['mean']:.4g}"
            rate = "n/a" if a["success_rate"] is None else f"{a['success_rate']:.1%}"
            lines.append(f"minimal perturbation ({a['name']}, {a['norm']}): mean {mean}, success rate {rate}")
        lines.append("")
        lines.append("per class: clean / worst case at each ε")
        for c, v in self.per_class().items():
            lines.append(f"  class {c:<3} (n={v['count']:<4}) {v['clean_accuracy']:.3f} / "
                         + " ".join(f"{a:.3f}" for a in v["robust_accuracy"]))
        lines.append("")
        if self.warnings:
            lines.append(f"GRADIENT-MASKING WARNINGS ({len(self.warnings)}): these numbers may overstate robustness")
            lines.extend(f"  [{w.check}] {w.message}" for w in self.warnings)
        else:
            lines.append("gradient-masking diagnostics: no warning")
        if self.adaptive is not None:
            lines.append("")
            lines.extend(self.adaptive.lines())
        return "\n".join(lines)

    __repr__ = __str__

    def _threat_model(self) -> str:
        """The header's description of the threat model (token attacks have no input bounds)."""
        if self.norm == "l0":
            return "l0 threat model (token substitutions: ε = substituted tokens per sequence)"
        if isinstance(self.bounds[0], list):
            return f"{self.norm} threat model, bounds per feature ({len(self.bounds[0])} features)"
        return f"{self.norm} threat model, bounds {self.bounds}"

    def plot(self, path: Optional[str] = None, *, title: Optional[str] = None):
        """Robust accuracy vs ε, one curve per attack plus the worst case; saved to `path` if given.

        Returns the matplotlib figure.
        """
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        # Curves often coincide (AutoAttack and the worst case, typically): every attack gets its own
        # marker, the curves drawn earlier are wider, and the worst case is a thin dashed black line
        # with hollow markers drawn on top, so each curve stays visible under the others.
        markers = "os^DvP*Xph"
        n = len(self.results)
        for i, (name, r) in enumerate(self.results.items()):
            order = np.argsort(r.epsilons)
            e = [0.0] + [r.epsilons[i] for i in order]
            a = [self.clean_accuracy] + [r.accuracy(r.epsilons[i]) for i in order]
            ax.plot(e, a, marker=markers[i % len(markers)], markersize=4 + 2 * (n - i), linewidth=1.5 + (n - i),
                    alpha=0.8, label=name, zorder=2 + i)
        e = [0.0] + self.epsilons
        ax.plot(e, [self.clean_accuracy] + [self.worst_case_accuracy(x) for x in self.epsilons],
                color="black", linestyle="--", linewidth=1.2, marker="x", markersize=7, label="worst case",
                zorder=3 + n)
        ax.set_xlabel(f"ε ({self.norm})")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(title or f"Robust accuracy vs ε (n={self.num_examples})")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=100)
            plt.close(fig)
        return fig

    def plot_examples(self, path: Optional[str] = None, *, epsilon: Optional[float] = None,
                      attack: Optional[str] = None, num: int = 8):
        """A grid of images: clean (with prediction-independent label), adversarial, perturbation.

        Rows: clean inputs, adversarial inputs of `attack` (default: the first
        attack) at `epsilon` (default: the largest), and the perturbation
        `x_adv − x` (white = 0, red positive, blue negative). `epsilon`
        defaults to the attack's own ε when it was run there. Needs image-shaped
        inputs `(H, W)` or `(H, W, C)` with C in {1, 3}.
        """
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        if self.clean_examples is None or self.clean_examples.ndim not in (3, 4):
            raise ValueError("plot_examples needs image inputs of shape (H, W) or (H, W, C).")
        attack = attack or next(iter(self.results))
        r = self._result(attack)
        if epsilon is None:
            own = getattr(r.attack, "epsilon", None)
            epsilon = own if own is not None and own in r.epsilons else max(r.epsilons)
        i = r._index(epsilon)
        x = self.clean_examples[:num]
        xa = r.examples[i][:num]
        pred_ok = r.correct[i][:num]
        lo, hi = self.bounds
        n = len(x)
        fig, axes = plt.subplots(3, n, figsize=(1.3 * n, 4.3), squeeze=False)
        delta = xa - x
        scale = max(float(np.abs(delta).max()), 1e-12)
        for j in range(n):
            for row, (img, kw) in enumerate([
                (x[j], dict(vmin=lo, vmax=hi)),
                (xa[j], dict(vmin=lo, vmax=hi)),
                (delta[j], dict(vmin=-scale, vmax=scale)),
            ]):
                img = np.asarray(img)
                if img.ndim == 3 and img.shape[-1] == 1:
                    img = img[..., 0]
                if row == 2 and img.ndim == 3:
                    img = (img / scale + 1) / 2
                    kw = {}
                elif img.ndim == 3:
                    img = (img - lo) / (hi - lo)
                    kw = {}
                ax = axes[row, j]
                ax.imshow(img, cmap="gray" if row < 2 else "seismic", **kw)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[0, j].set_title(f"y={self.labels[j]}", fontsize=8)
            preds = r.example_predictions[i] if r.example_predictions else None
            tag = "" if preds is None else f"pred {preds[j]}: "
            axes[1, j].set_title(tag + ("robust" if pred_ok[j] else "broken"), fontsize=8,
                                 color="green" if pred_ok[j] else "red")
        axes[0, 0].set_ylabel("clean")
        axes[1, 0].set_ylabel("adversarial")
        axes[2, 0].set_ylabel("perturbation")
        fig.suptitle(f"{attack} at ε={epsilon:g} (perturbation colour range ±{scale:.3g})", fontsize=9)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=100)
            plt.close(fig)
        return fig


def _bound(b):
    """A scalar bound as a float; per-feature bounds (a tabular domain) as a list of floats."""
    a = np.asarray(b, np.float64)
    return float(a) if a.ndim == 0 else [float(v) for v in a.ravel()]
