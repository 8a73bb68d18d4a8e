"""Every notebook in notebooks/ runs top to bottom (small settings: KERAS_ADV_SMOKE=1) and is Colab-ready."""

import glob
import json
import os

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def test_the_four_notebooks_exist():
    names = {os.path.basename(p) for p in NOTEBOOKS}
    assert {"quickstart.ipynb", "attack_gallery.ipynb", "training_recipes.ipynb",
            "export_and_serving.ipynb", "securing_tabular_models.ipynb", "evaluation.ipynb",
            "text_robustness.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_colab_ready(path):
    nb = nbformat.read(path, as_version=4)
    name = os.path.basename(path)
    badge = f"https://colab.research.google.com/github/keras-adv/keras-adv/blob/main/notebooks/{name}"
    assert badge in nb.cells[0].source
    install = nb.cells[1].source
    assert 'if "google.colab" in sys.modules' in install and "pip install" in install
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "commit without outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_executes(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("KERAS_ADV_SMOKE", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    # the kernel imports this checkout's keras_adv, not an installed copy
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    text = json.dumps([c.get("outputs", []) for c in nb.cells if c.cell_type == "code"])
    assert "smoke mode" in text  # the small settings were used
    if os.environ.get("KERAS_ADV_NOTEBOOK_OUTPUT"):  # keep executed copies to look at the figures
        os.makedirs(os.environ["KERAS_ADV_NOTEBOOK_OUTPUT"], exist_ok=True)
        nbformat.write(nb, os.path.join(os.environ["KERAS_ADV_NOTEBOOK_OUTPUT"], os.path.basename(path)))
