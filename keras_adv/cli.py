"""The `keras-adv` command line (also `python -m keras_adv`).

Commands:

* `keras-adv train`    adversarially train a preset model on a dataset; saves the
  `.keras` model, a JSON report and plots, and judges robustness with a PGD
  attack stronger than the training one.
* `keras-adv evaluate` clean and robust accuracy of a saved model for several
  attacks and budgets ε: a table, a JSON file and an accuracy-vs-ε plot.
* `keras-adv export`   a SavedModel for TF Serving (inference graph only).
* `keras-adv list`     the datasets, model presets, attacks and objectives.

Attacks and objectives are looked up by name in `keras_adv.attacks` and
`keras_adv.models.objectives`, so every attack the package exports is
available here under its lower-case class name (`pgd`, `fgsm`, ...).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

__all__ = ["main", "build_parser", "attack_registry", "make_attack", "CLIError"]

DEFAULT_OUTPUT = "keras-adv-run"


class CLIError(Exception):
    """A user error: printed as `keras-adv: error: ...` with exit status 2."""


# --------------------------------------------------------------- registries
def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


_BASE_CLASSES = ("Attack", "GradientAttack")


def attack_registry() -> Dict[str, type]:
    """Maps lower-case names to every concrete attack class `keras_adv.attacks` exports.

    New attacks appear automatically: any exported subclass of
    `keras_adv.attacks.Attack` other than the base classes is listed under
    its lower-case class name (`PGD` -> `pgd`, `CarliniWagnerL2` -> `carliniwagnerl2`).
    """
    from keras_adv import attacks

    names = getattr(attacks, "__all__", None) or [n for n in dir(attacks) if not n.startswith("_")]
    registry = {}
    for name in names:
        obj = getattr(attacks, name, None)
        if (isinstance(obj, type) and issubclass(obj, attacks.Attack) and name not in _BASE_CLASSES
                and not name.startswith("_")):
            registry[name.lower()] = obj
    return dict(sorted(registry.items()))


# Short names people type, used only when the attack they point to is exported.
_ALIASES = {"cw": "carliniwagnerl2", "cwl2": "carliniwagnerl2", "spatial": "spatialtransformation"}


def _lookup_attack(name: str) -> type:
    registry = attack_registry()
    by_key = {_key(k): v for k, v in registry.items()}
    for alias, target in _ALIASES.items():
        if target in by_key:
            by_key.setdefault(alias, by_key[target])
    if _key(name) not in by_key:
        raise CLIError(f"unknown attack {name!r}. Available attacks: {', '.join(registry)}.")
    return by_key[_key(name)]


def make_attack(name: str, epsilon: float, *, steps: Optional[int] = None, restarts: Optional[int] = None,
                seed: Optional[int] = None, options: Optional[dict] = None):
    """Builds the attack called `name` with budget `epsilon`.

    `steps`, `restarts` and `seed` are passed only to attacks whose
    constructor accepts them; `options` (from `--attack-option key=value`)
    are passed as they are.
    """
    cls = _lookup_attack(name)
    params = inspect.signature(cls.__init__).parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {}
    if steps is not None and "steps" in params:
        kwargs["steps"] = steps
    if restarts is not None and "restarts" in params:
        kwargs["restarts"] = restarts
    if seed is not None and ("seed" in params or takes_kwargs):
        kwargs["seed"] = seed
    kwargs.update(options or {})
    try:
        return cls(epsilon=epsilon, **kwargs)
    except (TypeError, ValueError) as e:
        raise CLIError(f"cannot build attack {name!r} with epsilon={epsilon}, {kwargs}: {e}") from e


def _attack_label(attack) -> str:
    name = type(attack).__name__
    steps, restarts = getattr(attack, "steps", None), getattr(attack, "restarts", None)
    if steps and steps > 1:
        name += f"-{steps}"
    if restarts and restarts > 1:
        name += f" x{restarts} restarts"
    norm = getattr(getattr(attack, "norm", None), "name", None)
    return f"{name}, eps={attack.epsilon:g}" + (f" ({norm})" if norm else "")


def _check_dataset(name: str):
    from keras_adv import datasets

    try:
        return datasets.info(name)
    except ValueError:
        raise CLIError(f"unknown dataset {name!r}. Available datasets: {', '.join(datasets.available())}.")


def _check_preset(name: str):
    from keras_adv.models import presets

    if name.lower() not in presets.available():
        raise CLIError(f"unknown model preset {name!r}. Available presets: {', '.join(presets.available())}.")


def _check_objective(name: str):
    from keras_adv.models import objectives

    if name.lower() not in objectives.available():
        raise CLIError(f"unknown objective {name!r}. Available objectives: {', '.join(objectives.available())}.")


def _parse_options(pairs: Sequence[str]) -> dict:
    options = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise CLIError(f"--attack-option expects KEY=VALUE, got {pair!r}.")
        key, value = pair.split("=", 1)
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _parse_list(text: str, what: str) -> List[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise CLIError(f"{what} must be a comma-separated list, got {text!r}.")
    return items


def _parse_epsilons(text: str) -> List[float]:
    values = []
    for item in _parse_list(text, "--epsilons"):
        try:
            value = float(item)
        except ValueError:
            raise CLIError(f"--epsilons must be comma-separated numbers such as 0,0.1,0.2; got {item!r}.")
        if value < 0:
            raise CLIError(f"--epsilons must be >= 0, got {value}.")
        values.append(value)
    return sorted(set(values))


def _load_model(path: str):
    import keras

    import keras_adv  # noqa: F401  (registers AdversarialModel and the attacks for loading)

    if not os.path.exists(path):
        raise CLIError(f"model file not found: {os.path.abspath(path)}")
    try:
        return keras.models.load_model(path)
    except Exception as e:  # noqa: BLE001 - reported to the user as is
        raise CLIError(f"cannot load the model {path!r}: {e}") from e


def _base_model(model):
    from keras_adv import AdversarialModel

    return model.base_model if isinstance(model, AdversarialModel) else model


def _accuracy(model, x, y, batch_size=256) -> "np.ndarray":  # noqa: F821
    import numpy as np

    return np.argmax(model.predict(x, batch_size=batch_size, verbose=0), -1) == y


def _can_plot(say=print) -> bool:
    """True when matplotlib is installed; otherwise says how to get plots and returns False."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        say("note: plots skipped, matplotlib is not installed (pip install 'keras-adv[plot]')")
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# -------------------------------------------------------------------- train
def _train(args) -> int:
    meta = _check_dataset(args.dataset)
    _check_preset(args.model)
    _check_objective(args.objective)
    _lookup_attack(args.attack)
    options = _parse_options(args.attack_option)

    import keras
    import numpy as np

    import keras_adv as ka
    from keras_adv.models import presets

    keras.utils.set_random_seed(args.seed)
    say = print if args.verbose else (lambda *a, **k: None)
    say(f"Loading {meta.name} ...")
    x_train, y_train = ka.datasets.load(meta.name, "train", limit=args.limit, shuffle=args.limit is not None,
                                        seed=args.seed)
    x_test, y_test = ka.datasets.load(meta.name, "test", limit=args.test_limit, seed=args.seed)
    base = presets.get(args.model, meta.input_shape, meta.num_classes)
    attack = make_attack(args.attack, args.epsilon, steps=args.steps, seed=args.seed, options=options)
    model = ka.AdversarialModel(base, attack=attack, adv_weight=args.adv_weight, objective=args.objective,
                                seed=args.seed)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    say(f"Adversarial training of {args.model} ({base.count_params():,} weights) on {meta.name} "
        f"({len(x_train)} train / {len(x_test)} test images)\n"
        f"  objective {args.objective}, adv_weight {args.adv_weight:g}, training attack {_attack_label(attack)}, "
        f"{args.epochs} epochs")
    start = time.time()
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                        validation_data=(x_test, y_test) if args.validate else None,
                        verbose=1 if args.verbose else 0)
    train_time = time.time() - start

    judge = make_attack("pgd", args.epsilon, steps=args.eval_steps, restarts=args.eval_restarts, seed=args.seed)
    say(f"Judging robustness on the test split with a stronger attack: {_attack_label(judge)}")
    clean_ok = _accuracy(base, x_test, y_test)
    x_adv = judge.generate(base, x_test, y_test, verbose=1 if args.verbose else 0)
    robust_ok = _accuracy(base, x_adv, y_test)
    clean, robust = float(np.mean(clean_ok)), float(np.mean(robust_ok))

    os.makedirs(args.output, exist_ok=True)
    paths = {
        "model": os.path.join(args.output, "model.keras"),
        "report": os.path.join(args.output, "report.json"),
        "training_plot": os.path.join(args.output, "training.png"),
        "examples_plot": os.path.join(args.output, "examples.png"),
    }
    model.save(paths["model"])
    result = {
        "dataset": meta.name,
        "model": args.model,
        "objective": args.objective,
        "adv_weight": args.adv_weight,
        "train_attack": _attack_label(attack),
        "train_attack_config": attack.get_config(),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "train_examples": int(len(x_train)),
        "test_examples": int(len(x_test)),
        "clean_accuracy": clean,
        "robust_accuracy": robust,
        "judge": _attack_label(judge),
        "judge_config": judge.get_config(),
        "train_seconds": round(train_time, 1),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "files": paths,
    }
    with open(paths["report"], "w") as f:
        json.dump(result, f, indent=2)
    if _can_plot():
        _plot_history(history.history, paths["training_plot"], title=f"{args.model} on {meta.name}, "
                      f"{args.objective}, {_attack_label(attack)}")
        _plot_examples(base, x_test, x_adv, y_test, paths["examples_plot"],
                       title=f"Test images and {_attack_label(judge)}")

    print(f"clean accuracy:  {clean:.4f}")
    print(f"robust accuracy: {robust:.4f}  (judged by {result['judge']})")
    print(f"saved {paths['model']}, {paths['report']}, {paths['training_plot']}, {paths['examples_plot']}")
    if args.verbose:
        print(f"next: keras-adv evaluate {paths['model']} --dataset {meta.name}\n"
              f"      keras-adv export {paths['model']} {os.path.join(args.output, 'serving', '1')}")
    return 0


