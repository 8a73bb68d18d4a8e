"""Peer parity on tables: keras_adv's Evolutionary / CAPGD vs MOEVA from the PyPI `constrained-attacks` package.

Same model, same records, same constraints, same success rule:

* a Keras MLP is trained on scikit-learn's breast-cancer table; its weights are
  copied into the equivalent torch MLP (the peer's classifier), and the two
  models' logits are checked to agree to 1e-5 on the attacked records;
* the constraints are those of `keras_adv.datasets.tabular.breast_cancer_space()`:
  per-feature bounds and the ten "worst ≥ mean" relations, written for the
  peer in its own constraint language (`Feature(i) <= Feature(j)`);
* success = a record that the independent checker
  (`keras_adv.domains.check_examples`) finds valid, inside the scaled L∞ budget
  ε, and misclassified. For MOEVA, whose output is a population per record,
  a record counts as broken when *any* individual of its final population
  qualifies (the peer's own success rule); keras_adv returns one record each.
* speed: records per second, wall clock, after one warm-up call for keras_adv
  (graph tracing excluded); MOEVA runs its documented per-record pymoo loop with
  `n_jobs=1` (the machine has 2 shared cores).

The peer lives in its own environment (never a keras_adv dependency). Its
install on this machine (Python 3.11):

    python -m venv /work/venvs/tables
    /work/venvs/tables/bin/pip install torch==2.13.0
    /work/venvs/tables/bin/pip install "numpy<2" "scipy<1.14" "pandas<2" "matplotlib<3.9" "pymoo==0.5.0" joblib tqdm
    /work/venvs/tables/bin/pip install --no-deps --ignore-requires-python constrained-attacks==0.1.1

What cannot be compared, and why:
* the peer's CPGD (`constrained_attacks.attacks.cpgd`) is built on IBM ART 1.10
  with TensorFlow 2.8 (its "tensorflow" extra); TensorFlow 2.8 has no wheels
  for Python 3.11, so it cannot run here, and there is no torch CPGD in 0.1.1.
  CAPGD is therefore compared with plain PGD + naive repair
  (benchmarks/tabular_robustness.py) instead of the peer's CPGD;
* `tabularbench` (the successor with CAPGD/CAA in torch) requires
  Python < 3.11 on PyPI ("0.1.0 Requires-Python <3.11,>=3.8.1"): pip finds no
  installable version here.

Run from the repository root:

    PYTHONPATH=. python benchmarks/tabular_parity.py [--n 40] [--peer-python /work/venvs/tables/bin/python]

Writes benchmarks/results/tabular_parity.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
EPS = 0.05


# --------------------------------------------------------------- peer side (venv)
def run_peer(path):
    """Runs in the peer's environment: torch MLP from the Keras weights, then MOEVA."""
    import numpy as np
    import torch
    from constrained_attacks.attacks.moeva.moeva import Moeva2
    from constrained_attacks.constraints.constraints import Constraints
    from constrained_attacks.constraints.relation_constraint import Feature

    d = dict(np.load(path, allow_pickle=True))
    layers = []
    kernels = [k for k in sorted(d) if k.startswith("kernel_")]
    for i, name in enumerate(kernels):
        lin = torch.nn.Linear(*d[name].shape)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(d[name].T))
            lin.bias.copy_(torch.tensor(d[f"bias_{i}"]))
        layers += [lin, torch.nn.ReLU()] if i < len(kernels) - 1 else [lin]
    mean, std = torch.tensor(d["norm_mean"]), torch.tensor(d["norm_std"])
    net = torch.nn.Sequential(*layers).eval()

    def logits(x):
        with torch.no_grad():
            return net((torch.tensor(np.asarray(x, np.float32)) - mean) / std).numpy()

    agree = float(np.max(np.abs(logits(d["x"]) - d["keras_logits"])))

    class Classifier:
        def predict_proba(self, x):
            z = logits(x)
            e = np.exp(z - z.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)

    n = d["x"].shape[1]
    constraints = Constraints(
        feature_types=np.array(["real"] * n), mutable_features=np.ones(n, bool),
        lower_bounds=d["lower"].astype(float), upper_bounds=d["upper"].astype(float),
        relation_constraints=[Feature(int(i)) <= Feature(int(j)) for i, j in zip(d["rel_left"], d["rel_right"])],
        feature_names=None)
    scale = d["scale"]
    attack = Moeva2(Classifier(), constraints, norm=np.inf, fun_distance_preprocess=lambda x: x / scale,
                    n_gen=int(d["n_gen"]), n_pop=int(d["n_pop"]), n_offsprings=int(d["n_offsprings"]),
                    seed=0, n_jobs=1, verbose=0)
    t = time.perf_counter()
    pop = attack.generate(d["x"].astype(np.float64), d["y"].astype(int))
    seconds = time.perf_counter() - t
    np.save(path.replace(".npz", "_moeva.npy"), np.asarray(pop, np.float32))
    print(json.dumps({"agree_max_abs": agree, "seconds": seconds, "torch": torch.__version__}))


