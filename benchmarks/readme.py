"""Writes the README's result blocks from benchmarks/results/*.json (one truth per number).

Every block between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`
in README.md is rebuilt from a results file written by a benchmark script:

| block | from | written by |
|---|---|---|
| `first-command` | `results/first_command.json` | `benchmarks/first_command.py` (runs `keras-adv train`) |
| `recipes` | `results/recipes.json` | `benchmarks/recipes.py` |
| `tabular` | `results/tabular.json` | `benchmarks/tabular_robustness.py` |
| `tabular-parity` | `results/tabular_parity.json` | `benchmarks/tabular_parity.py` (peer venvs in its docstring) |
| `attacks` | `results/attack_parity.json` | `benchmarks/attack_parity.py` |
| `evaluation` | `results/evaluation.json` | `benchmarks/evaluation_demo.py` |
| `speed` | `results/fit_overhead.json`, `attack_throughput.json`, `autoattack_vs_art.json` | `benchmarks/fit_overhead.py`, `attack_throughput.py`, `attack_parity.py --autoattack` |

    python benchmarks/readme.py            # rewrite README.md
    python benchmarks/readme.py --check    # exit 1 if README.md differs from the results (tests run this)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
README = os.path.join(ROOT, "README.md")

_BLOCK = re.compile(r"(<!-- generated:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)", re.S)


def _load(name):
    with open(os.path.join(RESULTS, name)) as f:
        return json.load(f)


def first_command() -> str:
    r = _load("first_command.json")
    judges = ", ".join(f"{name} {acc:.3f}" for name, acc in r["robust_accuracy_per_judge"].items())
    subset = (f"all {r['test_examples']}" if r["judged_examples"] == r["test_examples"]
              else f"the first {r['judged_examples']} of the {r['test_examples']}")
    load = r["load_average_at_start"][0]
    return (
        f"It prints **clean {r['clean_accuracy']:.3f} / robust {r['robust_accuracy']:.3f}**: {r['recipe']} on "
        f"{r['model']}, trained on the {r['train_examples']} training digits and judged on {subset} "
        f"test digits by attacks stronger than the training one ({r['judge']}); robust "
        f"counts a digit only if it is classified correctly clean and under every judge (per judge: {judges}). "
        f"Measured by `benchmarks/first_command.py`: {r['wall_seconds'] / 60:.1f} minutes wall-clock "
        f"(training {r['train_seconds']:.0f} s, judging {r['judge_seconds']:.0f} s) on a {r['cores']}-core "
        f"machine with load average {load:.1f} when it started, using {r['cpu_seconds']:.0f} CPU-seconds "
        f"(on an idle 2-core machine: about {r['cpu_seconds'] / 2 / 60:.1f} minutes or more). "
        f"Results in `keras-adv-run/`.\n"
    )


def recipes() -> str:
    rows = _load("recipes.json")
    ref = next(r for r in rows if r["recipe"] == "madry_pgd7")["train_time_s"]
    best = max(rows, key=lambda r: r["robust"])
    lines = [
        "Split: scikit-learn digits, 1,347 train / all 450 test digits. Model: `small_cnn` (width per row). "
        "Judge: PGD-50 × 3 restarts at ε = 0.2 L∞ on the 450 test digits, never the training attack. "
        "Source: `benchmarks/results/recipes.json` (`benchmarks/recipes.py`, one run, seed 0, 2026-11-22 on the "
        "earlier 2-core Intel machine, each recipe timed once, minutes apart; not re-run on today's AMD EPYC. "
        "Interleaved timing within one run: `benchmarks/results/recipes_budget.md`).",
        "",
        "| recipe | clean | robust (PGD-50×3) | train time vs PGD-7 |",
        "|---|---|---|---|",
    ]
    for r in rows:
        desc = r["description"].replace("|", "\\|")
        cells = [desc, f"{r['clean']:.3f}", f"{r['robust']:.3f}", f"{r['train_time_s'] / ref:.2f}×"]
        if r is best:
            cells[:3] = [f"**{c}**" for c in cells[:3]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def tabular() -> str:
    run = _load("tabular.json")
    lines = [
        "Tables (`keras_adv.domains.FeatureSpace`): MLPs on scikit-learn's breast-cancer table (real) and the "
        "package's SYNTHETIC network flows, undefended vs adversarially trained with CAPGD-10 in the feature "
        "space. Robust accuracy = correct clean and under attack, judged by `ConstrainedAutoAttack` (CAPGD-100 × 2 "
        "+ 100 evolutionary generations), stronger than the training attack; ε on scaled features (L∞). "
        "\"Unconstrained\" is the same CAPGD with every constraint dropped (a superset threat model); the share of its records that break the feature space is in brackets. "
        "Source: `benchmarks/results/tabular.json` (`benchmarks/tabular_robustness.py`, one run, seed 0).",
        "",
        "| dataset | ε | model | clean | constrained robust (CAA) | unconstrained robust (invalid records) |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in run["datasets"].items():
        for label, m in entry["models"].items():
            r, v = m["robust_accuracy"], m["valid_fraction"]
            lines.append(f"| {name} | {entry['epsilon']} | {label} | {m['clean_accuracy']:.3f} | {r['caa']:.3f} | "
                         f"{r['unconstrained']:.3f} ({1 - v['unconstrained']:.0%} invalid) |")
    return "\n".join(lines) + "\n"


def attacks() -> str:
    r = _load("attack_parity.json")
    und = r["undefended"]
    worst = max(v["robust_accuracy"] for v in und.values())
    cw, sq, sp, pt = r["cw"], r["square"], r["spatial_grid"], r["pgd_trained"]
    return (
        f"**Attacks** (`benchmarks/attack_parity.py`: one undefended digits `small_cnn`, the first {r['points']} "
        f"test digits it classifies correctly, the same points for keras_adv and IBM ART / cleverhans, one run): "
        f"every attack leaves the undefended CNN at robust accuracy {worst:.3f} or less at a moderate budget; "
        f"C&W-L2 breaks {cw['success']:.0%} of the first {cw['points']} points where ART's breaks "
        f"{cw['art_success']:.0%} at equal iterations, with {cw['mean_l2_ratio_on_common']:.2f}× ART's mean L2 on "
        f"the points both break, at {cw['speed_vs_art']:.1f}× ART's speed; Square ({sq['queries']} queries) leaves "
        f"robust accuracy {sq['robust_accuracy']:.3f} (ART {sq['art_robust_accuracy']:.3f}) at "
        f"{sq['speed_vs_art']:.1f}× ART's speed; the spatial grid {sp['robust_accuracy']:.3f} "
        f"(ART {sp['art_robust_accuracy']:.3f}) at {sp['speed_vs_art']:.1f}× its speed. On a PGD-trained model "
        f"(clean {pt['clean_accuracy']:.3f} on those points) AutoAttack gives robust accuracy {pt['autoattack']:.3f} "
        f"against {pt['pgd50x3']:.3f} for PGD-50×3"
        + (f" and {pt['art_autoattack']:.3f} for IBM ART's AutoAttack" if pt.get("art_autoattack") is not None else "")
        + (", so it is the stronger evaluation." if pt["autoattack"] <= pt["pgd50x3"] else
           ": here PGD-50×3 was the stronger one.")
        + " Details: `benchmarks/results/attack_parity.md`.\n"
    )


def evaluation() -> str:
    r = _load("evaluation.json")
    planted = sorted({d["model"].replace("planted: ", "") for d in r["diagnostics"] if d["expected_flag"]})
    honest = sorted({d["model"] for d in r["diagnostics"] if not d["expected_flag"]})
    right = sum(d["flagged"] == d["expected_flag"] for d in r["diagnostics"])
    det = {d["epsilon"]: d for d in r["detection"]}
    d2 = det[max(det)]
    adaptive = {k: v for k, v in d2.items() if k.startswith("adaptive")}
    strongest = min(adaptive, key=adaptive.get)
    return (
        f"**Evaluation** (`benchmarks/evaluation_demo.py`, 200 test digits): the gradient-masking diagnostics "
        f"flag each planted model ({', '.join(planted)}) and nothing on the {' or the '.join(honest)} models: "
        f"{right} of {len(r['diagnostics'])} verdicts right"
        + (" (all)" if right == len(r["diagnostics"]) else "") +
        f". A feature-space detector reaches ROC-AUC {d2['non_adaptive']:.2f} against non-adaptive PGD at "
        f"ε = {max(det):g}, which an adaptive attacker who knows the detector ({strongest}) brings down to "
        f"{adaptive[strongest]:.2f}. Details: `benchmarks/results/evaluation.md`.\n"
    )


def _row(model, prefix):
    """A benchmark model's row whose implementation starts with `prefix`."""
    return next(r for r in model["rows"] if r["implementation"].startswith(prefix))


