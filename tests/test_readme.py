"""The README's numbers are the benchmark outputs' (benchmarks/results/*.json), regenerated, never typed."""

import importlib.util
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme_tool():
    spec = importlib.util.spec_from_file_location("readme_tool", os.path.join(ROOT, "benchmarks", "readme.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_blocks_match_the_results_files():
    tool = _readme_tool()
    with open(tool.README, encoding="utf-8") as f:
        text = f.read()
    assert set(tool.blocks(text)) == {"first-command", "recipes", "tabular", "tabular-parity", "attacks", "evaluation", "speed"}
    assert tool.render(text) == text, "README is stale: run `python benchmarks/readme.py`"
    assert tool.main(["--check"]) == 0


def test_headline_numbers_are_the_first_commands():
    with open(os.path.join(ROOT, "benchmarks", "results", "first_command.json")) as f:
        run = json.load(f)
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    headline = re.search(r"clean (\d\.\d{3}) / robust (\d\.\d{3})", text)
    assert headline, "the README states the first command's clean / robust accuracy"
    assert (float(headline.group(1)), float(headline.group(2))) == (
        round(run["clean_accuracy"], 3), round(run["robust_accuracy"], 3))
    # what the command printed is the same number
    printed = " ".join(run["printed"])
    assert f"{run['clean_accuracy']:.4f}" in printed and f"{run['robust_accuracy']:.4f}" in printed
    # the judges are stronger than the training attack and the headline is their worst case
    assert "AutoAttack" in run["robust_accuracy_per_judge"] and any(
        name.startswith("PGD-50") for name in run["robust_accuracy_per_judge"])
    assert run["robust_accuracy"] <= min(run["robust_accuracy_per_judge"].values())


def test_check_fails_on_a_hand_edited_number(tmp_path):
    tool = _readme_tool()
    with open(tool.README, encoding="utf-8") as f:
        text = f.read()
    row = re.search(r"\| \*\*(0\.\d{3})\*\* \|", text)
    assert row, "the recipes table has a bold best row"
    edited = tmp_path / "README.md"
    edited.write_text(text.replace(row.group(0), "| **0.999** |", 1), encoding="utf-8")
    assert tool.main(["--check", "--readme", str(edited)]) == 1


def test_ci_runs_exactly_the_readmes_test_command():
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        command = f.read().strip().splitlines()[-1]
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert "pytest" in command and command in readme
