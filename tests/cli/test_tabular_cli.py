"""`keras-adv train --dataset breast_cancer|flows`: constrained attacks in the dataset's FeatureSpace."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow  # trains and judges with the constrained ensemble (~1 min on 2 cores)
def test_train_on_flows_uses_the_feature_space(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "keras_adv", "train", "--dataset", "flows", "--epochs", "1",
                           "--steps", "2", "--eval-steps", "2", "--judge-limit", "8", "--epsilon", "0.05",
                           "--output", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert "ConstrainedAutoAttack" in report["judge"] and "CAPGD" in report["train_attack"]
    assert report["train_attack_config"]["domain"]["class_name"] == "FeatureSpace"
    assert 0.0 <= report["robust_accuracy"] <= report["clean_accuracy"]
