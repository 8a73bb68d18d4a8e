"""The documentation's Python examples: every block parses, and the self-contained pages run as written.

The pages in `RUNNABLE` define everything their blocks use (data from the offline digits and flows,
models from the presets; attacks.md and evaluation.md in a set-up block), so their blocks, concatenated
in order, run in a fresh process with only the training lengths cut to one epoch (slow: they train and
attack for real). The pages that download data (datasets, text) run the same way inside
`tfds.testing.mock_data`. The others need a cluster or a process of their own (distributed) or a previous
CLI run (cli), so for them only the syntax is checked.
"""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs"))
                              if f.endswith(".md"))
RUNNABLE = ["README.md", "docs/attacks.md", "docs/evaluation.md", "docs/reliability.md", "docs/tabular.md",
            "docs/tensorboard.md", "docs/training.md"]
# Pages that download with TensorFlow Datasets: they run inside `tfds.testing.mock_data` (random examples of
# the real features, nothing downloaded), with this many examples per split.
MOCKED = {"docs/datasets.md": 256, "docs/text.md": 300}


def _blocks(doc):
    with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def _one_epoch(code):
    return re.sub(r"\bepochs=[^,)\n]+", "epochs=1", code)


@pytest.mark.parametrize("doc", DOCS)
def test_every_python_block_parses(doc):
    for i, block in enumerate(_blocks(doc)):
        compile(block, f"{doc} python block {i}", "exec")


def test_the_runnable_pages_train_for_one_epoch_only():
    for doc in RUNNABLE + sorted(MOCKED):
        code = _one_epoch("\n".join(_blocks(doc)))
        assert re.findall(r"\bepochs=(?!1\b)", code) == [], doc
    assert _one_epoch("fit(x, epochs=30 // 4)\nfit(ds, epochs=38, shuffle=False)") == (
        "fit(x, epochs=1)\nfit(ds, epochs=1, shuffle=False)")


def _mocked(code, num_examples):
    return ("import tensorflow_datasets as _tfds\n"
            f"_mock = _tfds.testing.mock_data(num_examples={num_examples})\n"  # kept: collected, it would unpatch
            "_mock.__enter__()\n" + code)


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUNNABLE + sorted(MOCKED))
def test_the_examples_run_as_written(doc, tmp_path):
    code = _one_epoch("\n".join(_blocks(doc)))
    if doc in MOCKED:
        code = _mocked(code, MOCKED[doc])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"{doc}:\n{proc.stderr[-4000:]}"
