"""How much progress the commands print: live bars on a terminal, plain lines in a file or a pipe."""

from __future__ import annotations

import sys

__all__ = ["fit_verbosity", "attack_verbosity"]


def _terminal() -> bool:
    try:
        return bool(sys.stdout.isatty())
    except (AttributeError, ValueError):
        return False


def fit_verbosity(verbose: bool) -> int:
    """Keras `verbose` for `fit`: a live bar on a terminal (1), one line per epoch otherwise (2)."""
    if not verbose:
        return 0
    return 1 if _terminal() else 2


def attack_verbosity(verbose: bool) -> int:
    """`verbose` for `evaluate_robustness`: on a terminal 2 (its live bar and the progress lines of attacks
    that report progress, e.g. AutoAttack per sub-attack), else 0.

    In a file or a pipe a live bar is one long line of carriage returns and
    colour codes; there the command prints its own plain lines instead.
    """
    return 2 if verbose and _terminal() else 0
