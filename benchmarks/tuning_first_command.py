"""Tuning runs for `keras-adv train`'s recipe (issue 9): one TRADES variant per call, judged like the CLI.

Trains `small_cnn`-shaped CNNs (the activation is a flag here) on the 1,347 digits with TRADES against
PGD-K, then judges with PGD-50 x 3 on all 450 test digits and, like `keras-adv train`, with PGD-50 x 3
and AutoAttack on the first 200 (`--aa 0` skips that). Appends one JSON line per run to `--log`.
`--awp G` trains with an adversarial weight perturbation of relative size G (Wu et al. 2020), written
here as an experiment-only subclass (it did not help on digits, so it is not a library option).
The data pipeline is `tf.data` (shuffled), not the CLI's numpy `fit`, so figures differ from the
CLI's for the same seed; the CLI runs themselves are in benchmarks/results/tuning.md.

    PYTHONPATH=. python benchmarks/tuning_first_command.py --width 64 --epochs 80
"""
import sys, time, json, argparse
p = argparse.ArgumentParser()
p.add_argument("--act", default="relu"); p.add_argument("--width", type=int, default=96)
p.add_argument("--beta", type=float, default=4); p.add_argument("--eps-train", type=float, default=0.2)
p.add_argument("--epochs", type=int, default=30); p.add_argument("--seed", type=int, default=0)
p.add_argument("--lr", type=float, default=2e-3); p.add_argument("--steps", type=int, default=7)
p.add_argument("--aa", type=int, default=1); p.add_argument("--objective", default="trades")
p.add_argument("--wd", type=float, default=0.0); p.add_argument("--bs", type=int, default=64)
p.add_argument("--shift", type=int, default=0); p.add_argument("--tag", default=""); p.add_argument("--awp", type=float, default=0.0)
p.add_argument("--log", default="tuning_first_command.jsonl")
a = p.parse_args()
import keras, numpy as np, tensorflow as tf
import keras_adv as ka
keras.utils.set_random_seed(a.seed)
(xtr, ytr), (xte, yte) = ka.datasets.load_digits()
def cnn(width, act):
    i = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(width, 3, padding="same", activation=act)(i)
    h = keras.layers.Conv2D(2 * width, 3, padding="same", activation=act)(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(4 * width, activation=act)(h)
    return keras.Model(i, keras.layers.Dense(10)(h))
base = cnn(a.width, a.act)
att = ka.attacks.PGD(epsilon=a.eps_train, steps=a.steps, seed=a.seed)
from keras_adv.utils import data_checks
class AWPModel(ka.AdversarialModel):
    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y, sample_weight = data_checks.batch_checks(self, y, sample_weight)
        attack_loss = self._attack_loss(self.attack, self._objective_attack_loss(x))
        x_adv = self._craft(self.attack, x, y, self._epsilon, attack_loss)
        weights = self.trainable_weights
        pert = [w for w in weights if len(w.shape) > 1]
        with tf.GradientTape() as tape:
            yc, ya = self._training_forwards(x, x_adv)
            t0, _, _ = self._total_loss(x, y, yc, ya, sample_weight)
        gs = tape.gradient(t0, pert)
        vs = []
        for w, g in zip(pert, gs):
            v = a.awp * tf.norm(w) * g / (tf.norm(g) + 1e-12)
            w.assign_add(v); vs.append(v)
        with tf.GradientTape() as tape:
            y_clean, y_adv = self._training_forwards(x, x_adv)
            total, clean, adv = self._total_loss(x, y, y_clean, y_adv, sample_weight)
        self._track(x, total, clean, adv)
        grads = tape.gradient(total, weights)
        for w, v in zip(pert, vs):
            w.assign_sub(v)
        self.optimizer.apply_gradients(zip(grads, weights))
        return self.compute_metrics(x, y, y_clean, sample_weight, y_pred_adv=y_adv)
M = AWPModel if a.awp else ka.AdversarialModel
m = M(base, attack=att, adv_weight=a.beta, objective=a.objective, seed=a.seed)
steps = -(-len(xtr) // a.bs) * a.epochs
opt = keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(a.lr, steps), weight_decay=a.wd) if a.wd else keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(a.lr, steps))
m.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
data = tf.data.Dataset.from_tensor_slices((xtr, ytr)).shuffle(2000, seed=a.seed)
if a.shift:
    def aug(x, y):
        x = tf.pad(x, [[a.shift, a.shift], [a.shift, a.shift], [0, 0]])
        x = tf.image.random_crop(x, (8, 8, 1))
        return x, y
    data = data.map(aug)
data = data.batch(a.bs)
t = time.time(); m.fit(data, epochs=a.epochs, verbose=0); tt = time.time() - t
judges = {"pgd": ka.attacks.PGD(epsilon=0.2, steps=50, restarts=3, seed=0)}
t = time.time()
r450 = ka.evaluate_robustness(base, xte, yte, attacks=judges, batch_size=256, seed=0, verbose=0)
out = {"args": vars(a), "train_s": round(tt, 1), "clean450": r450.clean_accuracy, "pgd450": r450.worst_case_accuracy(0.2),
       }
if a.aa:
    from keras_adv.cli.registry import make_attack
    judges = {"pgd": make_attack("pgd", 0.2, steps=50, restarts=3, seed=a.seed), "autoattack": make_attack("autoattack", 0.2, restarts=3, seed=a.seed)}
    r = ka.evaluate_robustness(base, xte[:200], yte[:200], attacks=judges, batch_size=256, seed=a.seed, verbose=0)
    out.update(clean200=r.clean_accuracy, robust200=r.worst_case_accuracy(0.2), pgd200=r.robust_accuracy("pgd", 0.2), aa200=r.robust_accuracy("autoattack", 0.2))
out["judge_s"] = round(time.time() - t, 1)
print(json.dumps(out))
with open(a.log, "a") as f: f.write(json.dumps(out) + "\n")
