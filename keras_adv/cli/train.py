"""`keras-adv train`: adversarial training of a preset model, judged by `evaluate_robustness`.

Training is `AdversarialModel.fit`; the judgement (clean accuracy, robust
accuracy under attacks stronger than the training one, their per-example
worst case) is one `keras_adv.evaluate_robustness` call, and the files are the
report's own (`report.to_dict()`, `report.plot_examples`): nothing here
computes an accuracy.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from keras_adv.cli import inputs, plots
from keras_adv.utils.io import staged_files  # standard library only: no TensorFlow at start-up
from keras_adv.cli.progress import attack_verbosity, fit_verbosity
from keras_adv.cli._startup import library
from keras_adv.cli.registry import (CLIError, attack_label, check_dataset, check_objective, check_preset,
                                    is_constrained, lookup_attack, make_attack)

__all__ = ["run", "prepare_output"]

DEFAULT_OUTPUT = "keras-adv-run"
# The best measured recipe (benchmarks/results/recipes.md, `best`): the width per preset, and the epochs
# per dataset (digits: a width-64 CNN trained 80 epochs beat width 96 at 30 epochs in robust accuracy,
# at about half the cost per epoch and of judging); other datasets default to 30 epochs.
RECIPE_WIDTH = {"small_cnn": 64}
RECIPE_EPOCHS = {"digits": 80}
DEFAULT_EPOCHS = 30


# What `train` (and then `evaluate`/`export` by default) writes in its output folder, in the order a new
# run's files are committed (`keras_adv.utils.io.staged_files`): the stale results of later commands go
# first, the report last (a new report.json means every other file is the new run's too).
RUN_FILES = ("evaluation", "serving", "request.json", "model.keras", "training.png", "examples.png", "report.json")


def default_epochs(dataset: str) -> int:
    """`--epochs` when not given: the measured recipe's on digits, 30 elsewhere."""
    return RECIPE_EPOCHS.get(dataset, DEFAULT_EPOCHS)


