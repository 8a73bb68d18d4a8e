"""Square Attack: score-based, gradient-free random search."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_adv.attacks import _scores
from keras_adv.attacks.attack import Attack
from keras_adv.utils.validation import check_number

__all__ = ["Square"]

_P_THRESHOLDS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


@keras.saving.register_keras_serializable(package="keras_adv")
class Square(Attack):
    """Square Attack (Andriushchenko et al. 2020, "Square Attack: a
    query-efficient black-box adversarial attack via random search").
    Norms: L∞ and L2.

    A score-based black-box attack: it only *queries* the model's class
    scores and never asks for a gradient, so it works on models whose
    gradient is useless or absent (rounding, `stop_gradient`, argmax-based
    preprocessing). Each query proposes a change of a random square window
    — a random ±ε colour per channel for L∞; for L2, a pseudo-Gaussian bump
    moving perturbation mass from a second window into the first — and keeps
    it when the margin loss `z_y − max_{j≠y} z_j` (targeted:
    `max_{j≠t} z_j − z_t`) decreases. The window covers a fraction `p` of the
    image that follows the paper's schedule from `p_init` (halved at 10, 50,
    200, 500, 1000, 2000, 4000, 6000 and 8000 of 10,000 scaled queries).
    Examples already misclassified stop changing.

    Inputs must be images `(batch, height, width, channels)`.

    Example:

    ```python
    attack = keras_adv.attacks.Square(epsilon=0.05, queries=1000)
    x_adv = attack(model, x, y)
    ```

    Args:
        epsilon: budget ε.
        queries: model queries per example (the initial one included).
        p_init: initial fraction of pixels in a window (0.8 as in AutoAttack).
        restarts: independent runs; per example the strongest is kept.
        norm: `"linf"` (default) or `"l2"`.
        **kwargs: `bounds`, `targeted`, `seed`, `name` (see `keras_adv.attacks.Attack`).
    """

    # Set by AutoAttack on its members: accept single-unit (binary) and 2-3 class models.
    _few_classes_ok = False

    gradient_free = True
    requires_images = True
    supported_norms = ("linf", "l2")

    def __init__(
        self,
        epsilon: float,
        *,
        queries: int = 5000,
        p_init: float = 0.8,
        restarts: int = 1,
        norm="linf",
        **kwargs,
    ):
        super().__init__(epsilon=epsilon, norm=norm, **kwargs)
        self.queries = check_number("queries", queries, minimum=1, integer=True)
        self.p_init = check_number("p_init", p_init, minimum=0.0, strict=True)
        if self.p_init > 1.0:
            raise ValueError(f"`p_init` must be in (0, 1], got {p_init!r}.")
        self.restarts = self._check_restarts(restarts)

    # ----------------------------------------------------------- helpers
    def _p(self, i):
        it = tf.cast(tf.cast(i, tf.float32) / self.queries * 10000.0, tf.int32)
        halvings = tf.add_n([tf.cast(it > t, tf.float32) for t in _P_THRESHOLDS])
        return self.p_init / tf.pow(2.0, halvings)

    def _loss(self, model, x_adv, labels):
        scores = _scores.class_scores(model(x_adv, training=False), type(self).__name__, self._few_classes_ok, model)
        z_y, z_other = _scores.true_and_other(scores, labels)
        # Minimised; negative once the attack succeeds.
        return (z_other - z_y) if self.targeted else (z_y - z_other)

    # ------------------------------------------------------------ perturb
    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        if x.shape.rank != 4:
            raise ValueError(
                f"Square needs image inputs of shape (batch, height, width, channels); got `x` "
                f"of shape {x.shape}."
            )
        labels = _scores.label_indices(y)
        run = self._run_linf if self.norm.name == "linf" else self._run_l2
        return run(model, x, labels, epsilon, seed)[0]

    def restart_score(self, model, x_adv, y, loss_fn):
        # Restarts compare by the margin loss Square minimises: success (loss < 0) first, then lower.
        loss = self._loss(model, x_adv, _scores.label_indices(y))
        return -loss, loss < 0.0

    def _window(self, shape, s, seed):
        """A (batch, h, w, 1) 0/1 mask of an s×s window at a random position per example."""
        b, h, w = shape[0], shape[1], shape[2]
        s1, s2 = tf.unstack(tf.random.split(seed, 2))
        top = tf.random.stateless_uniform([b], s1, 0, h - s + 1, dtype=tf.int32)
        left = tf.random.stateless_uniform([b], s2, 0, w - s + 1, dtype=tf.int32)
        rows = tf.range(h)[None, :, None]
        cols = tf.range(w)[None, None, :]
        inside = ((rows >= top[:, None, None]) & (rows < top[:, None, None] + s)
                  & (cols >= left[:, None, None]) & (cols < left[:, None, None] + s))
        return inside[..., None], top, left

    def _search(self, model, x, labels, x_init, seed, propose):
        """The random search shared by both norms (written once).

        From `x_init`, each query `i` proposes `propose(i, x_best, seed_i)` and
        keeps it for the examples not yet broken whose margin loss it lowers.
        """
        loss = self._loss(model, x_init, labels)
        loop_seeds = tf.random.experimental.stateless_split(seed, max(self.queries - 1, 1))

        def body(i, x_best, loss):
            active = loss > 0.0
            x_new = tf.ensure_shape(propose(i, x_best, loop_seeds[i - 1]), x.shape)
            new_loss = self._loss(model, x_new, labels)
            improved = active & (new_loss < loss)
            x_best = tf.where(_scores.batch_mask(improved, x), x_new, x_best)
            loss = tf.where(improved, new_loss, loss)
            return i + 1, x_best, loss

        _, x_best, loss = tf.while_loop(lambda i, *_: i < self.queries, body, (tf.constant(1), x_init, loss))
        return x_best, loss

    def _run_linf(self, model, x, labels, epsilon, seed):
        dtype = x.dtype
        shape = tf.shape(x)
        b, h, w, c = shape[0], shape[1], shape[2], shape[3]
        eps = tf.cast(epsilon, dtype)
        s_init, s_loop = tf.unstack(tf.random.split(seed, 2))
        # Vertical stripes of ±ε (one sign per column and channel).
        stripes = tf.sign(tf.random.stateless_uniform([b, 1, w, c], s_init, -1.0, 1.0, dtype=dtype))
        n_features = tf.cast(h * w * c, tf.float32)

        def propose(i, x_best, seed_i):
            p = self._p(i)
            s = tf.cast(tf.round(tf.sqrt(p * n_features / tf.cast(c, tf.float32))), tf.int32)
            s = tf.clip_by_value(s, 1, tf.maximum(tf.minimum(h, w) - 1, 1))
            k1, k2 = tf.unstack(tf.random.split(seed_i, 2))
            window, _, _ = self._window(shape, s, k1)
            colour = eps * tf.sign(tf.random.stateless_uniform([b, 1, 1, c], k2, -1.0, 1.0, dtype=dtype))
            # Never waste a query on a proposal identical to the current point: flip it then.
            same = tf.reduce_all(
                tf.logical_or(~window, tf.abs(self.clip(x + colour) - x_best) < 1e-7), axis=[1, 2, 3]
            )
            colour = tf.where(same[:, None, None, None], -colour, colour)
            return self.clip(tf.where(window, x + colour, x_best))

        return self._search(model, x, labels, self.clip(x + eps * stripes), s_loop, propose)

    def _run_l2(self, model, x, labels, epsilon, seed):
        dtype = x.dtype
        shape = tf.shape(x)
        b, h, w, c = shape[0], shape[1], shape[2], shape[3]
        eps = tf.cast(epsilon, dtype)
        s_init, s_loop = tf.unstack(tf.random.split(seed, 2))
        delta0 = _l2_init(shape, s_init, dtype)
        n_features = tf.cast(h * w * c, tf.float32)

        def propose(i, x_best, seed_i):
            delta = x_best - x
            p = self._p(i)
            s = tf.maximum(tf.cast(tf.round(tf.sqrt(p * n_features / tf.cast(c, tf.float32))), tf.int32), 3)
            s = s + 1 - tf.math.floormod(s, 2)  # odd
            s = tf.minimum(s, tf.minimum(h, w))
            k1, k2, k3, k4 = tf.unstack(tf.random.split(seed_i, 4))
            win1, top, left = self._window(shape, s, k1)
            win2, _, _ = self._window(shape, s, k2)
            win1f, win2f = tf.cast(win1, dtype), tf.cast(win2, dtype)
            both = tf.maximum(win1f, win2f)
            norm_win1 = tf.sqrt(tf.reduce_sum(tf.square(delta * win1f), axis=[1, 2], keepdims=True))
            norm_img = _l2(delta)
            norm_both = tf.sqrt(tf.reduce_sum(tf.square(delta * both), axis=[1, 2], keepdims=True))
            transpose = tf.random.stateless_uniform([b], k3, dtype=dtype) > 0.5
            bump = _place_pattern(shape, s, top, left, transpose, dtype)  # (b,h,w,1), zero outside win1
            signs = tf.sign(tf.random.stateless_uniform([b, 1, 1, c], k4, -1.0, 1.0, dtype=dtype))
            new = bump * signs + delta * win1f / (1e-10 + norm_win1)
            new_norm = tf.sqrt(tf.reduce_sum(tf.square(new), axis=[1, 2], keepdims=True))
            budget = tf.sqrt(
                tf.maximum(tf.square(eps) - tf.square(norm_img), 0.0) / tf.cast(c, dtype) + tf.square(norm_both)
            )
            new = new / tf.maximum(new_norm, 1e-12) * budget
            delta_new = delta * (1.0 - both) + new * win1f
            return self.clip(x + delta_new / tf.maximum(_l2(delta_new), 1e-12) * eps)

        return self._search(model, x, labels, self.clip(x + delta0 / _l2(delta0) * eps), s_loop, propose)

    def get_config(self):
        config = super().get_config()
        config.update(queries=self.queries, p_init=self.p_init, restarts=self.restarts)
        return config


def _l2(d):
    return tf.sqrt(tf.reduce_sum(tf.square(d), axis=[1, 2, 3], keepdims=True))


def _rect(a, b, dtype):
    """The (a, b) pseudo-Gaussian rectangle: nested centred boxes weighted 1/(n+1)², unit L2."""
    i = tf.range(a)[:, None]
    j = tf.range(b)[None, :]
    d = tf.maximum(tf.abs(i - a // 2), tf.abs(j - b // 2))
    n_boxes = tf.maximum(a // 2 + 1, b // 2 + 1)
    weights = 1.0 / tf.square(tf.cast(tf.range(n_boxes), dtype) + 1.0)
    tails = tf.cumsum(weights, reverse=True)  # tails[n] = Σ_{m ≥ n} 1/(m+1)²
    m = tf.gather(tails, d)
    return m / tf.maximum(tf.sqrt(tf.reduce_sum(tf.square(m))), 1e-12)


def _meta_pattern(s, dtype):
    """The s×s pattern: +rectangle on the top half, −rectangle on the bottom half, unit L2."""
    top = _rect(s // 2, s, dtype)
    bottom = -_rect(s - s // 2, s, dtype)
    m = tf.concat([top, bottom], axis=0)
    return m / tf.maximum(tf.sqrt(tf.reduce_sum(tf.square(m))), 1e-12)


def _place_pattern(shape, s, top, left, transpose, dtype):
    """The s×s pattern placed at (top, left) per example (optionally transposed); (b, h, w, 1)."""
    h, w = shape[1], shape[2]
    pattern = _meta_pattern(s, dtype)
    r = tf.range(h)[None, :, None] - top[:, None, None]
    c = tf.range(w)[None, None, :] - left[:, None, None]
    inside = (r >= 0) & (r < s) & (c >= 0) & (c < s)
    t = transpose[:, None, None]
    rr = tf.clip_by_value(tf.where(t, c, r), 0, s - 1)
    cc = tf.clip_by_value(tf.where(t, r, c), 0, s - 1)
    vals = tf.gather_nd(pattern, tf.stack([rr, cc], axis=-1))
    return tf.where(inside, vals, tf.zeros_like(vals))[..., None]


def _l2_init(shape, seed, dtype):
    """The paper's L2 initialisation: a grid of pseudo-Gaussian blocks with random signs."""
    b, h, w, c = shape[0], shape[1], shape[2], shape[3]
    s = tf.maximum(h // 5, 1)
    start = (h - s * 5) // 2
    n_blocks = h // s
    k1, k2 = tf.unstack(tf.random.split(seed, 2))
    pattern = _meta_pattern(s, dtype)
    pattern_t = tf.transpose(pattern)
    r = tf.range(h) - start
    col = tf.range(w) - start
    br, bc = tf.math.floordiv(r, s), tf.math.floordiv(col, s)
    valid = ((r >= 0) & (br < n_blocks))[:, None] & ((col >= 0) & (bc < tf.minimum(n_blocks, w // s)))[None, :]
    lr = tf.clip_by_value(r - br * s, 0, s - 1)[:, None]
    lc = tf.clip_by_value(col - bc * s, 0, s - 1)[None, :]
    lr2 = tf.broadcast_to(lr, [h, w])
    lc2 = tf.broadcast_to(lc, [h, w])
    vals = tf.gather_nd(pattern, tf.stack([lr2, lc2], -1))
    vals_t = tf.gather_nd(pattern_t, tf.stack([lr2, lc2], -1))
    nb_r = tf.maximum(n_blocks, 1)
    nb_c = tf.maximum(n_blocks, 1)
    signs = tf.sign(tf.random.stateless_uniform([b, nb_r, nb_c, c], k1, -1.0, 1.0, dtype=dtype))
    flips = tf.random.stateless_uniform([b, nb_r, nb_c], k2, dtype=dtype) > 0.5
    bri = tf.clip_by_value(br, 0, nb_r - 1)
    bci = tf.clip_by_value(bc, 0, nb_c - 1)
    block_signs = tf.gather(tf.gather(signs, bri, axis=1), bci, axis=2)  # (b, h, w, c)
    block_flips = tf.gather(tf.gather(flips, bri, axis=1), bci, axis=2)  # (b, h, w)
    v = tf.where(block_flips, vals_t[None], vals[None])
    v = tf.where(valid[None], v, tf.zeros_like(v))
    return v[..., None] * block_signs
