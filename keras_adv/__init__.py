"""keras_adv: adversarial robustness for Keras 3 / TensorFlow.

Wrap any Keras model in `keras_adv.AdversarialModel` and `fit` trains it on
clean and adversarial examples crafted on the fly.
"""

__version__ = "0.1.0"


_loading = []  # non-empty while `_load()` runs


def _load():
    """Imports the library: what `import keras_adv` does (everywhere but the `keras-adv` command, see below)."""
    _loading.append(True)
    try:
        from keras_adv import _compat

        _compat.check_versions()  # one line naming the version needed, before anything else imports Keras

        from keras_adv import (attacks, callbacks, datasets, detection, domains, evaluation, layers, losses, metrics,
                               models, norms)
        from keras_adv import augmentation
        from keras_adv.datasets import tabular as _tabular  # noqa: F401  registers the tables' relation
        # functions, so a saved model whose attack holds a dataset's FeatureSpace loads in a fresh process
        from keras_adv.evaluation import evaluate_robustness
        from keras_adv.models import AdversarialModel, objectives
        from keras_adv.models import FreeAdversarialModel

        globals().update((k, v) for k, v in locals().items() if k not in ("_compat", "_tabular"))
    finally:
        _loading.clear()


from keras_adv.cli._startup import in_cli_process as _in_cli_process  # noqa: E402  (standard library only)

if _in_cli_process():
    # The `keras-adv` command's own process: `--help` and `--version` need no TensorFlow, and the
    # commands that do import it through `keras_adv.cli._startup.library()`, without its start-up banner.
    def __getattr__(name):
        if name.startswith("__") or _loading:  # `_load()`'s own `from keras_adv import x` lands here too
            raise AttributeError(f"module 'keras_adv' has no attribute {name!r}")
        from keras_adv.cli._startup import library

        library()
        if name in globals():
            return globals()[name]
        raise AttributeError(f"module 'keras_adv' has no attribute {name!r}")
else:
    _load()

__all__ = [
    "AdversarialModel",
    "FreeAdversarialModel",
    "attacks",
    "augmentation",
    "callbacks",
    "datasets",
    "detection",
    "domains",
    "evaluate_robustness",
    "evaluation",
    "layers",
    "losses",
    "metrics",
    "models",
    "norms",
    "objectives",
    "__version__",
]