def speed() -> str:
    fit = _load("fit_overhead.json")
    thr = _load("attack_throughput.json")
    aa = _load("autoattack_vs_art.json")
    fit_rows = "; ".join(f"{m['model']} {m['ratio_median']:.2f}× (compiled with `steps_per_execution="
                         f"{fit['steps_per_execution']}`: {m['steps_per_execution_ratio_median']:.2f}×)"
                         for m in fit["models"])
    thr_rows = []
    for m in thr["models"]:
        g, e = _row(m, "keras_adv generate"), _row(m, "keras_adv eager")
        per = ", ".join(f"{v:.2f}" for v in g.get("vs_floor_per_process", []))
        thr_rows.append(f"{m['model']} ({'×'.join(map(str, m['input_shape']))}): `generate` {g['vs_floor']:.2f}× "
                        f"the plain loop" + (f" (median of {len(g['vs_floor_per_process'])} processes: {per})" if per else "")
                        + f" and {g['vs_art']:.1f}× IBM ART, the eager call {e['vs_floor']:.2f}×")
    runs = {r["run"]: r for r in aa["runs"]}
    ours = next(r for k, r in runs.items() if k.startswith("keras_adv") and "cold" in k)
    art = next(r for k, r in runs.items() if k.startswith("IBM ART"))
    return (
        f"**Speed**, as ratios measured within one run ({fit['machine']}, TF {fit['tensorflow']}, Keras "
        f"{fit['keras']}). `AdversarialModel.fit` against a plain `tf.function` loop doing the same PGD-"
        f"{fit['steps']} training work (`benchmarks/fit_overhead.py`, median epoch time, fit/loop, lower is "
        f"better): {fit_rows}. PGD-10 throughput against a plain `tf.function` attack loop "
        f"(`benchmarks/attack_throughput.py`, higher is better): {'; '.join(thr_rows)}. AutoAttack "
        f"(`benchmarks/attack_parity.py --autoattack`, {aa['points']}, {aa['model']}): keras_adv "
        f"{ours['robust_accuracy']:.3f} robust in {ours['seconds']:.0f} s against IBM ART's "
        f"{art['robust_accuracy']:.3f} in {art['seconds']:.0f} s ({art['seconds'] / ours['seconds']:.1f}× faster, "
        f"tracing included). {gpu()}Details: `benchmarks/results/{{fit_overhead,attack_throughput,autoattack_vs_art,gpu}}.md`.\n"
    )


