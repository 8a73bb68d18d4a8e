"""The documentation's Python examples: every block parses, and the self-contained pages run as written.

The pages in `RUNNABLE` define everything their blocks use (data from the offline digits and flows,
models from the presets; attacks.md and evaluation.md in a set-up block), so their blocks, concatenated
in order, run in a fresh process with only the training lengths cut to one epoch (slow: they train and
attack for real). The pages that download data (datasets, text) run the same way inside
`tfds.testing.mock_data`; distributed.md runs as one worker of MultiWorkerMirroredStrategy (no TF_CONFIG)
on two logical CPUs. cli.md's block needs a previous CLI export: tests/cli/test_commands.py runs it there.
"""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs"))
                              if f.endswith(".md"))
RUNNABLE = ["README.md", "docs/attacks.md", "docs/distributed.md", "docs/evaluation.md", "docs/reliability.md",
            "docs/tabular.md", "docs/tensorboard.md", "docs/training.md"]
# Pages that download with TensorFlow Datasets: they run inside `tfds.testing.mock_data` (random examples of
# the real features, nothing downloaded), with this many examples per split.
MOCKED = {"docs/datasets.md": 256, "docs/text.md": 300}
# Pages whose blocks run in another order: distributed.md's last block splits the CPU into two logical
# devices, which (as the page says) must come before any other TensorFlow op of a process.
ORDER = {"docs/distributed.md": (2, 0, 1)}


def _blocks(doc):
    with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def _page(doc):
    blocks = _blocks(doc)
    return "\n".join(blocks[i] for i in ORDER.get(doc, range(len(blocks))))


def _one_epoch(code):
    return re.sub(r"\bepochs=[^,)\n]+", "epochs=1", code)


@pytest.mark.parametrize("doc", DOCS)
def test_every_python_block_parses(doc):
    for i, block in enumerate(_blocks(doc)):
        compile(block, f"{doc} python block {i}", "exec")


def test_every_page_with_python_blocks_is_run_somewhere():
    ran_elsewhere = {"docs/cli.md"}  # tests/cli/test_commands.py::test_export_answers_through_saved_model_load
    assert {doc for doc in DOCS if _blocks(doc)} == set(RUNNABLE) | set(MOCKED) | ran_elsewhere


def test_a_reordered_page_runs_every_block_once():
    for doc, order in ORDER.items():
        assert sorted(order) == list(range(len(_blocks(doc)))), doc


def test_the_runnable_pages_train_for_one_epoch_only():
    for doc in RUNNABLE + sorted(MOCKED):
        code = _one_epoch(_page(doc))
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
    code = _one_epoch(_page(doc))
    if doc in MOCKED:
        code = _mocked(code, MOCKED[doc])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"{doc}:\n{proc.stderr[-4000:]}"
