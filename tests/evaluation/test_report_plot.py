"""`RobustnessReport.plot`: every attack stays visible when curves coincide (issue 14, hidden curve)."""

import numpy as np

from keras_adv.attacks import FGSM, PGD
from keras_adv.evaluation.report import AttackResult, RobustnessReport


def _report():
    labels = np.array([0, 1, 0, 1])
    results = {}
    for name, attack, correct in (("pgd", PGD(epsilon=0.3, steps=2), [1, 0, 1, 0]),
                                  ("autoattack", FGSM(epsilon=0.3), [1, 0, 0, 0])):
        r = AttackResult(name=name, attack=attack)
        for eps in (0.1, 0.3):
            r.add(epsilon=eps, correct=np.array(correct, bool), p_true=np.full(4, 0.5),
                  perturbation=np.full(4, eps), examples=np.zeros((4, 2)))
        results[name] = r
    return RobustnessReport(labels=labels, num_classes=2, norm="linf", bounds=(0, 1),
                            clean_correct=np.ones(4, bool), p_true_clean=np.full(4, 0.9), results=results)


def test_worst_case_is_dashed_on_top_and_attacks_keep_distinct_markers():
    report = _report()
    # the second attack IS the worst case here: exactly the curve that used to be hidden
    assert report.worst_case_accuracy(0.3) == report.robust_accuracy("autoattack", 0.3) == 0.25
    fig = report.plot()
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    worst, attacks = lines["worst case"], [lines["pgd"], lines["autoattack"]]
    assert worst.get_linestyle() == "--" and worst.get_marker() not in (None, "", "None")
    assert worst.get_zorder() > max(line.get_zorder() for line in attacks)
    markers = [line.get_marker() for line in attacks] + [worst.get_marker()]
    assert len(set(markers)) == 3
    # the coinciding attack curve is drawn wider than the worst case, so it shows around it
    assert lines["autoattack"].get_linewidth() > worst.get_linewidth()
    np.testing.assert_allclose(lines["autoattack"].get_ydata(), worst.get_ydata())
