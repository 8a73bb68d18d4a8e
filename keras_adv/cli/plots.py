"""The one plot the library has no function for: `fit`'s loss and accuracy curves (`training.png`).

Robustness curves and example images are the report's own
(`RobustnessReport.plot`, `RobustnessReport.plot_examples`).
"""

from __future__ import annotations

import importlib.util

from keras_adv.utils.io import atomic_path  # standard library only: no TensorFlow at start-up

__all__ = ["can_plot", "plot_history"]


def can_plot(say=print) -> bool:
    """True when matplotlib is installed; otherwise says how to get plots and returns False."""
    if importlib.util.find_spec("matplotlib") is None:
        say("note: plots skipped, matplotlib is not installed (pip install 'keras-adv[plot]')")
        return False
    return True


def plot_history(history: dict, path: str, title: str):
    """Saves the losses and the clean / adversarial-batch accuracy per epoch of a `fit` History."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

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
                                   f"{'adv_accuracy (training attack)' if key.startswith('adv') else 'clean accuracy'}")
    axes[0].set(xlabel="epoch", ylabel="loss", title="losses")
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="accuracy on the adversarial batch (training attack)",
                ylim=(0, 1.02))
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
