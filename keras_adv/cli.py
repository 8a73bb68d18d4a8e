"""The `keras-adv` command line (also `python -m keras_adv`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Optional

__all__ = ["main"]


def _train(args) -> int:
    import keras
    import numpy as np

    import keras_adv as ka
    from keras_adv.models import presets

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = ka.datasets.load_digits()
    base = presets.get(args.model, x_train.shape[1:], int(y_train.max()) + 1)
    attack = ka.attacks.PGD(epsilon=args.epsilon, steps=args.steps)
    model = ka.AdversarialModel(base, attack=attack, adv_weight=args.adv_weight, objective=args.objective,
                                seed=args.seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    print(f"Adversarial training on digits ({len(x_train)} train / {len(x_test)} test): "
          f"{args.objective}, PGD-{args.steps} eps={args.epsilon}, {args.epochs} epochs")
    start = time.time()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
              verbose=2 if args.verbose else 0)
    train_time = time.time() - start

    judge = ka.attacks.PGD(epsilon=args.epsilon, steps=args.eval_steps, restarts=args.eval_restarts,
                           seed=args.seed)
    clean = float(np.mean(np.argmax(base.predict(x_test, verbose=0), -1) == y_test))
    x_adv = judge.generate(base, x_test, y_test, verbose=1 if args.verbose else 0)
    robust = float(np.mean(np.argmax(base.predict(x_adv, verbose=0), -1) == y_test))
    result = {
        "clean_accuracy": clean,
        "robust_accuracy": robust,
        "judge": f"PGD-{args.eval_steps} x {args.eval_restarts} restarts, eps={args.epsilon} (Linf)",
        "train_attack": f"PGD-{args.steps}, eps={args.epsilon} (Linf)",
        "train_seconds": round(train_time, 1),
    }
    print(f"clean accuracy:  {clean:.4f}")
    print(f"robust accuracy: {robust:.4f}  (judged by {result['judge']})")
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        model.save(os.path.join(args.output, "model.keras"))
        with open(os.path.join(args.output, "report.json"), "w") as f:
            json.dump(result, f, indent=2)
        print(f"saved {os.path.join(args.output, 'model.keras')} and report.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-adv",
        description="Adversarial training and robustness evaluation for Keras models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = sub.add_parser(
        "train",
        help="adversarially train a model and report clean and robust accuracy",
        description="Adversarially train a preset model on the offline digits dataset, then judge it "
                    "with a PGD attack stronger than the training one (more steps, restarts).",
    )
    train.add_argument("--model", default="small_cnn", help="model preset (default: small_cnn)")
    train.add_argument("--objective", default="ce", help="ce | madry (default: ce)")
    train.add_argument("--epsilon", type=float, default=0.2, help="Linf budget (default: 0.2)")
    train.add_argument("--steps", type=int, default=7, help="training PGD steps (default: 7)")
    train.add_argument("--adv-weight", type=float, default=1.0, help="lambda in L_clean + lambda*L_adv")
    train.add_argument("--epochs", type=int, default=30, help="epochs (default: 30)")
    train.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    train.add_argument("--eval-steps", type=int, default=50, help="judge PGD steps (default: 50)")
    train.add_argument("--eval-restarts", type=int, default=3, help="judge PGD restarts (default: 3)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.add_argument("--output", default=None, help="folder for model.keras and report.json")
    train.add_argument("--quiet", dest="verbose", action="store_false", help="no progress output")
    train.set_defaults(func=_train)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
