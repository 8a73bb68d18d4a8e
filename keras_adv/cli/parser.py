"""The `keras-adv` argument parser. Standard library only: `--help` and `--version` import no TensorFlow.

Names that come from the library's registries (the `--objective` choices) are
filled in when a command's help is printed, from their tested copy `cli/names.json`
(`cli/names.py`), so help needs no TensorFlow either.
"""

from __future__ import annotations

import argparse

__all__ = ["build_parser", "DEFAULT_OUTPUT"]

DEFAULT_OUTPUT = "keras-adv-run"

_MAIN_EPILOG = """\
examples:
  keras-adv train                          adversarially train a CNN on the offline digits (TRADES, PGD-7,
                                           eps=0.2) and judge it with PGD-50x3 and AutoAttack; a few minutes
                                           on 2 CPU cores; writes keras-adv-run/model.keras, report.json, PNGs
  keras-adv evaluate keras-adv-run/model.keras --attacks fgsm,pgd --epsilons 0,0.05,0.1,0.2,0.3
  keras-adv export keras-adv-run/model.keras keras-adv-run/serving/1
  keras-adv list                           datasets, model presets, attacks and objectives

run `keras-adv COMMAND --help` for the options and the expected cost of each command.
"""

_TRAIN_EPILOG = """\
examples:
  keras-adv train                                   # the best recipe measured on digits (see README)
  keras-adv train --epochs 5 --judges pgd --output runs/quick          # a quick run (< 1 min)
  keras-adv train --objective madry --adv-weight 1 --output runs/madry  # pure adversarial training
  keras-adv train --attack fgsm --attack-option random_start=true --attack-option step_size=0.25 \\
                  --objective madry --adv-weight 1 --epochs 15          # FGSM-RS ("fast" adversarial training)
  keras-adv train --dataset mnist --model small_resnet --epsilon 0.3 --epochs 10   # downloads MNIST once

cost: the default run takes a few minutes on 2 idle CPU cores (digits; measured 2.3 and 5.5
minutes on two different CPUs): about two thirds training (80 epochs of TRADES with PGD-7
on a width-64 CNN: each batch costs ~9 forward/backward passes) and one third judging
(PGD-50 x 3 restarts and AutoAttack on the first 200 test digits).
--judges pgd, a smaller --judge-limit or fewer --epochs make it faster; --judge-limit 0
judges all 450 (AutoAttack's time grows with the number of points still robust).

The model is judged on the test split by every --judges attack at the training eps, each
stronger than the training attack, and by their per-example worst case: an image counts
as robust only if it is classified correctly clean and under every judge. A model that
only resists its own attack does not look robust.
"""

_EVALUATE_EPILOG = """\
examples:
  keras-adv evaluate keras-adv-run/model.keras
  keras-adv evaluate model.keras --attacks fgsm,pgd --epsilons 0,0.1,0.2,0.3 --steps 100 --restarts 5
  keras-adv evaluate model.keras --attacks autoattack --epsilons 0.2 --limit 200
  keras-adv evaluate model.keras --dataset mnist --limit 1000 --output eval/

cost: proportional to (images) x (attacks) x (eps values) x (steps x restarts) gradient
passes; the default (FGSM and PGD-50 at 4 eps on 450 digits) takes well under a minute on
2 CPU cores. AutoAttack is the slow one (APGD-CE, APGD-T, FAB-T and Square, each on the
points still robust): minutes per eps on the 450 digits; use --limit for a first look.

Prints the report of keras_adv.evaluate_robustness (rows: attacks; columns: eps; "worst
case": an image counts as robust only if it is classified correctly clean and under every
attack) and writes its robustness.json and robustness.png.
"""

