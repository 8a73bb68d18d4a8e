"""The README's first command, `keras-adv train` with its defaults, run as a user runs it.

Runs the console program in a fresh subprocess (`python -m keras_adv train`,
which is what the `keras-adv` script runs), and records what it printed, its
`report.json` numbers, its wall-clock time and the CPU time it used, with the
machine's load when it started (times taken on a shared machine are not those
of an idle one: `cpu_seconds / cores` is the floor an idle machine of that many
cores approaches).

    PYTHONPATH=. python benchmarks/first_command.py            # the defaults (a few minutes on 2 idle cores)
    PYTHONPATH=. python benchmarks/first_command.py -- --epochs 2 --judges pgd    # extra train options

Writes benchmarks/results/first_command.json; `python benchmarks/readme.py`
then puts its numbers in the README.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(HERE, "results", "first_command.json"))
    parser.add_argument("extra", nargs="*", help="extra `keras-adv train` options (after --)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        output = os.path.join(tmp, "keras-adv-run")
        command = [sys.executable, "-m", "keras_adv", "train", "--output", output, *args.extra]
        load = os.getloadavg()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp,
                              env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")))
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(done.returncode)
        with open(os.path.join(output, "report.json")) as f:
            report = json.load(f)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {
        "command": "keras-adv train" + "".join(f" {a}" for a in args.extra),
        "printed": [line for line in done.stdout.splitlines()
                    if line.startswith(("clean accuracy", "robust accuracy", "time:"))],
        "stderr_lines": len([line for line in done.stderr.splitlines() if line.strip()]),
        "dataset": report["dataset"],
        "model": f"{report['model']} width {report['width']}",
        "recipe": f"{report['objective']} (adv_weight {report['adv_weight']:g}), {report['train_attack']}, "
                  f"{report['epochs']} epochs, Adam {report['learning_rate']:g} ({report['lr_schedule']})",
        "train_examples": report["train_examples"],
        "test_examples": report["test_examples"],
        "judged_examples": report["judged_examples"],
        "judge": report["judge"],
        "clean_accuracy": report["clean_accuracy"],
        "robust_accuracy": report["robust_accuracy"],
        "robust_accuracy_per_judge": report["robust_accuracy_per_judge"],
        "train_seconds": report["train_seconds"],
        "judge_seconds": report["judge_seconds"],
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "cores": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in load],
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