# ------------------------------------------------------------- our side (keras_adv)
def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40, help="records attacked")
    parser.add_argument("--peer-python", default="/work/venvs/tables/bin/python")
    parser.add_argument("--n-gen", type=int, default=100)
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        return run_peer(args.peer)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    from keras_adv import attacks as A
    from keras_adv.datasets import tabular
    from keras_adv.domains import check_examples

    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = tabular.load_breast_cancer()
    space = tabular.breast_cancer_space()
    norm = keras.layers.Normalization()
    norm.adapt(x_train)
    model = keras.Sequential([keras.Input((30,)), norm, keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(2)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=60, batch_size=64, verbose=0)
    pred = model.predict(x_test, verbose=0).argmax(1)
    keep = np.flatnonzero(pred == y_test)[: args.n]
    x, y = x_test[keep], y_test[keep]

    rel = space.relations[0].fn
    n_pop, n_off = 100, 50
    dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
    payload = {f"kernel_{i}": l.get_weights()[0] for i, l in enumerate(dense)}
    payload.update({f"bias_{i}": l.get_weights()[1] for i, l in enumerate(dense)})
    payload.update(norm_mean=np.asarray(norm.mean).reshape(-1), norm_std=np.sqrt(np.maximum(np.asarray(norm.variance).reshape(-1), 1e-7)),
                   x=x, y=y, keras_logits=model.predict(x, verbose=0), lower=space.lower, upper=space.upper,
                   scale=space.scale, rel_left=np.array(rel.left), rel_right=np.array(rel.right),
                   n_gen=args.n_gen, n_pop=n_pop, n_offsprings=n_off)
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "parity.npz")
    np.savez(path, **payload)

    def broken(candidates):
        """(records,) bool: some candidate of each record is valid, within ε, misclassified (independent checker)."""
        cands = candidates.reshape(len(x), -1, x.shape[1])
        k = cands.shape[1]
        flat = cands.reshape(-1, x.shape[1])
        ref = np.repeat(x, k, axis=0)
        ok = check_examples(space, flat, ref, epsilon=EPS).valid
        wrong = model.predict(flat, verbose=0, batch_size=4096).argmax(1) != np.repeat(y, k)
        return (ok & wrong).reshape(len(x), k).any(axis=1), ok.reshape(len(x), k).any(axis=1)

    rows = {}
    ours = {
        "keras_adv Evolutionary": A.Evolutionary(EPS, domain=space, generations=args.n_gen, population=n_pop // 2, seed=0),
        "keras_adv CAPGD": A.CAPGD(EPS, domain=space, steps=100, seed=0),
        "keras_adv ConstrainedAutoAttack": A.ConstrainedAutoAttack(EPS, domain=space, steps=100, restarts=1,
                                                                   generations=args.n_gen, population=n_pop // 2, seed=0),
    }
    for name, attack in ours.items():
        attack.generate(model, x, y, verbose=0)  # warm-up (trace)
        t = time.perf_counter()
        x_adv = attack.generate(model, x, y, verbose=0)
        seconds = time.perf_counter() - t
        ok, valid = broken(x_adv)
        rows[name] = {"success_rate": float(ok.mean()), "valid_fraction": float(valid.mean()),
                      "records_per_s": len(x) / seconds, "seconds": seconds}
        print(name, rows[name], flush=True)

    out = subprocess.run([args.peer_python, __file__, "--peer", path], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"peer run failed:\n{out.stderr[-3000:]}")
    peer = json.loads(out.stdout.strip().splitlines()[-1])
    pop = np.load(path.replace(".npz", "_moeva.npy"))
    ok, valid = broken(pop)
    rows["constrained-attacks MOEVA (Moeva2)"] = {
        "success_rate": float(ok.mean()), "valid_fraction": float(valid.mean()),
        "records_per_s": len(x) / peer["seconds"], "seconds": peer["seconds"]}
    print("MOEVA", rows["constrained-attacks MOEVA (Moeva2)"], peer, flush=True)

    result = {
        "dataset": "breast_cancer (scikit-learn, real)", "epsilon": EPS, "norm": "linf on scaled features",
        "records": int(len(x)), "generations": args.n_gen, "moeva_population": n_pop, "moeva_offsprings": n_off,
        "keras_adv_population": n_pop // 2,
        "torch_vs_keras_logits_max_abs_diff": peer["agree_max_abs"], "torch": peer["torch"],
        "keras": keras.__version__, "python": sys.version.split()[0], "cpu_count": os.cpu_count(), "rows": rows,
    }
    assert peer["agree_max_abs"] <= 1e-5, peer["agree_max_abs"]
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "tabular_parity.json"), "w") as f:
        json.dump(result, f, indent=1)
    base = rows["constrained-attacks MOEVA (Moeva2)"]["records_per_s"]
    lines = [f"Tabular peer parity (`benchmarks/tabular_parity.py`): breast cancer, {len(x)} correctly classified "
             f"test records, ε = {EPS} (scaled L∞), worst ≥ mean relations; torch copy of the Keras MLP agrees "
             f"to {peer['agree_max_abs']:.1e}. Success = valid (independent checker) and misclassified.", "",
             "| attack | success rate | records/s | speed vs MOEVA |", "|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['success_rate']:.3f} | {r['records_per_s']:.2f} | {r['records_per_s'] / base:.1f}× |")
    with open(os.path.join(RESULTS, "tabular_parity.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