_EXPORT_EPILOG = """\
examples:
  keras-adv export keras-adv-run/model.keras                      # -> keras-adv-run/serving/1
  keras-adv export model.keras serving/1 --dataset digits         # sample request from the test set

Only the inference graph is exported (AdversarialModel.export: the base model):
signature 'serving_default', one input, output {"predictions": logits}. Then:
  docker run -p 8501:8501 -v $PWD/serving:/models/robust -e MODEL_NAME=robust tensorflow/serving
  curl -d '{"instances": [...]}' http://localhost:8501/v1/models/robust:predict
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Fills `{objectives}` in option help from the registries' copy (`cli/names.py`), only when help is printed."""

    def _get_help_string(self, action):
        text = super()._get_help_string(action)
        if text and "{objectives}" in text:
            from keras_adv.cli import names

            text = text.replace("{objectives}", " | ".join(names.load()["objectives"]))
        return text


def _dispatch(module: str):
    def run(args):
        import importlib

        return importlib.import_module(f"keras_adv.cli.{module}").run(args)

    return run


def _imports(command: argparse.ArgumentParser):
    command.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                         help="import this Python module first (repeatable; the current folder is on the path): "
                              "one that registers your own attacks, norms or objectives, so that models using "
                              "them load and --attack/--objective accept them")


def _seed_quiet_and_run(command: argparse.ArgumentParser, module: str):
    """The options every computing command shares, and the module that runs it."""
    _imports(command)
    command.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    command.add_argument("--quiet", dest="verbose", action="store_false", help="no progress output")
    command.set_defaults(func=_dispatch(module))