def gpu() -> str:
    """The GPU run's PGD-10 figures (benchmarks/gpu.py on the lent GPU machine)."""
    g = _load("gpu.json")
    parts, compile_s = [], []
    for m in g["throughput"]:
        gen, xla = _row(m, "keras_adv generate"), _row(m, "keras_adv in the user's tf.function(jit_compile=True)")
        parts.append(f"{m['model']}: `generate` {gen['vs_floor']:.2f}× the plain graph loop and {gen['vs_art']:.0f}× "
                     f"IBM ART, the attack in a `tf.function(jit_compile=True)` {xla['vs_floor']:.2f}× the graph loop "
                     f"({xla['vs_art']:.0f}× ART)")
        compile_s.append(f"{_row(m, 'plain tf.function loop, XLA')['first_call_s']:.0f} s")
    code = f", on the code of {g['code']}" if g.get("code") else ""
    return (f"On a GPU ({', '.join(g['device']['gpus'])}, `benchmarks/gpu.py`, one run{code}), PGD-10 throughput: "
            f"{'; '.join(parts)}; XLA's first call (its compilation) took {' and '.join(compile_s)}. ")


def tabular_parity() -> str:
    r = _load("tabular_parity.json")
    lines = [
        f"Against the PyTorch/TF reference `constrained-attacks` 0.1.1 (Simonetto et al.), one run of "
        f"`benchmarks/tabular_parity.py`: {r['dataset']}, {r['records']} correctly classified test records, "
        f"ε = {r['epsilon']} ({r['norm']}), {r['steps']} gradient steps / {r['generations']} generations, the same "
        f"MLP copied into each peer (logits agree to {max(r['torch_vs_keras_logits_max_abs_diff'], r['tf_keras2_vs_keras_logits_max_abs_diff']):.1e}); "
        "success = misclassified and valid by our independent checker.",
        "",
        "| attack | success rate | valid records | records/s |",
        "|---|---|---|---|",
    ]
    for name, row in r["rows"].items():
        lines.append(f"| {name} | {row['success_rate']:.3f} | {row['valid_fraction']:.3f} | {row['records_per_s']:.2f} |")
    return "\n".join(lines) + "\n"


RENDERERS = {"first-command": first_command, "recipes": recipes, "tabular": tabular, "tabular-parity": tabular_parity,
             "attacks": attacks,
             "evaluation": evaluation, "speed": speed}


def render(text: str) -> str:
    """`text` with every generated block rebuilt; unknown block names are an error."""
    def replace(match):
        name = match.group("name")
        if name not in RENDERERS:
            raise KeyError(f"README block {name!r} has no renderer; known: {sorted(RENDERERS)}")
        return match.group(1) + RENDERERS[name]() + match.group(4)

    return _BLOCK.sub(replace, text)


def blocks(text: str):
    return [m.group("name") for m in _BLOCK.finditer(text)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when README.md is stale")
    parser.add_argument("--readme", default=README)
    args = parser.parse_args(argv)
    with open(args.readme, encoding="utf-8") as f:
        text = f.read()
    new = render(text)
    if args.check:
        if new != text:
            print(f"{args.readme} differs from benchmarks/results: run `python benchmarks/readme.py`", file=sys.stderr)
            return 1
        print(f"{args.readme}: blocks {', '.join(blocks(text))} match benchmarks/results")
        return 0
    with open(args.readme, "w", encoding="utf-8") as f:
        f.write(new)
    print(f"rewrote blocks {', '.join(blocks(text))} of {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
