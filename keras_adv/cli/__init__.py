"""The `keras-adv` command line (also `python -m keras_adv`): thin commands over the library.

* `keras-adv train`    adversarial training (`AdversarialModel.fit`) of a preset model, judged by
  `keras_adv.evaluate_robustness` with attacks stronger than the training one (`cli/train.py`).
* `keras-adv evaluate` `evaluate_robustness` on a saved model: its report, JSON and plot (`cli/evaluate.py`).
* `keras-adv export`   `AdversarialModel.export`: a SavedModel for TF Serving (`cli/export.py`).
* `keras-adv list`     the names the commands accept, from the library's registries (`cli/listing.py`).

Argument parsing (`cli/parser.py`) uses the standard library only, so
`--help` and `--version` answer without importing TensorFlow; the commands
import it through `cli/_startup.py`, without TensorFlow's start-up banner.
"""

from __future__ import annotations

import sys
from typing import List, Optional

from keras_adv.cli.parser import DEFAULT_OUTPUT, build_parser
from keras_adv.cli.registry import CLIError, attack_registry, make_attack

__all__ = ["main", "build_parser", "attack_registry", "make_attack", "CLIError", "DEFAULT_OUTPUT"]


def _import_modules(modules: List[str]) -> None:
    """Imports the `--import` modules (the current folder first on the path), after the library."""
    if not modules:
        return
    import importlib
    import os

    from keras_adv.cli._startup import library

    library()
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise CLIError(f"--import {name}: {e}") from e


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command line with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from keras_adv.datasets.catalog import DatasetUnavailableError

    try:
        _import_modules(getattr(args, "imports", None) or [])
        status = args.func(args)
        sys.stdout.flush()  # a reader that left shows here, not in Python's exit flush
        return status
    except (CLIError, DatasetUnavailableError) as e:
        print(f"keras-adv {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:  # an optional extra is missing (e.g. scikit-learn for the digits)
        print(f"keras-adv {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's status for SIGINT; files are written atomically
        print(f"\nkeras-adv {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `keras-adv list | head -1`: the reader left; stop quietly, as Unix tools do
        _silence_stdout()
        return 141


def _silence_stdout() -> None:
    """Points stdout at /dev/null so that Python's exit flush does not raise BrokenPipeError again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - stdout without a file descriptor
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
