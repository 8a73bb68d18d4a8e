"""`keras-adv list` and `--help` read `cli/names.json`; it must equal the library's registries."""

from keras_adv.cli import names


def test_names_json_equals_the_registries():
    # On failure: run `python -m keras_adv.cli.names` and commit keras_adv/cli/names.json.
    assert names.load() == names.live()


def test_names_json_lists_what_the_cli_accepts():
    table = names.load()
    assert {"pgd", "autoattack"} <= set(table["attacks"]) and {"capgd", "evolutionary"} <= set(table["table_attacks"])
    assert {"ce", "madry", "trades", "mart"} <= set(table["objectives"])
    assert {"digits", "breast_cancer", "flows"} <= {d["name"] for d in table["datasets"]}


def test_every_listed_attack_can_be_built_from_a_budget():
    # `list` offers only what --attacks/--judges can build: no wrappers needing another attack
    # (BPDA, EOT) and no base class without a perturb of its own (ConstrainedAttack).
    from keras_adv.cli.registry import make_attack
    from keras_adv.datasets.tabular import breast_cancer_space

    table = names.load()
    assert not {"bpda", "eot", "constrainedattack"} & set(table["attacks"] + table["table_attacks"])
    assert set(table["table_attacks"]) == {"capgd", "constrainedautoattack", "evolutionary"}
    for name in table["attacks"]:
        assert make_attack(name, 0.1).epsilon == 0.1
    for name in table["table_attacks"]:
        assert make_attack(name, 0.1, options={"domain": breast_cancer_space()}).epsilon == 0.1
