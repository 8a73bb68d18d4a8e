"""`keras-adv list` and `--help` read `cli/names.json`; it must equal the library's registries."""

from keras_adv.cli import names


def test_names_json_equals_the_registries():
    # On failure: run `python -m keras_adv.cli.names` and commit keras_adv/cli/names.json.
    assert names.load() == names.live()


def test_names_json_lists_what_the_cli_accepts():
    table = names.load()
    assert {"pgd", "autoattack", "capgd", "evolutionary"} <= set(table["attacks"])
    assert {"ce", "madry", "trades", "mart"} <= set(table["objectives"])
    assert {"digits", "breast_cancer", "flows"} <= {d["name"] for d in table["datasets"]}
