"""Class-score helpers shared by score-based attacks (C&W, APGD-DLR, Square, FAB).

All functions work on *log-probabilities* obtained from the model outputs with
`keras_adv.losses.to_log_probs` (logits or probabilities, auto-detected). Logit
differences are unchanged by that shift, so margins equal the logit margins.
"""

from __future__ import annotations

import tensorflow as tf

from keras_adv import losses as losses_lib
from keras_adv.attacks.attack import _batch_mask, _single_output


def class_scores(outputs, attack_name: str, allow_single_unit: bool = False, model=None) -> tf.Tensor:
    """Checks that `outputs` are per-class scores (batch, classes ≥ 2); returns log-probabilities.

    With `allow_single_unit` (AutoAttack's members), a single sigmoid unit is
    accepted and becomes two class log-probabilities (see `to_log_probs`).
    `model`, the model that produced `outputs`, tells logits from
    probabilities where its last layer says (`losses.infer_from_logits`), so
    the graph computes one interpretation instead of both.
    """
    outputs = _single_output(outputs)
    shape = outputs.shape
    single = shape.rank == 2 and shape[-1] == 1
    if shape.rank is not None and (shape.rank != 2 or (shape[-1] is not None and shape[-1] < 2
                                                        and not (single and allow_single_unit))):
        raise ValueError(
            f"{attack_name} needs a model that outputs class scores of shape "
            f"(batch, classes) with at least 2 classes (logits or probabilities); "
            f"the model output has shape {shape}. Single-unit (binary) or "
            "unbatched outputs carry no per-class scores: output one score per class "
            "(keras_adv.attacks.AutoAttack accepts a single sigmoid unit)."
        )
    return losses_lib.to_log_probs(outputs, losses_lib.infer_from_logits(model))


def label_indices(y) -> tf.Tensor:
    return losses_lib.label_class(y)


#: (z_y, max_{j≠y} z_j) per example (the margin's two terms, shared with `keras_adv.losses.margin`).
true_and_other = losses_lib.true_and_other


def margin(scores, labels):
    """z_y − max_{j≠y} z_j: positive while `labels` wins."""
    z_y, z_other = true_and_other(scores, labels)
    return z_y - z_other


def dlr(scores, labels):
    """Difference of Logits Ratio loss (Croce & Hein 2020), to maximise.

    `−(z_y − max_{j≠y} z_j) / (z_π1 − z_π3)`, with π the scores sorted in
    decreasing order. Shift- and scale-invariant.
    """
    if scores.shape[-1] is not None and scores.shape[-1] < 3:
        # Two classes have no third score: the plain margin (scale-free
        # log-probability differences of a binary model).
        return -margin(scores, labels)
    top = tf.math.top_k(scores, k=3).values
    return -margin(scores, labels) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted(scores, labels, targets):
    """Targeted DLR (Croce & Hein 2020), to maximise: `−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)`."""
    num_classes = tf.shape(scores)[-1]
    z_y = tf.reduce_sum(tf.one_hot(labels, num_classes, dtype=scores.dtype) * scores, axis=-1)
    z_t = tf.reduce_sum(tf.one_hot(targets, num_classes, dtype=scores.dtype) * scores, axis=-1)
    return -(z_y - z_t) / dlr_targeted_scale(scores)


def dlr_targeted_scale(scores):
    """`z_π1 − (z_π3 + z_π4)/2`, the targeted DLR denominator (1 for fewer than 4 classes)."""
    if scores.shape[-1] is not None and scores.shape[-1] < 4:
        return tf.ones_like(scores[:, 0])
    top = tf.math.top_k(scores, k=4).values
    return top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12


#: Reshapes a (batch,) mask to broadcast against `x`.
batch_mask = _batch_mask