def _plot_history(history: dict, path: str, title: str):
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = range(1, len(history.get("loss", [])) + 1)
    for key, style in (("loss", "-"), ("clean_loss", "--"), ("adv_loss", ":")):
        for prefix, color in (("", "C0"), ("val_", "C1")):
            if prefix + key in history:
                axes[0].plot(epochs, history[prefix + key], style, color=color,
                             label=f"{'validation' if prefix else 'train'} {key}")
    for key, style in (("accuracy", "-"), ("adv_accuracy", "--")):
        for prefix, color in (("", "C0"), ("val_", "C1")):
            if prefix + key in history:
                axes[1].plot(epochs, history[prefix + key], style, color=color,
                             label=f"{'validation' if prefix else 'train'} "
                                   f"{'robust (adv_accuracy)' if key.startswith('adv') else 'clean accuracy'}")
    axes[0].set(xlabel="epoch", ylabel="loss", title="losses")
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="accuracy (robust: training attack)", ylim=(0, 1.02))
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_examples(model, x, x_adv, y, path: str, title: str, n: int = 8):
    import numpy as np

    plt = _pyplot()
    n = min(n, len(x))
    pred = np.argmax(model.predict(x[:n], verbose=0), -1)
    pred_adv = np.argmax(model.predict(x_adv[:n], verbose=0), -1)
    fig, axes = plt.subplots(3, n, figsize=(1.3 * n, 4.4), squeeze=False)
    cmap = "gray" if x.shape[-1] == 1 else None
    for i in range(n):
        delta = x_adv[i] - x[i]
        scale = max(float(np.abs(delta).max()), 1e-12)
        for row, (img, label) in enumerate((
            (x[i], f"y={y[i]} pred={pred[i]}"),
            (x_adv[i], f"adv pred={pred_adv[i]}"),
            (0.5 + 0.5 * delta / scale, f"max|delta|={scale:.2f}"),
        )):
            ax = axes[row, i]
            ax.imshow(np.clip(img.squeeze(), 0, 1), cmap=cmap, vmin=0, vmax=1)
            wrong = (row == 0 and pred[i] != y[i]) or (row == 1 and pred_adv[i] != y[i])
            ax.set_title(label, fontsize=7, color="red" if wrong else "black")
            ax.axis("off")
    axes[0, 0].text(-0.3, 0.5, "clean", transform=axes[0, 0].transAxes, rotation=90, va="center", ha="right")
    axes[1, 0].text(-0.3, 0.5, "adversarial", transform=axes[1, 0].transAxes, rotation=90, va="center", ha="right")
    axes[2, 0].text(-0.3, 0.5, "perturbation", transform=axes[2, 0].transAxes, rotation=90, va="center",
                    ha="right")
    fig.suptitle(title + " (red: misclassified; perturbation: grey = 0, black/white = -/+ max)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------- evaluate
def robustness_table(model, x, y, attacks: Dict[str, object], epsilons: Sequence[float], *,
                     batch_size: int = 256, verbose: int = 1) -> dict:
    """Clean and robust accuracy of `model` for each attack factory and ε.

    Args:
        model: a Keras classifier (logits or probabilities).
        x, y: test images in the attack bounds and integer labels.
        attacks: `{name: factory}` where `factory(epsilon)` builds the attack.
        epsilons: the budgets; ε = 0 is clean accuracy.

    Returns:
        A JSON-able dict: `clean_accuracy`, `epsilons`, `robust_accuracy`
        (`{attack: [accuracy per ε]}`, plus `"worst_case"`, the per-example
        minimum over attacks when there are several) and `attacks` (configs).
    """
    import numpy as np

    clean_ok = _accuracy(model, x, y, batch_size)
    robust, configs = {}, {}
    worst = {eps: clean_ok.copy() for eps in epsilons}
    for name, factory in attacks.items():
        robust[name] = []
        for eps in epsilons:
            if eps == 0:
                ok = clean_ok
            else:
                attack = factory(eps)
                configs.setdefault(name, {k: v for k, v in attack.get_config().items() if k != "epsilon"})
                if verbose:
                    print(f"{_attack_label(attack)}:")
                x_adv = attack.generate(model, x, y, batch_size=batch_size, verbose=verbose)
                ok = _accuracy(model, x_adv, y, batch_size) & clean_ok
            worst[eps] &= ok
            robust[name].append(float(np.mean(ok)))
    if len(attacks) > 1:
        robust["worst_case"] = [float(np.mean(worst[eps])) for eps in epsilons]
    return {
        "clean_accuracy": float(np.mean(clean_ok)),
        "examples": int(len(y)),
        "epsilons": list(epsilons),
        "robust_accuracy": robust,
        "attacks": configs,
    }


def format_table(report: dict) -> str:
    """The report as a text table: one row per attack, one column per ε."""
    eps = report["epsilons"]
    names = list(report["robust_accuracy"])
    width = max([len("attack")] + [len(n) for n in names])
    head = f"{'attack':<{width}}  " + "  ".join(f"eps={e:<6g}" for e in eps)
    lines = [head, "-" * len(head)]
    for name in names:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{a:<10.4f}" for a in report["robust_accuracy"][name]))
    lines.append(f"clean accuracy {report['clean_accuracy']:.4f} on {report['examples']} test images; "
                 "robust accuracy counts an example only if it is classified correctly clean and attacked")
    return "\n".join(lines)


def plot_report(report: dict, path: str, title: str = ""):
    """Saves the accuracy-vs-ε curves of `report` as a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, (name, acc) in enumerate(report["robust_accuracy"].items()):
        style = dict(color="black", linestyle="--", linewidth=2) if name == "worst_case" else dict(color=f"C{i}")
        ax.plot(report["epsilons"], acc, marker="o", label=name, **style)
    ax.axhline(report["clean_accuracy"], color="gray", linewidth=0.8, linestyle=":", label="clean")
    ax.set(xlabel="epsilon (perturbation budget)", ylabel="accuracy", ylim=(0, 1.02), title=title or "robust accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _evaluate(args) -> int:
    meta = _check_dataset(args.dataset)
    names = _parse_list(args.attacks, "--attacks")
    for name in names:
        _lookup_attack(name)
    epsilons = _parse_epsilons(args.epsilons)
    options = _parse_options(args.attack_option)
    model = _load_model(args.model_file)

    import keras_adv as ka

    base = _base_model(model)
    expected = tuple(meta.input_shape)
    got = tuple(base.input_shape[1:]) if getattr(base, "inputs", None) else None
    if got is not None and got != expected:
        raise CLIError(f"the model takes inputs of shape {got} but dataset {meta.name!r} has images of shape "
                       f"{expected}; pass the dataset it was trained on with --dataset.")
    x, y = ka.datasets.load(meta.name, args.split, limit=args.limit)
    factories = {
        name.lower(): (lambda eps, name=name: make_attack(name, eps, steps=args.steps, restarts=args.restarts,
                                                          seed=args.seed, options=options))
        for name in names
    }
    if args.verbose:
        print(f"Evaluating {args.model_file} on {len(x)} {meta.name} {args.split} images: "
              f"attacks {', '.join(factories)} at eps {', '.join(f'{e:g}' for e in epsilons)}")
    report = robustness_table(base, x, y, factories, epsilons, batch_size=args.batch_size,
                              verbose=1 if args.verbose else 0)
    report.update(model_file=os.path.abspath(args.model_file), dataset=meta.name, split=args.split)
    print(format_table(report))
    out = args.output or os.path.join(os.path.dirname(os.path.abspath(args.model_file)), "evaluation")
    os.makedirs(out, exist_ok=True)
    json_path, png_path = os.path.join(out, "robustness.json"), os.path.join(out, "robustness.png")
    with open(json_path, "w") as f:
        json.dump(report, f, indent=2)
    if _can_plot():
        plot_report(report, png_path, title=f"{os.path.basename(args.model_file)} on {meta.name} ({len(x)} images)")
    print(f"saved {json_path} and {png_path}")
    return 0


# ------------------------------------------------------------------- export
def export_saved_model(model, path: str, input_name: Optional[str] = None) -> str:
    """Writes `model`'s inference graph as a SavedModel and returns the serving input name.

    An `AdversarialModel` exports its base model (`AdversarialModel.export`);
    a plain Keras model is exported the same way: one `serving_default`
    signature taking the input `input_name` (default `"inputs"`) and
    returning `{"predictions": ...}`.
    """
    import tensorflow as tf

    from keras_adv import AdversarialModel

    if isinstance(model, AdversarialModel):
        spec_name = input_name
        model.export(path, input_name=input_name, verbose=False)
    else:
        import keras

        if not getattr(model, "inputs", None):
            raise CLIError("cannot infer the input shape of this model; save a functional or Sequential model "
                           "built with keras.Input.")
        spec_name = input_name or "inputs"
        spec = tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), model.inputs[0].dtype, name=spec_name)
        archive = keras.export.ExportArchive()
        archive.track(model)
        fn = tf.function(lambda inputs: {"predictions": model(inputs, training=False)},
                         input_signature=[spec], autograph=False)
        archive.add_endpoint("serve", fn)
        archive.add_endpoint("serving_default", fn)
        archive.write_out(path, verbose=False)
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["serving_default"]
    names = list(signature.structured_input_signature[1])
    return names[0] if names else (spec_name or "inputs")


def _export(args) -> int:
    model = _load_model(args.model_file)
    import numpy as np
    import tensorflow as tf

    base = _base_model(model)
    out = args.output or os.path.join(os.path.dirname(os.path.abspath(args.model_file)), "serving", "1")
    if os.path.exists(out) and os.listdir(out) and not args.overwrite:
        raise CLIError(f"the export folder {out} is not empty; pass --overwrite or choose another folder.")
    input_name = export_saved_model(model, out, args.input_name)

    shape = tuple(base.inputs[0].shape[1:]) if getattr(base, "inputs", None) else None
    sample = np.zeros((1,) + shape, "float32") if shape else None
    dataset = args.dataset
    report_path = os.path.join(os.path.dirname(os.path.abspath(args.model_file)), "report.json")
    if dataset is None and os.path.exists(report_path):  # written by `keras-adv train`
        with open(report_path) as f:
            dataset = json.load(f).get("dataset")
    if dataset:
        import keras_adv as ka

        meta = _check_dataset(dataset)
        sample, _ = ka.datasets.load(meta.name, "test", limit=1)
    if sample is not None:
        loaded = tf.saved_model.load(out)
        outputs = loaded.signatures["serving_default"](**{input_name: tf.constant(sample)})
        predictions = outputs["predictions"].numpy()
        request_path = os.path.join(os.path.dirname(os.path.abspath(args.model_file)), "request.json")
        with open(request_path, "w") as f:
            json.dump({"signature_name": "serving_default", "instances": sample.tolist()}, f)
        print(f"exported {out}  (SavedModel: signature 'serving_default', input {input_name!r} "
              f"{list((None,) + shape)}, output 'predictions' {list(predictions.shape[1:])})")
        print(f"checked: tf.saved_model.load answers, predicted class {int(np.argmax(predictions[0]))} "
              f"for the {'test image' if dataset else 'all-zero image'} in {request_path}")
        base_dir = os.path.dirname(os.path.abspath(out))
        print("serve it with TF Serving (the folder holds numbered versions):\n"
              f"  docker run -p 8501:8501 -v {base_dir}:/models/robust -e MODEL_NAME=robust tensorflow/serving\n"
              f"  curl -d @{request_path} http://localhost:8501/v1/models/robust:predict")
    else:
        print(f"exported {out}")
    return 0


# --------------------------------------------------------------------- list
def _list(args) -> int:
    from keras_adv import datasets
    from keras_adv.models import objectives, presets

    print("datasets (--dataset):")
    for name in datasets.available():
        d = datasets.info(name)
        print(f"  {name:<14} {'x'.join(map(str, d.input_shape)):<8} {d.num_classes:>3} classes  {d.description}")
    print("model presets (--model):\n  " + ", ".join(presets.available()))
    print("attacks (--attack, --attacks):\n  " + ", ".join(attack_registry()))
    print("objectives (--objective):\n  " + ", ".join(objectives.available()))
    return 0


# ------------------------------------------------------------------- parser
_MAIN_EPILOG = """\
examples:
  keras-adv train                          adversarially train a small CNN on the offline digits
                                           (PGD eps=0.2); writes keras-adv-run/model.keras, report.json, PNGs
  keras-adv evaluate keras-adv-run/model.keras --attacks fgsm,pgd --epsilons 0,0.05,0.1,0.2,0.3
  keras-adv export keras-adv-run/model.keras keras-adv-run/serving/1
  keras-adv list                           datasets, model presets, attacks and objectives

run `keras-adv COMMAND --help` for the options of each command.
"""

_TRAIN_EPILOG = """\
examples:
  keras-adv train                                   # digits, small_cnn, ce objective, PGD-7 eps=0.2, 30 epochs
  keras-adv train --epochs 5 --output runs/quick    # a quick run
  keras-adv train --objective madry --epsilon 0.1   # pure adversarial training (Madry et al.)
  keras-adv train --attack fgsm --attack-option random_start=true --attack-option step_size=0.25
                                                    # FGSM-RS ("fast" adversarial training)
  keras-adv train --dataset mnist --model small_resnet --epsilon 0.3 --epochs 10   # downloads MNIST once

The trained model is judged on the test split with PGD-50 x 3 restarts at the training eps,
stronger than the training attack: a model that only resists its own attack does not look robust.
"""

_EVALUATE_EPILOG = """\
examples:
  keras-adv evaluate keras-adv-run/model.keras
  keras-adv evaluate model.keras --attacks fgsm,pgd --epsilons 0,0.1,0.2,0.3 --steps 100 --restarts 5
  keras-adv evaluate model.keras --dataset mnist --limit 1000 --output eval/

Prints a table (rows: attacks; columns: eps), writes robustness.json and robustness.png.
With several attacks, "worst_case" counts an image as robust only if it resists every attack.
"""

_EXPORT_EPILOG = """\
examples:
  keras-adv export keras-adv-run/model.keras                      # -> keras-adv-run/serving/1
  keras-adv export model.keras serving/1 --dataset digits         # sample request from the test set

Only the inference graph is exported (an AdversarialModel exports its base model):
signature 'serving_default', one input, output {"predictions": logits}. Then:
  docker run -p 8501:8501 -v $PWD/serving:/models/robust -e MODEL_NAME=robust tensorflow/serving
  curl -d '{"instances": [...]}' http://localhost:8501/v1/models/robust:predict
"""


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="keras-adv",
        description="Adversarial training and robustness evaluation for Keras models.",
        epilog=_MAIN_EPILOG, formatter_class=fmt,
    )
    from keras_adv import __version__

    parser.add_argument("--version", action="version", version=f"keras-adv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser(
        "train", formatter_class=fmt, epilog=_TRAIN_EPILOG,
        help="adversarially train a model and report clean and robust accuracy",
        description="Adversarially train a preset model on a dataset (every batch is attacked against the "
                    "current weights), then judge it with a PGD attack stronger than the training one "
                    "(more steps, restarts). Saves model.keras, report.json, training.png and examples.png.",
    )
    train.add_argument("--dataset", default="digits",
                       help="dataset name (default: digits, offline); see `keras-adv list`")
    train.add_argument("--model", default="small_cnn", help="model preset: small_cnn | small_resnet (default: small_cnn)")
    train.add_argument("--objective", default="ce",
                       help="training objective: ce = L_clean + lambda*L_adv, madry = lambda*L_adv (default: ce)")
    train.add_argument("--attack", default="pgd", help="training attack (default: pgd); see `keras-adv list`")
    train.add_argument("--attack-option", action="append", default=[], metavar="KEY=VALUE",
                       help="extra hyper-parameter of the training attack (JSON value), repeatable")
    train.add_argument("--epsilon", type=float, default=0.2, help="Linf budget eps in [0, 1] pixels (default: 0.2)")
    train.add_argument("--steps", type=int, default=7, help="training attack steps (default: 7)")
    train.add_argument("--adv-weight", type=float, default=1.0, help="lambda, weight of the adversarial loss (default: 1)")
    train.add_argument("--epochs", type=int, default=30, help="epochs (default: 30)")
    train.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    train.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    train.add_argument("--limit", type=int, default=None, help="use only N training images (default: all)")
    train.add_argument("--test-limit", type=int, default=None, help="use only N test images (default: all)")
    train.add_argument("--no-validation", dest="validate", action="store_false",
                       help="skip the per-epoch validation on the test split")
    train.add_argument("--eval-steps", type=int, default=50, help="judge PGD steps (default: 50)")
    train.add_argument("--eval-restarts", type=int, default=3, help="judge PGD restarts (default: 3)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.add_argument("--output", default=DEFAULT_OUTPUT, help=f"output folder (default: {DEFAULT_OUTPUT})")
    train.add_argument("--quiet", dest="verbose", action="store_false", help="no progress output")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser(
        "evaluate", formatter_class=fmt, epilog=_EVALUATE_EPILOG,
        help="clean and robust accuracy of a saved model per attack and eps",
        description="Attack a saved .keras model (an AdversarialModel or any Keras classifier) on a dataset's "
                    "test split with each attack at each budget eps; print the accuracy table and write "
                    "robustness.json and an accuracy-vs-eps plot robustness.png.",
    )
    evaluate.add_argument("model_file", help="the .keras model file (e.g. keras-adv-run/model.keras)")
    evaluate.add_argument("--dataset", default="digits", help="dataset the model was trained on (default: digits)")
    evaluate.add_argument("--split", default="test", help="dataset split (default: test)")
    evaluate.add_argument("--attacks", default="fgsm,pgd", help="comma-separated attack names (default: fgsm,pgd)")
    evaluate.add_argument("--epsilons", default="0,0.05,0.1,0.2,0.3",
                          help="comma-separated Linf budgets (default: 0,0.05,0.1,0.2,0.3)")
    evaluate.add_argument("--steps", type=int, default=50, help="steps of iterative attacks (default: 50)")
    evaluate.add_argument("--restarts", type=int, default=1, help="random restarts where supported (default: 1)")
    evaluate.add_argument("--attack-option", action="append", default=[], metavar="KEY=VALUE",
                          help="extra hyper-parameter passed to every attack (JSON value), repeatable")
    evaluate.add_argument("--limit", type=int, default=None, help="use only the first N images (default: all)")
    evaluate.add_argument("--batch-size", type=int, default=256, help="attack batch size (default: 256)")
    evaluate.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    evaluate.add_argument("--output", default=None,
                          help="folder for robustness.json/png (default: evaluation/ next to the model)")
    evaluate.add_argument("--quiet", dest="verbose", action="store_false", help="no progress output")
    evaluate.set_defaults(func=_evaluate)

    export = sub.add_parser(
        "export", formatter_class=fmt, epilog=_EXPORT_EPILOG,
        help="export a saved model as a SavedModel for TF Serving",
        description="Export the inference graph of a .keras model as a TensorFlow SavedModel that TF Serving, "
                    "tf.saved_model.load and TFLite converters read. The attack and optimizer are not exported.",
    )
    export.add_argument("model_file", help="the .keras model file")
    export.add_argument("output", nargs="?", default=None,
                        help="SavedModel folder, ideally .../NAME/VERSION (default: serving/1 next to the model)")
    export.add_argument("--input-name", default=None, help="name of the serving input (default: the model's, or 'inputs')")
    export.add_argument("--dataset", default=None, help="take the sample request from this dataset's test split")
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty export folder")
    export.set_defaults(func=_export)

    lister = sub.add_parser("list", help="list datasets, model presets, attacks and objectives",
                            description="List the names the other commands accept.")
    lister.set_defaults(func=_list)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command line with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # keep the output to progress bars and results
    try:
        return args.func(args)
    except CLIError as e:
        print(f"keras-adv {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:  # an optional extra is missing (e.g. scikit-learn for the digits)
        print(f"keras-adv {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
