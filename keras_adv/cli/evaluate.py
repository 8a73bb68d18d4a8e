"""`keras-adv evaluate`: one `keras_adv.evaluate_robustness` call; its report printed, saved and plotted."""

from __future__ import annotations

import json
import os

from keras_adv.cli import inputs, plots
from keras_adv.utils.io import atomic_path, atomic_write  # standard library only: no TensorFlow at start-up
from keras_adv.cli.progress import attack_verbosity
from keras_adv.cli._startup import library
from keras_adv.cli.registry import CLIError, check_dataset, is_constrained, lookup_attack, make_attack

__all__ = ["run", "build_attacks"]


def build_attacks(names, epsilons, *, steps, restarts, seed, options):
    """`{name: attack}` for `evaluate_robustness`; each attack is run at every ε of the grid."""
    top = max(epsilons)
    return {name.lower(): make_attack(name, top, steps=steps, restarts=restarts, seed=seed, options=options)
            for name in names}


DEFAULT_ATTACKS = {"image": "fgsm,pgd", "tabular": "capgd,constrainedautoattack"}


def _tabular_attacks(names, meta):
    """Tables need attacks that keep records valid in the dataset's FeatureSpace (`domain=`)."""
    wrong = [n for n in names if not is_constrained(n)]
    if wrong:
        raise CLIError(f"--attacks {','.join(wrong)}: {meta.name!r} is a table with a feature space (bounds, "
                       "integer and one-hot features, immutable fields, relations) that these attacks ignore; "
                       "use capgd, evolutionary or constrainedautoattack.")


def run(args) -> int:
    meta = check_dataset(args.dataset)
    tabular = meta.source == "tabular"
    names = inputs.parse_list(args.attacks or DEFAULT_ATTACKS["tabular" if tabular else "image"], "--attacks")
    for name in names:
        lookup_attack(name)
    epsilons = inputs.parse_epsilons(args.epsilons, table=tabular)
    options = inputs.parse_options(args.attack_option)
    inputs.check_counts(limit=args.limit, steps=args.steps, restarts=args.restarts, batch_size=args.batch_size)
    if meta.source != "tfds" and args.split not in ("train", "test"):  # tfds takes slices such as test[:10%]
        raise CLIError(f"--split {args.split!r}: {meta.name} has the splits 'train' and 'test'.")
    model = inputs.load_model(args.model_file)
    ka = library()

    base = inputs.base_model(model)
    expected = tuple(meta.input_shape)
    got = tuple(base.input_shape[1:]) if getattr(base, "inputs", None) else None
    if got is not None and got != expected:
        raise CLIError(f"the model takes inputs of shape {got} but dataset {meta.name!r} has inputs of shape "
                       f"{expected}; pass the dataset it was trained on with --dataset.")
    x, y = ka.datasets.load(meta.name, args.split, limit=args.limit)
    what = "records" if tabular else "images"
    if tabular:  # raw records in the dataset's FeatureSpace: constrained attacks only
        _tabular_attacks(names, meta)
        options = {**options, "domain": inputs.table_domain(meta, [(args.split, x)])}
    else:
        inputs.check_data(x, f"the {meta.name} {args.split} split")
    attacks = build_attacks(names, epsilons, steps=args.steps, restarts=args.restarts, seed=args.seed,
                            options=options)
    out = args.output or os.path.join(os.path.dirname(os.path.abspath(args.model_file)), "evaluation")
    if args.verbose:
        print(f"Evaluating {args.model_file} on {len(x)} {meta.name} {args.split} {what}: "
              f"attacks {', '.join(attacks)} at eps {', '.join(f'{e:g}' for e in epsilons)}")
    report = ka.evaluate_robustness(base, x, y, attacks=attacks, epsilons=epsilons, batch_size=args.batch_size,
                                    seed=args.seed, verbose=attack_verbosity(args.verbose))
    print(report)
    os.makedirs(out, exist_ok=True)
    json_path, png_path = os.path.join(out, "robustness.json"), os.path.join(out, "robustness.png")
    replaced = os.path.exists(json_path)
    document = report.to_dict()
    document["run"] = {"model_file": os.path.abspath(args.model_file), "dataset": meta.name, "split": args.split,
                       "seed": args.seed}
    with atomic_write(json_path) as f:
        json.dump(document, f, indent=2)
    saved = [json_path]
    if plots.can_plot():
        with atomic_path(png_path) as tmp:
            report.plot(tmp, title=f"{os.path.basename(args.model_file)} on {meta.name} ({len(x)} {what})")
        saved.append(png_path)
    print("saved " + " and ".join(saved) + (" (replacing the previous evaluation there; --output DIR keeps both)"
                                           if replaced else ""))
    return 0