def build_parser() -> argparse.ArgumentParser:
    fmt = _Formatter
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
        help="adversarially train a model and judge its clean and robust accuracy",
        description="Adversarially train a preset model on a dataset (every batch is attacked against the "
                    "current weights), then judge it with keras_adv.evaluate_robustness using attacks stronger "
                    "than the training one. Saves model.keras, report.json, training.png and examples.png. "
                    "The defaults are the best recipe measured on digits: TRADES (beta=4), PGD-7 at eps=0.2, "
                    "small_cnn of width 64, Adam 2e-3 with cosine decay, 80 epochs on digits (30 on other datasets).",
    )
    train.add_argument("--dataset", default="digits",
                       help="dataset name (default: digits, offline); see `keras-adv list`")
    train.add_argument("--model", default=None,
                       help="model preset: small_cnn | small_resnet for images, tabular_mlp for tables (default: "
                            "small_cnn; tabular_mlp on a table)")
    train.add_argument("--width", type=int, default=None,
                       help="the preset's width, filters of its first layer (default: 64 for small_cnn, the "
                            "preset's own otherwise)")
    train.add_argument("--objective", default="trades",
                       help="training objective: {objectives} (default: trades). ce = L_clean + lambda*L_adv, "
                            "madry = lambda*L_adv, trades = L_clean + beta*KL(clean||adv), "
                            "mart = misclassification-aware")
    train.add_argument("--adv-weight", type=float, default=4.0,
                       help="lambda (beta for trades/mart), weight of the adversarial term (default: 4)")
    train.add_argument("--attack", default=None,
                       help="training attack (default: pgd; capgd on a table); see `keras-adv list`")
    train.add_argument("--attack-option", action="append", default=[], metavar="KEY=VALUE",
                       help="extra hyper-parameter of the training attack (JSON value), repeatable")
    train.add_argument("--epsilon", type=float, default=None,
                       help="Linf budget eps in [0, 1] (default: 0.2 of the pixel range for images; 0.05 of "
                            "each feature's range for the tables breast_cancer and flows)")
    train.add_argument("--steps", type=int, default=7, help="training attack steps (default: 7)")
    train.add_argument("--epochs", type=int, default=None,
                       help="epochs (default: 80 on digits, the measured recipe; 30 on other datasets)")
    train.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    train.add_argument("--learning-rate", type=float, default=2e-3, help="Adam learning rate (default: 0.002)")
    train.add_argument("--lr-schedule", choices=("cosine", "constant"), default="cosine",
                       help="learning-rate schedule (default: cosine decay to 0 over the run)")
    train.add_argument("--ema", type=float, default=0.0, metavar="MOMENTUM",
                       help="keep an exponential moving average of the weights with this momentum in [0, 1) and "
                            "end with it (Keras' optimizer `use_ema`); 0 = off (default: 0)")
    train.add_argument("--limit", type=int, default=None, help="use only N training images (default: all)")
    train.add_argument("--test-limit", type=int, default=None, help="use only N test images (default: all)")
    train.add_argument("--validation", dest="validate", action="store_true", default=False,
                       help="validate on the test split after every epoch, under the training attack "
                            "(adds about 30%% to the training time; the judges run either way)")
    train.add_argument("--no-validation", dest="validate", action="store_false",
                       help="no per-epoch validation (the default)")
    train.add_argument("--judges", default="pgd,autoattack",
                       help="attacks that judge the trained model at the training eps, comma-separated "
                            "(default: pgd,autoattack); the headline is their per-example worst case")
    train.add_argument("--judge-limit", type=int, default=200,
                       help="judge the first N test images (default: 200, the first 200 of the 450 digits, "
                            "to keep AutoAttack to about a minute; 0 = all); stated in the output")
    train.add_argument("--eval-steps", type=int, default=50, help="steps of the PGD judge (default: 50)")
    train.add_argument("--eval-restarts", type=int, default=3, help="restarts of the PGD judge (default: 3)")
    train.add_argument("--eval-batch-size", type=int, default=256, help="batch size of the judges (default: 256)")
    train.add_argument("--output", default=DEFAULT_OUTPUT,
                       help=f"output folder (default: {DEFAULT_OUTPUT}); must be empty unless --overwrite")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the previous run in --output (its model, report, plots, evaluation/ "
                            "and serving/)")
    _seed_quiet_and_run(train, "train")

    evaluate = sub.add_parser(
        "evaluate", formatter_class=fmt, epilog=_EVALUATE_EPILOG,
        help="clean and robust accuracy of a saved model per attack and eps",
        description="Attack a saved .keras model (an AdversarialModel or any Keras classifier) on a dataset's "
                    "test split with each attack at each budget eps (keras_adv.evaluate_robustness); print the "
                    "report and write robustness.json and an accuracy-vs-eps plot robustness.png.",
    )
    evaluate.add_argument("model_file", help="the .keras model file (e.g. keras-adv-run/model.keras)")
    evaluate.add_argument("--dataset", default="digits", help="dataset the model was trained on (default: digits)")
    evaluate.add_argument("--split", default="test", help="dataset split (default: test)")
    evaluate.add_argument("--attacks", default=None,
                          help="comma-separated attack names (default: fgsm,pgd; for the tables breast_cancer and "
                               "flows: capgd,constrainedautoattack, attacks that keep records in the dataset's "
                               "feature space)")
    evaluate.add_argument("--epsilons", default="0,0.05,0.1,0.2,0.3",
                          help="comma-separated Linf budgets in [0, 1] (default: 0,0.05,0.1,0.2,0.3)")
    evaluate.add_argument("--steps", type=int, default=50, help="steps of iterative attacks (default: 50)")
    evaluate.add_argument("--restarts", type=int, default=1, help="random restarts where supported (default: 1)")
    evaluate.add_argument("--attack-option", action="append", default=[], metavar="KEY=VALUE",
                          help="extra hyper-parameter passed to every attack (JSON value), repeatable")
    evaluate.add_argument("--limit", type=int, default=None, help="use only the first N images (default: all)")
    evaluate.add_argument("--batch-size", type=int, default=256, help="attack batch size (default: 256)")
    evaluate.add_argument("--output", default=None,
                          help="folder for robustness.json/png (default: evaluation/ next to the model)")
    _seed_quiet_and_run(evaluate, "evaluate")

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
    _imports(export)
    export.set_defaults(func=_dispatch("export"))

    lister = sub.add_parser("list", help="list datasets, model presets, attacks and objectives",
                            description="List the names the other commands accept.")
    lister.set_defaults(func=_dispatch("listing"))
    return parser