def prepare_output(path: str, overwrite: bool):
    """Refuses a non-empty output folder unless `overwrite`; with it, removes a previous run's files.

    Only the files a run writes (`RUN_FILES`, including the `evaluation/` and
    `serving/` folders of later commands) are removed, so no stale result is
    left beside a different model and nothing else in the folder is touched.
    (`train` itself does not remove them ahead: it replaces them at the end,
    see `keras_adv.utils.io.staged_files`, so a killed run keeps the old ones.)
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"--output {path} is a file, not a folder.")
    if os.path.isdir(path) and os.listdir(path):
        if not overwrite:
            raise CLIError(f"the output folder {path} is not empty (a previous run?); pass --overwrite to "
                           "replace that run or choose another folder with --output.")
        for name in RUN_FILES:
            target = os.path.join(path, name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
    os.makedirs(path, exist_ok=True)


def _is_ensemble(cls) -> bool:
    """AutoAttack keeps its own members' step counts (the judges' `--eval-steps` is for PGD)."""
    from keras_adv.attacks import AutoAttack

    return issubclass(cls, AutoAttack)


def _judges(args, epsilon, domain=None, norm=None):
    """The judging attacks, by name: stronger than the training attack, never the training attack itself.

    They attack in the training attack's norm (`--attack-option norm=...`): judging an L2-trained model
    under L∞ at the same number ε would be another threat model, not a stronger attack.
    """
    names = inputs.parse_list(args.judges, "--judges")
    if domain is not None:  # a table: the constrained ensemble judges (image attacks ignore the feature space)
        names = [n for n in names if is_constrained(n)] or ["constrainedautoattack"]
    options = {**({} if domain is None else {"domain": domain}), **({} if norm is None else {"norm": norm})}
    judges = {}
    for name in names:
        cls = lookup_attack(name)
        attack = make_attack(name, epsilon, steps=None if _is_ensemble(cls) else args.eval_steps,
                             restarts=args.eval_restarts, seed=args.seed, options=options or None)
        judges[_judge_name(attack)] = attack
    return judges


def _judge_name(attack) -> str:
    name = type(attack).__name__
    steps, restarts = getattr(attack, "steps", None), getattr(attack, "restarts", None)
    if name == "AutoAttack":
        return name
    if steps and steps > 1:
        name += f"-{steps}"
    if restarts and restarts > 1:
        name += f"x{restarts}"
    return name


DEFAULT_EPSILON = {"image": 0.2, "tabular": 0.05}


DEFAULTS = {"image": {"model": "small_cnn", "attack": "pgd"}, "tabular": {"model": "tabular_mlp", "attack": "capgd"}}


def run(args) -> int:
    meta = check_dataset(args.dataset)
    kind = "tabular" if meta.source == "tabular" else "image"
    args.model = args.model or DEFAULTS[kind]["model"]
    args.attack = args.attack or DEFAULTS[kind]["attack"]
    check_preset(args.model)
    if (args.model.lower() == "tabular_mlp") != (kind == "tabular"):
        fits, what = ("tabular_mlp", "records") if kind == "tabular" else ("small_cnn or small_resnet", "images")
        raise CLIError(f"--model {args.model} does not take {meta.name}'s {what} (shape "
                       f"{tuple(meta.input_shape)}); use {fits}.")
    check_objective(args.objective)
    lookup_attack(args.attack)
    if kind == "tabular" and not is_constrained(args.attack):
        raise CLIError(f"--attack {args.attack} ignores the feature space of {meta.name}; use capgd, "
                       "evolutionary or constrainedautoattack.")
    if args.epsilon is None:  # the budgets the benchmarks use: 0.2 on [0, 1] pixels, 0.05 of a feature's range
        args.epsilon = DEFAULT_EPSILON["tabular" if meta.source == "tabular" else "image"]
    epsilon = inputs.check_epsilon(args.epsilon, table=kind == "tabular")
    options = inputs.parse_options(args.attack_option)
    if args.epochs is None:
        args.epochs = default_epochs(meta.name)
    # Every number is checked here, before any data is loaded or any epoch trains: a bad judge option
    # found after training would lose the trained model.
    inputs.check_counts(epochs=args.epochs, batch_size=args.batch_size, steps=args.steps, eval_steps=args.eval_steps,
                        eval_restarts=args.eval_restarts, eval_batch_size=args.eval_batch_size, limit=args.limit,
                        test_limit=args.test_limit)
    if not args.adv_weight >= 0:  # also refuses NaN
        raise CLIError(f"--adv-weight must be >= 0, got {args.adv_weight:g}.")
    if args.judge_limit is not None and args.judge_limit < 0:
        raise CLIError(f"--judge-limit must be >= 0 (0 = all test images), got {args.judge_limit}.")
    if not 0.0 <= args.ema < 1.0:  # also refuses NaN
        raise CLIError(f"--ema must be in [0, 1) (0 = off), got {args.ema:g}.")
    if not args.learning_rate > 0:
        raise CLIError(f"--learning-rate must be > 0, got {args.learning_rate:g}.")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise CLIError(f"--output {args.output} is a file, not a folder.")
    if os.path.isdir(args.output) and os.listdir(args.output) and not args.overwrite:
        prepare_output(args.output, overwrite=False)  # refuses before any work is done

    ka = library()
    import keras

    keras.utils.set_random_seed(args.seed)
    say = print if args.verbose else (lambda *a, **k: None)
    say(f"Loading {meta.name} ...")
    x_train, y_train = ka.datasets.load(meta.name, "train", limit=args.limit, shuffle=args.limit is not None,
                                        seed=args.seed)
    x_test, y_test = ka.datasets.load(meta.name, "test", limit=args.test_limit, seed=args.seed)
    domain = None
    what = "records" if meta.source == "tabular" else "images"
    if meta.source == "tabular":  # raw records in a FeatureSpace: constrained attacks, an MLP preset
        domain = inputs.table_domain(meta, [("train", x_train), ("test", x_test)])
        options = {**options, "domain": domain}
    else:
        inputs.check_data(x_train, f"the {meta.name} train split")
        inputs.check_data(x_test, f"the {meta.name} test split")
    attack = make_attack(args.attack, epsilon, steps=args.steps, seed=args.seed, options=options)
    norm = getattr(getattr(attack, "norm", None), "name", None)
    judges = _judges(args, epsilon, domain, norm=None if norm in (None, "linf") else norm)
    judge_limit = len(x_test) if not args.judge_limit else min(args.judge_limit, len(x_test))

    width = args.width if args.width is not None else RECIPE_WIDTH.get(args.model.lower())
    if width is not None and width < 1:
        raise CLIError(f"--width must be >= 1, got {width}.")
    base = ka.models.presets.get(args.model, meta.input_shape, meta.num_classes,
                                 **({"width": width} if width else {}),
                                 **({"data": x_train} if args.model == "tabular_mlp" else {}))
    model = ka.AdversarialModel(base, attack=attack, adv_weight=args.adv_weight, objective=args.objective,
                                seed=args.seed)
    steps = -(-len(x_train) // args.batch_size) * args.epochs
    lr = (keras.optimizers.schedules.CosineDecay(args.learning_rate, steps) if args.lr_schedule == "cosine"
          else args.learning_rate)
    ema = {"use_ema": True, "ema_momentum": args.ema} if args.ema else {}
    model.compile(optimizer=keras.optimizers.Adam(lr, **ema),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    say(f"Adversarial training of {args.model} ({base.count_params():,} weights) on {meta.name} "
        f"({len(x_train)} train / {len(x_test)} test {what})\n"
        f"  objective {args.objective}, adv_weight {args.adv_weight:g}, training attack {attack_label(attack, options)}, "
        f"{args.epochs} epochs, Adam lr {args.learning_rate:g} ({args.lr_schedule})")
    start = time.time()
    # A tf.data pipeline reshuffled each epoch, with autotuning off: with it on, TF 2.21 ends every epoch by
    # waiting for the autotuning thread's next wake-up (docs/training.md, "The end of each epoch").
    train_data = ka.datasets.batches(x_train, y_train, args.batch_size, seed=args.seed)
    val_data = ka.datasets.batches(x_test, y_test, args.batch_size, shuffle=False) if args.validate else None
    history = model.fit(train_data, epochs=args.epochs, shuffle=False, validation_data=val_data,
                        verbose=fit_verbosity(args.verbose))
    train_time = time.time() - start

    subset = "" if judge_limit == len(x_test) else f" (the first {judge_limit} of {len(x_test)})"
    # "Stronger" is what the defaults give (PGD-50 x3, AutoAttack vs PGD-7); a judge iterating no more
    # than the training attack (--eval-steps 2) is said to be what it is.
    weak = any(getattr(j, "steps", None) is not None and j.steps * max(1, getattr(j, "restarts", 1) or 1) <= args.steps
               for j in judges.values())
    strength = ("stronger than the training one" if not weak else
                f"no stronger than the training one's {args.steps} steps (raise --eval-steps for an honest "
                "judgement)")
    say(f"Judging on {judge_limit} test {what}{subset} with attacks {strength}: "
        + "; ".join(attack_label(j) for j in judges.values()))
    start = time.time()
    report = ka.evaluate_robustness(base, x_test[:judge_limit], y_test[:judge_limit], attacks=judges,
                                    batch_size=args.eval_batch_size, seed=args.seed,
                                    verbose=attack_verbosity(args.verbose))
    judge_time = time.time() - start

    paths = {
        "model": os.path.join(args.output, "model.keras"),
        "report": os.path.join(args.output, "report.json"),
        "training_plot": os.path.join(args.output, "training.png"),
        "examples_plot": os.path.join(args.output, "examples.png"),
    }
    # The files are written into a staging folder next to the output folder, then renamed into it (the
    # report last), replacing the previous run's: a run killed at any moment leaves every file there
    # complete, the old one or the new one, and never a temporary file (keras_adv.utils.io.staged_files).
    with staged_files(args.output, RUN_FILES) as stage:
        staged = {key: os.path.join(stage, os.path.basename(path)) for key, path in paths.items()}
        model.save(staged["model"])
        first_judge = next(iter(judges.values()))
        result = {
            "dataset": meta.name,
            "model": args.model,
            "width": width,
            "objective": args.objective,
            "adv_weight": args.adv_weight,
            "train_attack": attack_label(attack),
            "train_attack_config": attack.get_config(),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "lr_schedule": args.lr_schedule,
            "ema": args.ema,
            "seed": args.seed,
            "train_examples": int(len(x_train)),
            "test_examples": int(len(x_test)),
            "judged_examples": report.num_examples,
            # the report's numbers (robust = correct clean AND under every judge, per example)
            "clean_accuracy": report.clean_accuracy,
            "robust_accuracy": report.worst_case_accuracy(epsilon),
            "robust_accuracy_per_judge": {name: report.robust_accuracy(name, epsilon) for name in judges},
            "judge": " + ".join(attack_label(j) for j in judges.values()),
            "judge_config": first_judge.get_config(),
            "robustness": report.to_dict(),
            "train_seconds": round(train_time, 1),
            "judge_seconds": round(judge_time, 1),
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "files": paths,
        }
        with open(staged["report"], "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        if plots.can_plot():
            plots.plot_history(history.history, staged["training_plot"],
                               title=f"{args.model} on {meta.name}, {args.objective}, {attack_label(attack)}")
            if domain is None:  # (example images: not for tables)
                report.plot_examples(staged["examples_plot"], attack=next(iter(judges)), epsilon=epsilon)

    judged = (f"all {len(x_test)}" if judge_limit == len(x_test) else f"the first {judge_limit} of the {len(x_test)}")
    print(f"clean accuracy:  {result['clean_accuracy']:.4f}  ({judged} {meta.name} test {what})")
    per_judge = ", ".join(f"{n} {a:.4f}" for n, a in result["robust_accuracy_per_judge"].items())
    print(f"robust accuracy: {result['robust_accuracy']:.4f}  (eps={epsilon:g}; worst case over {per_judge}; "
          "robust = correct clean and under every attack)")
    print(f"time: training {train_time:.0f} s, judging {judge_time:.0f} s")
    print("saved " + ", ".join(p for p in paths.values() if os.path.exists(p)))
    if args.verbose:
        imports = "".join(f" --import {name}" for name in getattr(args, "imports", None) or [])
        print(f"next: keras-adv evaluate {paths['model']} --dataset {meta.name}{imports}\n"
              f"      keras-adv export {paths['model']} {os.path.join(args.output, 'serving', '1')}{imports}")
    return 0
